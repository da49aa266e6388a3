package com.amazonaws.services.lambda.runtime;

import java.nio.charset.StandardCharsets;

/** Access to the runtime's logger outside of a handler call. */
public final class LambdaRuntime {
    private LambdaRuntime() {}

    private static volatile LambdaLogger logger = new LambdaLogger() {
        @Override
        public void log(String message) {
            log(message == null ? new byte[0] : message.getBytes(StandardCharsets.UTF_8));
        }

        @Override
        public void log(byte[] message) {
            synchronized (System.out) {
                System.out.write(message, 0, message.length);
                System.out.flush();
            }
        }
    };

    public static LambdaLogger getLogger() {
        return logger;
    }
}

package com.amazonaws.services.lambda.runtime;

public interface LambdaLogger {
    void log(String string);
    void log(byte[] message);
}

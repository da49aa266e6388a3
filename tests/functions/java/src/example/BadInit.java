package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Map;

/** Fails in its static initialiser. */
public class BadInit implements RequestHandler<Map<String, Object>, String> {
    static final int VALUE = compute();

    private static int compute() {
        throw new IllegalArgumentException("cannot start: missing configuration");
    }

    @Override
    public String handleRequest(Map<String, Object> event, Context context) {
        return "never";
    }
}

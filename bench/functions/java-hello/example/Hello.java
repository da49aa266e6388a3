package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Collections;
import java.util.Map;

/** The Java hello of bench/jvm.py: {"hello": "world"}. */
public class Hello implements RequestHandler<Map<String, Object>, Map<String, String>> {
    @Override
    public Map<String, String> handleRequest(Map<String, Object> event, Context context) {
        return Collections.singletonMap("hello", "world");
    }
}

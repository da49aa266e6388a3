package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import greeter.Greeter;
import java.util.Map;

/** Calls a class of lib/greeter.jar. */
public class UsesLib implements RequestHandler<Map<String, String>, String> {
    @Override
    public String handleRequest(Map<String, String> event, Context context) {
        return Greeter.greet(event.getOrDefault("name", "nobody"));
    }
}

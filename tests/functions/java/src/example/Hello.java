package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Map;

/** RequestHandler<Map<String,Object>, String>; counts its calls in a static to show warm reuse. */
public class Hello implements RequestHandler<Map<String, Object>, String> {
    private static int calls = 0;
    private static final long LOADED = System.nanoTime();

    @Override
    public String handleRequest(Map<String, Object> event, Context context) {
        calls++;
        context.getLogger().log("hello from the logger");
        System.out.println("hello from System.out");
        Object name = event.get("name");
        return "Hello, " + (name == null ? "world" : name) + "! call " + calls + " of JVM " + LOADED;
    }
}

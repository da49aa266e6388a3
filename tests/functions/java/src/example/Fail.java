package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.Map;

/** Throws: the error shape Lambda reports for a Java exception. */
public class Fail implements RequestHandler<Map<String, Object>, String> {
    @Override
    public String handleRequest(Map<String, Object> event, Context context) {
        try {
            Integer.parseInt("not a number");
        } catch (NumberFormatException e) {
            throw new IllegalStateException("boom: " + event.get("why"), e);
        }
        return "unreachable";
    }
}

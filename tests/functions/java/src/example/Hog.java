package example;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Fills the heap until the JVM runs out of it; answers a ping otherwise. */
public class Hog implements RequestHandler<Map<String, Object>, String> {
    private static final long LOADED = System.nanoTime();

    @Override
    public String handleRequest(Map<String, Object> event, Context context) {
        if (event.containsKey("ping")) {
            return "alive " + LOADED;
        }
        List<long[]> hoard = new ArrayList<>();
        while (true) {
            hoard.add(new long[1 << 20]);
        }
    }
}

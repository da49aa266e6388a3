package example;

import com.amazonaws.services.lambda.runtime.Context;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Method handlers named as Class::method, of each shape Lambda accepts. */
public class Methods {
    public String shout(String s) {
        return s.toUpperCase() + "!";
    }

    public static int sum(List<Integer> numbers) {
        int t = 0;
        for (int n : numbers) {
            t += n;
        }
        return t;
    }

    public Map<String, Object> context(Map<String, Object> event, Context c) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("awsRequestId", c.getAwsRequestId());
        m.put("functionName", c.getFunctionName());
        m.put("functionVersion", c.getFunctionVersion());
        m.put("invokedFunctionArn", c.getInvokedFunctionArn());
        m.put("memoryLimitInMB", c.getMemoryLimitInMB());
        m.put("logGroupName", c.getLogGroupName());
        m.put("logStreamName", c.getLogStreamName());
        m.put("remaining", c.getRemainingTimeInMillis());
        m.put("identityId", c.getIdentity() == null ? null : c.getIdentity().getIdentityId());
        m.put("clientContext", c.getClientContext() == null ? null : c.getClientContext().getCustom());
        m.put("logger", c.getLogger() == null ? null : "present");
        m.put("javaToolOptions", System.getenv("JAVA_TOOL_OPTIONS"));
        m.put("maxHeapMb", Runtime.getRuntime().maxMemory() / (1024 * 1024));
        m.put("javaVersion", System.getProperty("java.specification.version"));
        m.put("event", event);
        return m;
    }

    public void echo(InputStream in, OutputStream out, Context c) throws IOException {
        byte[] b = new byte[4096];
        int n;
        out.write('[');
        while ((n = in.read(b)) > 0) {
            out.write(b, 0, n);
        }
        out.write(']');
    }
}

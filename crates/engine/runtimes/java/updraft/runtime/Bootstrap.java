package updraft.runtime;

import com.amazonaws.services.lambda.runtime.Client;
import com.amazonaws.services.lambda.runtime.ClientContext;
import com.amazonaws.services.lambda.runtime.CognitoIdentity;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.LambdaLogger;
import com.amazonaws.services.lambda.runtime.LambdaRuntime;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;

import java.io.BufferedInputStream;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Updraft's Java runtime client: loads the handler named by {@code _HANDLER} from
 * {@code /var/task} (classes, {@code lib/*.jar}) and {@code /opt/java/lib/*.jar}, then serves
 * invocations from the Runtime API (2018-06-01) until the environment is shut down.
 *
 * <p>The function's classes are loaded by a child of the class loader that loaded this client
 * (ordinary parent-first delegation, as on Lambda): the {@code com.amazonaws.services.lambda.runtime}
 * interfaces are always the runtime's own, so a copy bundled in the function's jar is shadowed
 * and the function's classes link against the same interfaces the runtime calls through.
 *
 * <p>Written for start-up time: no lambdas or method references (each first use of
 * invokedynamic costs tens of milliseconds of bootstrapping), and compiled with string
 * concatenation inlined for the same reason.
 */
public final class Bootstrap {
    private static final String API = "/2018-06-01/runtime";

    public static void main(String[] args) throws Exception {
        String api = System.getenv("AWS_LAMBDA_RUNTIME_API");
        if (api == null || api.isEmpty()) {
            System.err.println("AWS_LAMBDA_RUNTIME_API is not set");
            System.exit(1);
        }
        RuntimeApi rt = new RuntimeApi(api);
        Handler handler;
        try {
            handler = Handler.load(System.getenv("_HANDLER"), taskRoot());
        } catch (Throwable t) {
            Failure f = Failure.of(t);
            f.log(null);
            rt.post(API + "/init/error", f.body(), f.type);
            System.out.flush();
            System.exit(1);
            return;
        }
        new Bootstrap(rt, handler).loop();
    }

    private static String taskRoot() {
        String root = System.getenv("LAMBDA_TASK_ROOT");
        return root == null || root.isEmpty() ? "/var/task" : root;
    }

    private final RuntimeApi rt;
    private final Handler handler;
    private final String functionName = System.getenv("AWS_LAMBDA_FUNCTION_NAME");
    private final String functionVersion = System.getenv("AWS_LAMBDA_FUNCTION_VERSION");
    private final String logGroup = System.getenv("AWS_LAMBDA_LOG_GROUP_NAME");
    private final String logStream = System.getenv("AWS_LAMBDA_LOG_STREAM_NAME");
    private final int memoryMb = parseInt(System.getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"));

    private Bootstrap(RuntimeApi rt, Handler handler) {
        this.rt = rt;
        this.handler = handler;
    }

    private static int parseInt(String s) {
        try {
            return Integer.parseInt(s);
        } catch (RuntimeException e) {
            return 0;
        }
    }

    private void loop() throws IOException {
        while (true) {
            RuntimeApi.Response next = rt.next();
            String id = next.header("lambda-runtime-aws-request-id");
            if (id == null) {
                System.err.println("Runtime API answered /next without a request id");
                System.exit(1);
            }
            String trace = next.header("lambda-runtime-trace-id");
            if (trace != null) {
                System.setProperty("com.amazonaws.xray.traceHeader", trace);
            } else {
                System.clearProperty("com.amazonaws.xray.traceHeader");
            }
            Invocation ctx = new Invocation(id, next);
            byte[] out;
            try {
                out = handler.invoke(next.body, ctx);
            } catch (OutOfMemoryError oom) {
                // The heap is exhausted: say so, then end the environment so that it is replaced
                // (what is left of a JVM after an OutOfMemoryError cannot be trusted).
                String msg = "RequestId: " + id + " Error: " + oom;
                byte[] body = ("{\"errorType\":\"Runtime.OutOfMemory\",\"errorMessage\":"
                        + Json.write(msg) + "}").getBytes(StandardCharsets.UTF_8);
                System.out.println(msg);
                System.out.flush();
                rt.post(API + "/invocation/" + id + "/error", body, "Runtime.OutOfMemory");
                Runtime.getRuntime().halt(1);
                return;
            } catch (Throwable t) {
                Failure f = Failure.of(t);
                f.log(id);
                System.out.flush();
                System.err.flush();
                rt.post(API + "/invocation/" + id + "/error", f.body(), f.type);
                continue;
            }
            System.out.flush();
            System.err.flush();
            rt.post(API + "/invocation/" + id + "/response", out, null);
        }
    }

    // ------------------------------------------------------------------ context

    private static final LambdaLogger LOGGER = LambdaRuntime.getLogger();

    private final class Invocation implements Context {
        private final String requestId;
        private final String arn;
        private final long deadlineMs;
        private final ClientContext clientContext;
        private final CognitoIdentity identity;

        Invocation(String requestId, RuntimeApi.Response next) {
            this.requestId = requestId;
            this.arn = next.header("lambda-runtime-invoked-function-arn");
            long d = 0;
            try {
                d = Long.parseLong(next.header("lambda-runtime-deadline-ms"));
            } catch (RuntimeException e) {
                d = System.currentTimeMillis() + 3000;
            }
            this.deadlineMs = d;
            this.clientContext = clientContext(next.header("lambda-runtime-client-context"));
            this.identity = identity(next.header("lambda-runtime-cognito-identity"));
        }

        @Override
        public String getAwsRequestId() {
            return requestId;
        }

        @Override
        public String getLogGroupName() {
            return logGroup;
        }

        @Override
        public String getLogStreamName() {
            return logStream;
        }

        @Override
        public String getFunctionName() {
            return functionName;
        }

        @Override
        public String getFunctionVersion() {
            return functionVersion;
        }

        @Override
        public String getInvokedFunctionArn() {
            return arn;
        }

        @Override
        public CognitoIdentity getIdentity() {
            return identity;
        }

        @Override
        public ClientContext getClientContext() {
            return clientContext;
        }

        @Override
        public int getRemainingTimeInMillis() {
            return (int) Math.max(0, deadlineMs - System.currentTimeMillis());
        }

        @Override
        public int getMemoryLimitInMB() {
            return memoryMb;
        }

        @Override
        public LambdaLogger getLogger() {
            return LOGGER;
        }
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> jsonObject(String header) {
        if (header == null || header.isEmpty()) {
            return null;
        }
        try {
            Object v = Json.parse(header);
            return v instanceof Map ? (Map<String, Object>) v : null;
        } catch (RuntimeException e) {
            return null;
        }
    }

    private static String str(Map<String, Object> m, String... keys) {
        if (m == null) {
            return null;
        }
        for (String k : keys) {
            Object v = m.get(k);
            if (v != null) {
                return v.toString();
            }
        }
        return null;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, String> strings(Object v) {
        Map<String, String> out = new LinkedHashMap<>();
        if (v instanceof Map) {
            for (Map.Entry<String, Object> e : ((Map<String, Object>) v).entrySet()) {
                out.put(e.getKey(), e.getValue() == null ? null : e.getValue().toString());
            }
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    private static ClientContext clientContext(String header) {
        Map<String, Object> m = jsonObject(header);
        if (m == null) {
            return null;
        }
        Object c = m.get("client");
        Map<String, Object> cm = c instanceof Map ? (Map<String, Object>) c : null;
        Client client = cm == null ? null : new Client() {
            public String getInstallationId() {
                return str(cm, "installation_id", "installationId");
            }

            public String getAppTitle() {
                return str(cm, "app_title", "appTitle");
            }

            public String getAppVersionName() {
                return str(cm, "app_version_name", "appVersionName");
            }

            public String getAppVersionCode() {
                return str(cm, "app_version_code", "appVersionCode");
            }

            public String getAppPackageName() {
                return str(cm, "app_package_name", "appPackageName");
            }
        };
        Map<String, String> custom = strings(m.get("custom"));
        Map<String, String> env = strings(m.get("env"));
        return new ClientContext() {
            public Client getClient() {
                return client;
            }

            public Map<String, String> getCustom() {
                return custom;
            }

            public Map<String, String> getEnvironment() {
                return env;
            }
        };
    }

    private static CognitoIdentity identity(String header) {
        Map<String, Object> m = jsonObject(header);
        String id = str(m, "cognitoIdentityId", "identityId");
        String pool = str(m, "cognitoIdentityPoolId", "identityPoolId");
        return new CognitoIdentity() {
            public String getIdentityId() {
                return id == null ? "" : id;
            }

            public String getIdentityPoolId() {
                return pool == null ? "" : pool;
            }
        };
    }

    // ------------------------------------------------------------------ handlers

    /** The function's handler, resolved once at init. */
    abstract static class Handler {
        abstract byte[] invoke(byte[] event, Context ctx) throws Throwable;

        static Handler load(String spec, String root) throws Throwable {
            if (spec == null || spec.isEmpty()) {
                throw new Failure("Runtime.MalformedHandlerName", "Handler is not set", null);
            }
            String className = spec;
            String methodName = null;
            int sep = spec.indexOf("::");
            if (sep >= 0) {
                className = spec.substring(0, sep);
                methodName = spec.substring(sep + 2);
                if (methodName.isEmpty()) {
                    methodName = null;
                }
            }
            ClassLoader loader = functionLoader(root);
            Thread.currentThread().setContextClassLoader(loader);
            Class<?> cls;
            try {
                cls = Class.forName(className, true, loader);
            } catch (ClassNotFoundException e) {
                throw new Failure("java.lang.ClassNotFoundException", "Class not found: " + className, null);
            } catch (ExceptionInInitializerError e) {
                throw e;
            } catch (NoClassDefFoundError e) {
                throw e;
            }
            if (methodName == null) {
                if (RequestStreamHandler.class.isAssignableFrom(cls)) {
                    RequestStreamHandler h = (RequestStreamHandler) newInstance(cls);
                    return new StreamHandler(new StreamCall() {
                        public void call(InputStream in, OutputStream out, Context ctx) throws Exception {
                            h.handleRequest(in, out, ctx);
                        }
                    });
                }
                if (RequestHandler.class.isAssignableFrom(cls)) {
                    @SuppressWarnings("unchecked")
                    RequestHandler<Object, Object> h = (RequestHandler<Object, Object>) newInstance(cls);
                    Type in = requestHandlerInput(cls);
                    return new PojoHandler(in, new PojoCall() {
                        public Object call(Object event, Context ctx) {
                            return h.handleRequest(event, ctx);
                        }
                    });
                }
                throw new Failure("java.lang.ClassCastException", "Class " + className
                        + " does not implement RequestHandler or RequestStreamHandler"
                        + " (name a method with " + className + "::method)", null);
            }
            return methodHandler(cls, methodName);
        }

        private static Object newInstance(Class<?> cls) throws Throwable {
            try {
                return cls.getConstructor().newInstance();
            } catch (NoSuchMethodException e) {
                throw new Failure("java.lang.NoSuchMethodException", "Class " + cls.getName()
                        + " has no public constructor without arguments", null);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            }
        }

        /** The {@code I} of {@code RequestHandler<I, O>} as {@code cls} binds it. */
        private static Type requestHandlerInput(Class<?> cls) {
            for (Class<?> c = cls; c != null && c != Object.class; c = c.getSuperclass()) {
                for (Type t : c.getGenericInterfaces()) {
                    if (t instanceof ParameterizedType
                            && ((ParameterizedType) t).getRawType() == RequestHandler.class) {
                        Type in = ((ParameterizedType) t).getActualTypeArguments()[0];
                        return in instanceof Class || in instanceof ParameterizedType ? in : Object.class;
                    }
                }
            }
            // A generic parameter bound elsewhere: take the bridge method's declared type.
            for (Method m : cls.getMethods()) {
                if (m.getName().equals("handleRequest") && m.getParameterCount() == 2
                        && !m.isBridge() && m.getParameterTypes()[1] == Context.class) {
                    return m.getGenericParameterTypes()[0];
                }
            }
            return Object.class;
        }

        private static Handler methodHandler(Class<?> cls, String name) throws Throwable {
            List<Method> found = new ArrayList<>();
            for (Method m : cls.getMethods()) {
                if (m.getName().equals(name) && !m.isBridge() && m.getParameterCount() <= 3) {
                    found.add(m);
                }
            }
            // Most parameters first, as Lambda prefers the method taking the context.
            found.sort(new java.util.Comparator<Method>() {
                public int compare(Method a, Method b) {
                    return b.getParameterCount() - a.getParameterCount();
                }
            });
            for (Method m : found) {
                Class<?>[] p = m.getParameterTypes();
                Object target = Modifier.isStatic(m.getModifiers()) ? null : null;
                boolean stream = p.length >= 2 && p[0] == InputStream.class && p[1] == OutputStream.class
                        && (p.length == 2 || p[2] == Context.class);
                boolean pojo = p.length == 0 || (p.length == 1 && p[0] != Context.class)
                        || (p.length == 2 && p[1] == Context.class);
                if (!stream && !pojo) {
                    continue;
                }
                if (!Modifier.isStatic(m.getModifiers())) {
                    target = newInstance(cls);
                }
                m.setAccessible(true);
                final Object self = target;
                if (stream) {
                    return new StreamHandler(new StreamCall() {
                        public void call(InputStream in, OutputStream out, Context ctx) throws Exception {
                            Bootstrap.Handler.call(m, self, p.length == 3
                                    ? new Object[] {in, out, ctx} : new Object[] {in, out});
                        }
                    });
                }
                Type in = p.length == 0 ? Object.class : m.getGenericParameterTypes()[0];
                return new PojoHandler(in, new PojoCall() {
                    public Object call(Object event, Context ctx) throws Exception {
                        switch (p.length) {
                            case 0:
                                return Bootstrap.Handler.call(m, self, new Object[0]);
                            case 1:
                                return Bootstrap.Handler.call(m, self, new Object[] {event});
                            default:
                                return Bootstrap.Handler.call(m, self, new Object[] {event, ctx});
                        }
                    }
                });
            }
            throw new Failure("java.lang.NoSuchMethodException", "No public method named " + name
                    + " with appropriate method signature found on class " + cls.getName(), null);
        }

        private static Object call(Method m, Object self, Object[] args) throws Exception {
            try {
                return m.invoke(self, args);
            } catch (InvocationTargetException e) {
                Throwable c = e.getCause();
                if (c instanceof Exception) {
                    throw (Exception) c;
                }
                if (c instanceof Error) {
                    throw (Error) c;
                }
                throw e;
            }
        }

        /** Task root, its {@code lib/*.jar}, then the layers' {@code /opt/java/lib/*.jar}. */
        private static ClassLoader functionLoader(String root) throws IOException {
            List<URL> urls = new ArrayList<>();
            File task = new File(root);
            urls.add(task.toURI().toURL());
            addJars(urls, new File(task, "lib"));
            addJars(urls, new File("/opt/java/lib"));
            return new URLClassLoader(urls.toArray(new URL[0]), Bootstrap.class.getClassLoader());
        }

        private static void addJars(List<URL> urls, File dir) throws IOException {
            File[] jars = dir.listFiles(new java.io.FilenameFilter() {
                public boolean accept(File d, String n) {
                    return n.endsWith(".jar");
                }
            });
            if (jars == null) {
                return;
            }
            Arrays.sort(jars);
            for (File j : jars) {
                urls.add(j.toURI().toURL());
            }
        }
    }

    interface StreamCall {
        void call(InputStream in, OutputStream out, Context ctx) throws Exception;
    }

    interface PojoCall {
        Object call(Object event, Context ctx) throws Exception;
    }

    static final class StreamHandler extends Handler {
        private final StreamCall call;

        StreamHandler(StreamCall call) {
            this.call = call;
        }

        @Override
        byte[] invoke(byte[] event, Context ctx) throws Throwable {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            call.call(new ByteArrayInputStream(event), out, ctx);
            return out.toByteArray();
        }
    }

    static final class PojoHandler extends Handler {
        private final Type input;
        private final PojoCall call;

        PojoHandler(Type input, PojoCall call) {
            this.input = input;
            this.call = call;
        }

        @Override
        byte[] invoke(byte[] event, Context ctx) throws Throwable {
            Object arg;
            Class<?> raw = Json.rawClass(input);
            if (raw == InputStream.class) {
                arg = new ByteArrayInputStream(event);
            } else if (raw == byte[].class) {
                arg = event;
            } else {
                String text = new String(event, StandardCharsets.UTF_8);
                try {
                    arg = Json.convert(Json.parse(text), input);
                } catch (Json.JsonException e) {
                    throw new Failure("Runtime.LambdaUserCodeException" , "An error occurred during JSON parsing: "
                            + e.getMessage(), e);
                }
            }
            Object result = call.call(arg, ctx);
            if (result instanceof byte[]) {
                return (byte[]) result;
            }
            try {
                return Json.write(result).getBytes(StandardCharsets.UTF_8);
            } catch (Json.JsonException e) {
                throw new Failure("Runtime.MarshalError", "Unable to marshal response: " + e.getMessage(), e);
            }
        }
    }

    // ------------------------------------------------------------------ errors

    /** An error as Lambda reports it: type, message, stack trace lines, cause. */
    static final class Failure extends Exception {
        final String type;

        Failure(String type, String message, Throwable cause) {
            super(message, cause);
            this.type = type;
        }

        /** The failure to report for {@code t}: the exception's own class and message. */
        static Failure of(Throwable t) {
            if (t instanceof Failure) {
                return (Failure) t;
            }
            return new Failure(t.getClass().getName(), null, t);
        }

        /** The thrown exception this failure describes (itself for the runtime's own). */
        private Throwable subject() {
            return getMessage() == null && getCause() != null ? getCause() : this;
        }

        byte[] body() {
            return Json.write(describe(subject(), type, 0)).getBytes(StandardCharsets.UTF_8);
        }

        private static Map<String, Object> describe(Throwable t, String type, int depth) {
            Map<String, Object> m = new LinkedHashMap<>();
            String msg = t.getMessage();
            if (msg == null && t instanceof ExceptionInInitializerError && t.getCause() != null) {
                msg = t.getCause().toString();
            }
            if (msg != null) {
                m.put("errorMessage", msg);
            }
            m.put("errorType", type);
            List<String> trace = new ArrayList<>();
            if (!(t instanceof Failure)) {
                for (StackTraceElement e : t.getStackTrace()) {
                    if (e.getClassName().startsWith("updraft.runtime.")
                            || e.getClassName().startsWith("jdk.internal.reflect.")
                            || e.getClassName().startsWith("java.lang.reflect.Method")) {
                        continue;
                    }
                    trace.add(e.toString());
                }
                m.put("stackTrace", trace);
            }
            Throwable c = t instanceof Failure ? null : t.getCause();
            if (c != null && c != t && depth < 8) {
                m.put("cause", describe(c, c.getClass().getName(), depth + 1));
            }
            return m;
        }

        /** Writes the failure to the function's log as Lambda's Java runtime does. */
        void log(String requestId) {
            Throwable s = subject();
            if (s instanceof Failure) {
                System.out.println(type + ": " + getMessage());
            } else {
                s.printStackTrace(System.out);
            }
        }
    }

    // ------------------------------------------------------------------ Runtime API

    /** A minimal HTTP/1.1 client on one kept-alive connection with TCP_NODELAY. */
    static final class RuntimeApi {
        private final String host;
        private final int port;
        private Socket socket;
        private InputStream in;
        private OutputStream out;

        RuntimeApi(String api) {
            int colon = api.lastIndexOf(':');
            this.host = colon > 0 ? api.substring(0, colon) : api;
            this.port = colon > 0 ? Integer.parseInt(api.substring(colon + 1)) : 80;
        }

        static final class Response {
            int status;
            final Map<String, String> headers = new LinkedHashMap<>();
            byte[] body = new byte[0];

            String header(String name) {
                return headers.get(name);
            }
        }

        private void connect() throws IOException {
            if (socket != null && !socket.isClosed()) {
                return;
            }
            socket = new Socket();
            socket.setTcpNoDelay(true);
            socket.connect(new InetSocketAddress(host, port));
            in = new BufferedInputStream(socket.getInputStream(), 65536);
            out = socket.getOutputStream();
        }

        Response next() {
            try {
                Response r = request("GET", API + "/invocation/next", null, null);
                if (r.status / 100 != 2) {
                    throw new IOException("status " + r.status);
                }
                return r;
            } catch (IOException e) {
                System.err.println("Runtime API /next failed: " + e);
                System.exit(1);
                return null;
            }
        }

        void post(String path, byte[] body, String errorType) {
            try {
                Response r = request("POST", path, body, errorType);
                if (r.status / 100 != 2) {
                    System.err.println("Runtime API " + path + " answered " + r.status + ": "
                            + new String(r.body, StandardCharsets.UTF_8));
                }
            } catch (IOException e) {
                System.err.println("Runtime API " + path + " failed: " + e);
                closeQuietly();
            }
        }

        private void closeQuietly() {
            try {
                if (socket != null) {
                    socket.close();
                }
            } catch (IOException e) {
                // Already gone.
            }
            socket = null;
        }

        private Response request(String method, String path, byte[] body, String errorType)
                throws IOException {
            connect();
            StringBuilder h = new StringBuilder(256);
            h.append(method).append(' ').append(path).append(" HTTP/1.1\r\nHost: ").append(host)
                    .append("\r\n");
            if (body != null) {
                h.append("Content-Type: application/json\r\nContent-Length: ").append(body.length)
                        .append("\r\n");
                if (errorType != null) {
                    h.append("Lambda-Runtime-Function-Error-Type: ").append(errorType).append("\r\n");
                }
            }
            h.append("\r\n");
            byte[] head = h.toString().getBytes(StandardCharsets.UTF_8);
            if (body != null && body.length < 16384) {
                byte[] all = Arrays.copyOf(head, head.length + body.length);
                System.arraycopy(body, 0, all, head.length, body.length);
                out.write(all);
            } else {
                out.write(head);
                if (body != null) {
                    out.write(body);
                }
            }
            out.flush();
            return read();
        }

        private String line() throws IOException {
            StringBuilder b = new StringBuilder();
            while (true) {
                int c = in.read();
                if (c < 0) {
                    throw new IOException("connection closed");
                }
                if (c == '\n') {
                    int n = b.length();
                    if (n > 0 && b.charAt(n - 1) == '\r') {
                        b.setLength(n - 1);
                    }
                    return b.toString();
                }
                b.append((char) c);
            }
        }

        private Response read() throws IOException {
            Response r = new Response();
            String status = line();
            String[] parts = status.split(" ", 3);
            if (parts.length < 2) {
                throw new IOException("bad status line " + status);
            }
            r.status = Integer.parseInt(parts[1]);
            while (true) {
                String l = line();
                if (l.isEmpty()) {
                    break;
                }
                int c = l.indexOf(':');
                if (c > 0) {
                    r.headers.put(l.substring(0, c).trim().toLowerCase(Locale.ROOT), l.substring(c + 1).trim());
                }
            }
            String te = r.header("transfer-encoding");
            String cl = r.header("content-length");
            if (te != null && te.toLowerCase(Locale.ROOT).contains("chunked")) {
                ByteArrayOutputStream b = new ByteArrayOutputStream();
                while (true) {
                    String sz = line();
                    int semi = sz.indexOf(';');
                    int n = Integer.parseInt((semi >= 0 ? sz.substring(0, semi) : sz).trim(), 16);
                    if (n == 0) {
                        while (!line().isEmpty()) {
                            // Trailers are not used.
                        }
                        break;
                    }
                    b.write(readN(n));
                    line();
                }
                r.body = b.toByteArray();
            } else if (cl != null) {
                r.body = readN(Integer.parseInt(cl));
            }
            String conn = r.header("connection");
            if (conn != null && conn.equalsIgnoreCase("close")) {
                closeQuietly();
            }
            return r;
        }

        private byte[] readN(int n) throws IOException {
            byte[] b = new byte[n];
            int off = 0;
            while (off < n) {
                int k = in.read(b, off, n - off);
                if (k < 0) {
                    throw new IOException("connection closed");
                }
                off += k;
            }
            return b;
        }
    }

    static {
        // Lambda's Java runtime writes System.out and System.err to the log unbuffered per line.
        System.setOut(new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true));
    }
}

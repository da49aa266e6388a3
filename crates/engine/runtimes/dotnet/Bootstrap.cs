// Updraft's C# runtime client: loads the handler named by _HANDLER
// ("Assembly::Namespace.Type::Method") from /var/task and serves invocations from the Runtime API
// (2018-06-01) until the environment is shut down. Runs on Mono or a host .NET.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Net.Sockets;
using System.Reflection;
using System.Text;
using System.Threading.Tasks;
using System.Web.Script.Serialization;
using Amazon.Lambda.Core;

namespace Updraft.Runtime
{
    internal sealed class Failure : Exception
    {
        public readonly string Type;

        public Failure(string type, string message) : base(message)
        {
            Type = type;
        }
    }

    internal sealed class Logger : ILambdaLogger
    {
        public void Log(string message)
        {
            LambdaLogger.Log(message);
        }

        public void LogLine(string message)
        {
            LambdaLogger.Log(message + "\n");
        }
    }

    internal sealed class ClientApplication : IClientApplication
    {
        public string AppPackageName { get; set; }
        public string AppTitle { get; set; }
        public string AppVersionCode { get; set; }
        public string AppVersionName { get; set; }
        public string InstallationId { get; set; }
    }

    internal sealed class ClientContextImpl : IClientContext
    {
        public IDictionary<string, string> Environment { get; set; }
        public IClientApplication Client { get; set; }
        public IDictionary<string, string> Custom { get; set; }
    }

    internal sealed class Identity : ICognitoIdentity
    {
        public string IdentityId { get; set; }
        public string IdentityPoolId { get; set; }
    }

    internal sealed class Context : ILambdaContext
    {
        internal long DeadlineMs;
        public string AwsRequestId { get; set; }
        public IClientContext ClientContext { get; set; }
        public string FunctionName { get; set; }
        public string FunctionVersion { get; set; }
        public ICognitoIdentity Identity { get; set; }
        public string InvokedFunctionArn { get; set; }
        public ILambdaLogger Logger { get; set; }
        public string LogGroupName { get; set; }
        public string LogStreamName { get; set; }
        public int MemoryLimitInMB { get; set; }

        public TimeSpan RemainingTime
        {
            get
            {
                long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                return TimeSpan.FromMilliseconds(Math.Max(0, DeadlineMs - now));
            }
        }
    }

    /// <summary>A minimal HTTP/1.1 client on one kept-alive connection with TCP_NODELAY.</summary>
    internal sealed class RuntimeApi
    {
        private readonly string host;
        private readonly int port;
        private TcpClient tcp;
        private Stream stream;

        public RuntimeApi(string api)
        {
            int colon = api.LastIndexOf(':');
            host = colon > 0 ? api.Substring(0, colon) : api;
            port = colon > 0 ? int.Parse(api.Substring(colon + 1)) : 80;
        }

        public sealed class Response
        {
            public int Status;
            public readonly Dictionary<string, string> Headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            public byte[] Body = new byte[0];

            public string Header(string name)
            {
                string v;
                return Headers.TryGetValue(name, out v) ? v : null;
            }
        }

        private void Connect()
        {
            if (tcp != null)
            {
                return;
            }
            tcp = new TcpClient();
            tcp.NoDelay = true;
            tcp.Connect(host, port);
            stream = new BufferedStream(tcp.GetStream(), 65536);
        }

        private void Close()
        {
            try
            {
                if (tcp != null)
                {
                    tcp.Close();
                }
            }
            catch (Exception)
            {
                // Already gone.
            }
            tcp = null;
        }

        public Response Request(string method, string path, byte[] body, string errorType)
        {
            Connect();
            var h = new StringBuilder();
            h.Append(method).Append(' ').Append(path).Append(" HTTP/1.1\r\nHost: ").Append(host).Append("\r\n");
            if (body != null)
            {
                h.Append("Content-Type: application/json\r\nContent-Length: ").Append(body.Length).Append("\r\n");
                if (errorType != null)
                {
                    h.Append("Lambda-Runtime-Function-Error-Type: ").Append(errorType).Append("\r\n");
                }
            }
            h.Append("\r\n");
            byte[] head = Encoding.ASCII.GetBytes(h.ToString());
            stream.Write(head, 0, head.Length);
            if (body != null)
            {
                stream.Write(body, 0, body.Length);
            }
            stream.Flush();
            return Read();
        }

        public void Post(string path, byte[] body, string errorType)
        {
            try
            {
                Response r = Request("POST", path, body, errorType);
                if (r.Status / 100 != 2)
                {
                    Console.Error.WriteLine("Runtime API " + path + " answered " + r.Status + ": " + Encoding.UTF8.GetString(r.Body));
                }
            }
            catch (Exception e)
            {
                Console.Error.WriteLine("Runtime API " + path + " failed: " + e.Message);
                Close();
            }
        }

        private string Line()
        {
            var b = new StringBuilder();
            while (true)
            {
                int c = stream.ReadByte();
                if (c < 0)
                {
                    throw new IOException("connection closed");
                }
                if (c == '\n')
                {
                    if (b.Length > 0 && b[b.Length - 1] == '\r')
                    {
                        b.Length -= 1;
                    }
                    return b.ToString();
                }
                b.Append((char)c);
            }
        }

        private byte[] ReadN(int n)
        {
            var b = new byte[n];
            int off = 0;
            while (off < n)
            {
                int k = stream.Read(b, off, n - off);
                if (k <= 0)
                {
                    throw new IOException("connection closed");
                }
                off += k;
            }
            return b;
        }

        private Response Read()
        {
            var r = new Response();
            string[] status = Line().Split(new[] { ' ' }, 3);
            r.Status = int.Parse(status[1]);
            while (true)
            {
                string l = Line();
                if (l.Length == 0)
                {
                    break;
                }
                int c = l.IndexOf(':');
                if (c > 0)
                {
                    r.Headers[l.Substring(0, c).Trim()] = l.Substring(c + 1).Trim();
                }
            }
            string te = r.Header("Transfer-Encoding");
            string cl = r.Header("Content-Length");
            if (te != null && te.IndexOf("chunked", StringComparison.OrdinalIgnoreCase) >= 0)
            {
                var all = new MemoryStream();
                while (true)
                {
                    string size = Line();
                    int semi = size.IndexOf(';');
                    int n = Convert.ToInt32((semi >= 0 ? size.Substring(0, semi) : size).Trim(), 16);
                    if (n == 0)
                    {
                        while (Line().Length != 0)
                        {
                        }
                        break;
                    }
                    byte[] chunk = ReadN(n);
                    all.Write(chunk, 0, chunk.Length);
                    Line();
                }
                r.Body = all.ToArray();
            }
            else if (cl != null)
            {
                r.Body = ReadN(int.Parse(cl));
            }
            string conn = r.Header("Connection");
            if (conn != null && conn.Equals("close", StringComparison.OrdinalIgnoreCase))
            {
                Close();
            }
            return r;
        }
    }

    /// <summary>The function's handler, resolved once at init.</summary>
    internal sealed class Handler
    {
        private MethodInfo method;
        private object target;
        private Type inputType;
        private bool takesContext;
        private object serializer;
        private MethodInfo deserialize;
        private MethodInfo serialize;
        private Type outputType;

        public static Handler Load(string spec, string root)
        {
            string[] parts = (spec ?? "").Split(new[] { "::" }, StringSplitOptions.None);
            if (parts.Length != 3 || parts.Any(p => p.Length == 0))
            {
                throw new Failure("Runtime.MalformedHandlerName",
                    "The handler " + spec + " is not of the form ASSEMBLY::TYPE::METHOD");
            }
            AppDomain.CurrentDomain.AssemblyResolve += (sender, args) => Resolve(args.Name, root);
            Assembly asm;
            string path = Path.Combine(root, parts[0] + ".dll");
            if (!File.Exists(path))
            {
                throw new Failure("Runtime.AssemblyNotFound", "Could not find the specified handler assembly with the file name '" + parts[0] + "'");
            }
            try
            {
                asm = Assembly.LoadFrom(path);
            }
            catch (BadImageFormatException e)
            {
                throw new Failure("Runtime.BadImageFormat", "Could not load the handler assembly " + parts[0] + ": " + e.Message);
            }
            Type type = asm.GetType(parts[1], false);
            if (type == null)
            {
                throw new Failure("Runtime.TypeNotFound", "Unable to find type '" + parts[1] + "' in assembly '" + asm.GetName().Name + "'");
            }
            MethodInfo[] candidates = type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static)
                .Where(m => m.Name == parts[2] && m.GetParameters().Length <= 2).ToArray();
            if (candidates.Length == 0)
            {
                throw new Failure("Runtime.MethodNotFound", "Unable to find method '" + parts[2] + "' in type '" + parts[1] + "' from assembly '" + asm.GetName().Name + "'");
            }
            if (candidates.Length > 1)
            {
                throw new Failure("Runtime.MethodNotFound", "The method '" + parts[2] + "' in type '" + parts[1] + "' is overloaded");
            }
            var h = new Handler();
            h.method = candidates[0];
            ParameterInfo[] ps = h.method.GetParameters();
            if (ps.Length == 2 && ps[1].ParameterType != typeof(ILambdaContext))
            {
                throw new Failure("Runtime.InvalidHandlerSignature", "The second parameter of " + parts[2] + " must be ILambdaContext");
            }
            h.takesContext = ps.Length == 2 || (ps.Length == 1 && ps[0].ParameterType == typeof(ILambdaContext));
            h.inputType = ps.Length >= 1 && ps[0].ParameterType != typeof(ILambdaContext) ? ps[0].ParameterType : null;
            Type ret = h.method.ReturnType;
            if (ret == typeof(Task))
            {
                h.outputType = null;
            }
            else if (ret.IsGenericType && ret.GetGenericTypeDefinition() == typeof(Task<>))
            {
                h.outputType = ret.GetGenericArguments()[0];
            }
            else
            {
                h.outputType = ret == typeof(void) ? null : ret;
            }
            bool needsSerializer = (h.inputType != null && h.inputType != typeof(Stream))
                || (h.outputType != null && h.outputType != typeof(Stream));
            if (needsSerializer)
            {
                var attr = h.method.GetCustomAttributes(typeof(LambdaSerializerAttribute), false).FirstOrDefault() as LambdaSerializerAttribute
                    ?? asm.GetCustomAttributes(typeof(LambdaSerializerAttribute), false).FirstOrDefault() as LambdaSerializerAttribute;
                if (attr == null)
                {
                    throw new Failure("Runtime.SerializerNotFound",
                        "To use types other than System.IO.Stream as input/output parameters, the assembly or Lambda function should be annotated with Amazon.Lambda.LambdaSerializerAttribute.");
                }
                h.serializer = Activator.CreateInstance(attr.SerializerType);
                var iface = typeof(ILambdaSerializer);
                h.deserialize = iface.GetMethod("Deserialize");
                h.serialize = iface.GetMethod("Serialize");
            }
            if (!h.method.IsStatic)
            {
                try
                {
                    h.target = Activator.CreateInstance(type);
                }
                catch (TargetInvocationException e)
                {
                    throw e.InnerException;
                }
            }
            return h;
        }

        /// <summary>Amazon.Lambda.* names resolve to the runtime's own assemblies, whatever version the
        /// handler was compiled against; anything else is looked for in the task root.</summary>
        private static Assembly Resolve(string fullName, string root)
        {
            string name = new AssemblyName(fullName).Name;
            if (name == "Amazon.Lambda.Core")
            {
                return typeof(ILambdaContext).Assembly;
            }
            foreach (Assembly a in AppDomain.CurrentDomain.GetAssemblies())
            {
                if (a.GetName().Name == name)
                {
                    return a;
                }
            }
            string own = Path.Combine(AppDomain.CurrentDomain.BaseDirectory, name + ".dll");
            if (File.Exists(own))
            {
                return Assembly.LoadFrom(own);
            }
            string path = Path.Combine(root, name + ".dll");
            return File.Exists(path) ? Assembly.LoadFrom(path) : null;
        }

        public byte[] Invoke(byte[] payload, Context ctx)
        {
            var args = new List<object>();
            if (inputType != null)
            {
                if (inputType == typeof(Stream))
                {
                    args.Add(new MemoryStream(payload, false));
                }
                else
                {
                    try
                    {
                        args.Add(deserialize.MakeGenericMethod(inputType).Invoke(serializer, new object[] { new MemoryStream(payload, false) }));
                    }
                    catch (TargetInvocationException e)
                    {
                        throw new Failure("Runtime.SerializationException", "Error converting the Lambda event JSON payload to type " + inputType.FullName + ": " + e.InnerException.Message);
                    }
                }
            }
            if (takesContext)
            {
                args.Add(ctx);
            }
            object result;
            try
            {
                result = method.Invoke(target, args.ToArray());
            }
            catch (TargetInvocationException e)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
                throw;
            }
            var task = result as Task;
            if (task != null)
            {
                try
                {
                    task.Wait();
                }
                catch (AggregateException e)
                {
                    Exception inner = e.InnerExceptions.Count == 1 ? e.InnerExceptions[0] : e;
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(inner).Throw();
                }
                result = outputType == null ? null : task.GetType().GetProperty("Result").GetValue(task);
            }
            if (outputType == null)
            {
                return new byte[0];
            }
            var s = result as Stream;
            if (s != null)
            {
                var copy = new MemoryStream();
                s.CopyTo(copy);
                return copy.ToArray();
            }
            var outStream = new MemoryStream();
            serialize.MakeGenericMethod(outputType).Invoke(serializer, new object[] { result, outStream });
            return outStream.ToArray();
        }
    }

    public static class Bootstrap
    {
        private const string Api = "/2018-06-01/runtime";
        private static readonly JavaScriptSerializer Json = new JavaScriptSerializer();

        public static int Main()
        {
            string api = Environment.GetEnvironmentVariable("AWS_LAMBDA_RUNTIME_API");
            if (string.IsNullOrEmpty(api))
            {
                Console.Error.WriteLine("AWS_LAMBDA_RUNTIME_API is not set");
                return 1;
            }
            var stdout = new StreamWriter(Console.OpenStandardOutput(), new UTF8Encoding(false)) { AutoFlush = true };
            Console.SetOut(stdout);
            var rt = new RuntimeApi(api);
            string root = Environment.GetEnvironmentVariable("LAMBDA_TASK_ROOT");
            if (string.IsNullOrEmpty(root))
            {
                root = "/var/task";
            }
            Handler handler;
            try
            {
                handler = Handler.Load(Environment.GetEnvironmentVariable("_HANDLER"), root);
            }
            catch (Exception e)
            {
                string type;
                byte[] body = ErrorBody(e, out type);
                Console.WriteLine(e.ToString());
                rt.Post(Api + "/init/error", body, type);
                return 1;
            }
            string functionName = Environment.GetEnvironmentVariable("AWS_LAMBDA_FUNCTION_NAME");
            string functionVersion = Environment.GetEnvironmentVariable("AWS_LAMBDA_FUNCTION_VERSION");
            string logGroup = Environment.GetEnvironmentVariable("AWS_LAMBDA_LOG_GROUP_NAME");
            string logStream = Environment.GetEnvironmentVariable("AWS_LAMBDA_LOG_STREAM_NAME");
            int memory;
            int.TryParse(Environment.GetEnvironmentVariable("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), out memory);
            var logger = new Logger();
            while (true)
            {
                RuntimeApi.Response next;
                try
                {
                    next = rt.Request("GET", Api + "/invocation/next", null, null);
                }
                catch (Exception e)
                {
                    Console.Error.WriteLine("Runtime API /next failed: " + e.Message);
                    return 1;
                }
                string id = next.Header("Lambda-Runtime-Aws-Request-Id");
                if (id == null)
                {
                    Console.Error.WriteLine("Runtime API answered /next without a request id");
                    return 1;
                }
                long deadline;
                if (!long.TryParse(next.Header("Lambda-Runtime-Deadline-Ms"), out deadline))
                {
                    deadline = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 3000;
                }
                string trace = next.Header("Lambda-Runtime-Trace-Id");
                Environment.SetEnvironmentVariable("_X_AMZN_TRACE_ID", trace);
                var ctx = new Context
                {
                    DeadlineMs = deadline,
                    AwsRequestId = id,
                    FunctionName = functionName,
                    FunctionVersion = functionVersion,
                    InvokedFunctionArn = next.Header("Lambda-Runtime-Invoked-Function-Arn"),
                    Logger = logger,
                    LogGroupName = logGroup,
                    LogStreamName = logStream,
                    MemoryLimitInMB = memory,
                    ClientContext = ClientContextOf(next.Header("Lambda-Runtime-Client-Context")),
                    Identity = IdentityOf(next.Header("Lambda-Runtime-Cognito-Identity")),
                };
                byte[] output;
                try
                {
                    output = handler.Invoke(next.Body, ctx);
                }
                catch (Exception e)
                {
                    string type;
                    byte[] body = ErrorBody(e, out type);
                    Console.WriteLine(e.ToString());
                    Console.Out.Flush();
                    rt.Post(Api + "/invocation/" + id + "/error", body, type);
                    continue;
                }
                Console.Out.Flush();
                rt.Post(Api + "/invocation/" + id + "/response", output, null);
            }
        }

        private static Dictionary<string, object> JsonObject(string header)
        {
            if (string.IsNullOrEmpty(header))
            {
                return null;
            }
            try
            {
                return Json.DeserializeObject(header) as Dictionary<string, object>;
            }
            catch (Exception)
            {
                return null;
            }
        }

        private static string Str(Dictionary<string, object> m, params string[] keys)
        {
            if (m == null)
            {
                return null;
            }
            foreach (string k in keys)
            {
                object v;
                if (m.TryGetValue(k, out v) && v != null)
                {
                    return v.ToString();
                }
            }
            return null;
        }

        private static IDictionary<string, string> Strings(Dictionary<string, object> m, string key)
        {
            var d = new Dictionary<string, string>();
            object v;
            var inner = m != null && m.TryGetValue(key, out v) ? v as Dictionary<string, object> : null;
            if (inner != null)
            {
                foreach (var e in inner)
                {
                    d[e.Key] = e.Value == null ? null : e.Value.ToString();
                }
            }
            return d;
        }

        private static IClientContext ClientContextOf(string header)
        {
            var m = JsonObject(header);
            if (m == null)
            {
                return null;
            }
            object c;
            var cm = m.TryGetValue("client", out c) ? c as Dictionary<string, object> : null;
            return new ClientContextImpl
            {
                Client = cm == null ? null : new ClientApplication
                {
                    AppPackageName = Str(cm, "app_package_name", "appPackageName"),
                    AppTitle = Str(cm, "app_title", "appTitle"),
                    AppVersionCode = Str(cm, "app_version_code", "appVersionCode"),
                    AppVersionName = Str(cm, "app_version_name", "appVersionName"),
                    InstallationId = Str(cm, "installation_id", "installationId"),
                },
                Custom = Strings(m, "custom"),
                Environment = Strings(m, "env"),
            };
        }

        private static ICognitoIdentity IdentityOf(string header)
        {
            var m = JsonObject(header);
            return new Identity
            {
                IdentityId = Str(m, "cognitoIdentityId", "identityId") ?? "",
                IdentityPoolId = Str(m, "cognitoIdentityPoolId", "identityPoolId") ?? "",
            };
        }

        /// <summary>The error body Lambda's .NET runtime posts: the exception type's name, its
        /// message, its stack trace lines and its inner exception as the cause.</summary>
        private static byte[] ErrorBody(Exception e, out string type)
        {
            var f = e as Failure;
            type = f != null ? f.Type : e.GetType().Name;
            return new UTF8Encoding(false).GetBytes(Json.Serialize(Describe(e, 0)));
        }

        private static Dictionary<string, object> Describe(Exception e, int depth)
        {
            var f = e as Failure;
            var m = new Dictionary<string, object>();
            m["errorType"] = f != null ? f.Type : e.GetType().Name;
            m["errorMessage"] = e.Message;
            if (f == null)
            {
                m["stackTrace"] = (e.StackTrace ?? "").Split('\n')
                    .Select(l => l.Trim())
                    .Where(l => l.Length > 0 && !l.Contains("Updraft.Runtime.") && !l.Contains("System.Reflection.")
                        && !l.Contains("System.Runtime.ExceptionServices.") && !l.StartsWith("--- End of"))
                    .ToArray();
            }
            if (e.InnerException != null && depth < 8)
            {
                m["cause"] = Describe(e.InnerException, depth + 1);
            }
            return m;
        }
    }
}

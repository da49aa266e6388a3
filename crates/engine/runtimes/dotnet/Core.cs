// Amazon.Lambda.Core as a handler compiled against Lambda's package sees it: the same namespace,
// type and member names, written from their documented signatures.
using System;
using System.Collections.Generic;
using System.IO;

[assembly: System.Reflection.AssemblyVersion("1.0.0.0")]

namespace Amazon.Lambda.Core
{
    public interface ILambdaLogger
    {
        void Log(string message);
        void LogLine(string message);
    }

    public interface IClientApplication
    {
        string AppPackageName { get; }
        string AppTitle { get; }
        string AppVersionCode { get; }
        string AppVersionName { get; }
        string InstallationId { get; }
    }

    public interface IClientContext
    {
        IDictionary<string, string> Environment { get; }
        IClientApplication Client { get; }
        IDictionary<string, string> Custom { get; }
    }

    public interface ICognitoIdentity
    {
        string IdentityId { get; }
        string IdentityPoolId { get; }
    }

    public interface ILambdaContext
    {
        string AwsRequestId { get; }
        IClientContext ClientContext { get; }
        string FunctionName { get; }
        string FunctionVersion { get; }
        ICognitoIdentity Identity { get; }
        string InvokedFunctionArn { get; }
        ILambdaLogger Logger { get; }
        string LogGroupName { get; }
        string LogStreamName { get; }
        int MemoryLimitInMB { get; }
        TimeSpan RemainingTime { get; }
    }

    public interface ILambdaSerializer
    {
        T Deserialize<T>(Stream requestStream);
        void Serialize<T>(T response, Stream responseStream);
    }

    [AttributeUsage(AttributeTargets.Assembly | AttributeTargets.Method, AllowMultiple = false)]
    public sealed class LambdaSerializerAttribute : Attribute
    {
        public LambdaSerializerAttribute(Type serializerType)
        {
            SerializerType = serializerType;
        }

        public Type SerializerType { get; set; }
    }

    /// <summary>Writes to the function's log (standard output) from anywhere.</summary>
    public static class LambdaLogger
    {
        private static readonly object Gate = new object();

        public static void Log(string message)
        {
            lock (Gate)
            {
                Console.Out.Write(message);
                Console.Out.Flush();
            }
        }
    }
}

using System;
using System.IO;
using Amazon.Lambda.Core;

namespace Amazon.Lambda.Serialization.SystemTextJson
{
    public class DefaultLambdaJsonSerializer : ILambdaSerializer
    {
        public T Deserialize<T>(Stream requestStream) { throw new NotImplementedException(); }
        public void Serialize<T>(T response, Stream responseStream) { throw new NotImplementedException(); }
    }
}

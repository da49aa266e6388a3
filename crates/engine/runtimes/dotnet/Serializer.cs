// The serializer a handler names in [assembly: LambdaSerializer(typeof(...))]. Lambda's is built
// on System.Text.Json; Mono has none, so this one is built on Mono's JavaScriptSerializer
// (System.Web.Extensions): property names match case-insensitively on input and are written as
// declared on output, as Lambda's DefaultLambdaJsonSerializer does.
using System;
using System.IO;
using System.Text;
using System.Web.Script.Serialization;
using Amazon.Lambda.Core;

[assembly: System.Reflection.AssemblyVersion("1.0.0.0")]

namespace Amazon.Lambda.Serialization.SystemTextJson
{
    public class DefaultLambdaJsonSerializer : ILambdaSerializer
    {
        private readonly JavaScriptSerializer json = new JavaScriptSerializer { MaxJsonLength = int.MaxValue, RecursionLimit = 256 };

        public T Deserialize<T>(Stream requestStream)
        {
            string text;
            using (var r = new StreamReader(requestStream, new UTF8Encoding(false)))
            {
                text = r.ReadToEnd();
            }
            if (typeof(T) == typeof(string))
            {
                object v = json.DeserializeObject(text);
                return (T)(object)(v as string ?? text);
            }
            return json.Deserialize<T>(text);
        }

        public void Serialize<T>(T response, Stream responseStream)
        {
            byte[] bytes = new UTF8Encoding(false).GetBytes(json.Serialize(response));
            responseStream.Write(bytes, 0, bytes.Length);
        }
    }

}

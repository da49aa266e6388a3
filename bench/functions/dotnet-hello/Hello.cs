using System.Collections.Generic;
using Amazon.Lambda.Core;

[assembly: LambdaSerializer(typeof(Amazon.Lambda.Serialization.SystemTextJson.DefaultLambdaJsonSerializer))]

namespace Example
{
    /// <summary>The C# hello of bench/jvm.py: {"hello": "world"}.</summary>
    public class Hello
    {
        public Dictionary<string, string> Handler(Dictionary<string, object> input, ILambdaContext context)
        {
            return new Dictionary<string, string> { { "hello", "world" } };
        }
    }
}

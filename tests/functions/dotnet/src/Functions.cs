using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Threading.Tasks;
using Amazon.Lambda.Core;

[assembly: LambdaSerializer(typeof(Amazon.Lambda.Serialization.SystemTextJson.DefaultLambdaJsonSerializer))]

namespace Example
{
    public class Person
    {
        public string Name { get; set; }
        public int Age { get; set; }
        public List<string> Tags { get; set; }
        public Address Home { get; set; }
    }

    public class Address
    {
        public string City { get; set; }
    }

    public class Greeting
    {
        public string Message { get; set; }
        public int NextAge { get; set; }
        public int Tags { get; set; }
    }

    public class Functions
    {
        private static int calls;

        /// <summary>Sync, a dictionary in, a string out; counts calls in a static.</summary>
        public string Hello(Dictionary<string, object> input, ILambdaContext context)
        {
            calls++;
            context.Logger.LogLine("hello from the logger");
            Console.WriteLine("hello from Console");
            object name;
            input.TryGetValue("name", out name);
            return "Hello, " + (name ?? "world") + "! call " + calls + " in " + context.FunctionName
                + " (" + context.MemoryLimitInMB + " MB, " + context.AwsRequestId + ")";
        }

        /// <summary>A POCO in and out.</summary>
        public Greeting Pojo(Person p)
        {
            return new Greeting
            {
                Message = p.Name + " from " + (p.Home == null ? "nowhere" : p.Home.City),
                NextAge = p.Age + 1,
                Tags = p.Tags == null ? 0 : p.Tags.Count,
            };
        }

        /// <summary>Async: a Task of a POCO.</summary>
        public async Task<Greeting> PojoAsync(Person p, ILambdaContext context)
        {
            await Task.Delay(20);
            return new Greeting { Message = "later, " + p.Name, NextAge = p.Age + 2 };
        }

        /// <summary>Throws with an inner exception.</summary>
        public string Fail(Dictionary<string, object> input)
        {
            try
            {
                int.Parse("not a number");
            }
            catch (FormatException e)
            {
                throw new InvalidOperationException("boom: " + input["why"], e);
            }
            return "unreachable";
        }

        /// <summary>Async and throwing after an await.</summary>
        public async Task<string> FailAsync(Dictionary<string, object> input)
        {
            await Task.Delay(5);
            throw new ArgumentException("async boom");
        }

        /// <summary>Streams in and out, no serializer involved.</summary>
        public Stream Raw(Stream input)
        {
            string text = new StreamReader(input).ReadToEnd();
            return new MemoryStream(Encoding.UTF8.GetBytes(text.ToUpperInvariant()));
        }
    }
}

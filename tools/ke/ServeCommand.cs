using System.CommandLine;
using KernelEngine.Server;

namespace KernelEngine.Cli;

/// <summary><c>ke serve</c>: the OpenAI-compatible server (<see cref="OpenAIServer"/>) until Ctrl+C / SIGTERM.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = CliCommon.Model(); var device = CliCommon.Device(); var threads = CliCommon.Threads(); var kvType = CliCommon.KvType();
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port to listen on (0: any free port)", DefaultValueFactory = _ => 8080 }.InRange(0, 65535);
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on /v1 requests (default: the KE_API_KEY environment variable, else none)" };
        var maxBatch = new Option<int>("--max-batch") { Description = "Sequences decoded together (continuous batching)", DefaultValueFactory = _ => 8 }.InRange(1, Kernels.MatMul.MatVecCpu.MaxRows);
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests that may wait for a slot; more get 429", DefaultValueFactory = _ => 64 }.InRange(0, 1 << 20);
        var context = new Option<int?>("--context") { Description = "Longest prompt + completion per request (default: the model's context)" }.InRange(2, int.MaxValue);
        var name = new Option<string?>("--model-id") { Description = "The model's id in /v1/models and requests (default: the folder or file name)" };
        var cmd = new Command("serve", "OpenAI-compatible HTTP server: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models, /health, /metrics")
        {
            model, host, port, apiKey, maxBatch, maxQueue, context, name, device, threads, kvType,
        };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            int? ctx = p.GetValue(context);
            using var m = CliProgress.Load(p.GetValue(model)!, new ModelOptions { Device = p.GetValue(device)!, Threads = p.GetValue(threads), ContextLength = ctx, KvCacheType = p.GetValue(kvType) });
            var options = new ServerOptions
            {
                Host = p.GetValue(host)!, Port = p.GetValue(port), ApiKey = p.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("KE_API_KEY"),
                MaxBatch = p.GetValue(maxBatch), MaxQueue = p.GetValue(maxQueue), ModelId = p.GetValue(name),
            };
            var server = OpenAIServer.Build(m, options);
            try
            {
                server.StartAsync().GetAwaiter().GetResult();
                Console.Error.WriteLine($"ke serve: {server.ModelId} on {server.Address} (max batch {options.MaxBatch}, context {m.ContextLength}{(options.ApiKey != null ? ", API key required" : "")}); Ctrl+C stops");
                server.RunAsync().GetAwaiter().GetResult();
            }
            finally
            {
                server.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
            return 0;
        }));
        return cmd;
    }
}

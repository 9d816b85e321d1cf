using System.CommandLine;

namespace KernelEngine.Cli;

/// <summary><c>ke loadtest</c>: a bounded load test of a running server (<see cref="LoadTest"/>); exit code 1 when a
/// request failed with a 5xx or a connection error, or the server still holds sequences or KV pages afterwards.</summary>
internal static class LoadTestCommand
{
    public static Command Create()
    {
        var json = CliCommon.Json();
        var url = new Option<string>("--url") { Description = "Server address", DefaultValueFactory = _ => "http://127.0.0.1:8080" };
        var requests = new Option<int>("--requests", "-n") { Description = "Streamed completions in all", DefaultValueFactory = _ => 500 }.InRange(1, 1_000_000);
        var concurrency = new Option<int>("--concurrency", "-c") { Description = "Requests in flight", DefaultValueFactory = _ => 32 }.InRange(1, 10_000);
        var disconnect = new Option<double>("--disconnect") { Description = "Share of clients that hang up after 1-5 chunks", DefaultValueFactory = _ => 0.1 }.InRange(0.0, 1.0);
        var maxTokens = new Option<int>("--max-tokens") { Description = "Tokens per completion", DefaultValueFactory = _ => 64 }.InRange(1, 1 << 20);
        var apiKey = new Option<string?>("--api-key") { Description = "Bearer key (default: KE_API_KEY)" };
        var seed = new Option<int>("--seed") { Description = "Seed of the prompt mix", DefaultValueFactory = _ => 1 };
        var cmd = new Command("loadtest", "Load-test an OpenAI-compatible server: streamed completions of mixed prompt lengths, some clients hanging up; TTFT p50/p99, tok/s, leaks")
        {
            url, requests, concurrency, disconnect, maxTokens, apiKey, seed, json,
        };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var r = LoadTest.RunAsync(new LoadTest.Options(p.GetValue(url)!, p.GetValue(requests), p.GetValue(concurrency), p.GetValue(disconnect),
                p.GetValue(maxTokens), p.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("KE_API_KEY"), p.GetValue(seed))).GetAwaiter().GetResult();
            if (p.GetValue(json))
                CliCommon.PrintJson(new
                {
                    requests = r.Requests, statuses = r.Statuses.ToDictionary(kv => kv.Key.ToString(), kv => kv.Value), disconnected = r.Disconnected,
                    failed_5xx = r.Failed5xx, transport_errors = r.TransportErrors, ttft_p50_ms = r.TtftP50Ms, ttft_p99_ms = r.TtftP99Ms,
                    prompt_tokens = r.PromptTokens, completion_tokens = r.CompletionTokens, seconds = r.Seconds, tokens_per_second = r.TokensPerSecond,
                    active_after = r.ActiveAfter, kv_pages_after = r.KvPagesAfter, clean = r.Clean,
                });
            else
            {
                Console.WriteLine($"requests {r.Requests} ({string.Join(", ", r.Statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Value} x {kv.Key}"))}), {r.Disconnected} hung up, {r.TransportErrors} connection errors");
                Console.WriteLine($"time to first token p50 {r.TtftP50Ms:F0} ms, p99 {r.TtftP99Ms:F0} ms; {r.CompletionTokens} completion tokens in {r.Seconds:F1} s = {r.TokensPerSecond:F1} tok/s"
                    + $" (prompts of the finished requests: {r.PromptTokens} tokens)");
                Console.WriteLine($"afterwards: {r.ActiveAfter} sequences, {r.KvPagesAfter} KV pages held");
            }
            return r.Clean ? 0 : 1;
        }));
        return cmd;
    }
}

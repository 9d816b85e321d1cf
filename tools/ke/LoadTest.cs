using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;

namespace KernelEngine.Cli;

/// <summary>
/// A bounded load test of an OpenAI-compatible server (<c>ke loadtest</c>): a fixed number of streamed completions,
/// a fixed number in flight, prompts of mixed lengths, and a share of clients that hang up mid-stream. Reports status
/// codes, time to first token (p50/p99), completion tokens per second over the whole run, and — from /health — the
/// sequences and KV pages still held once everything has ended (a leak shows as non-zero).
/// </summary>
internal static class LoadTest
{
    public sealed record Options(string Url, int Requests, int Concurrency, double DisconnectShare, int MaxTokens, string? ApiKey, int Seed);

    public sealed record Report(int Requests, Dictionary<int, int> Statuses, int Disconnected, int Failed5xx, int TransportErrors,
        double TtftP50Ms, double TtftP99Ms, long PromptTokens, long CompletionTokens, double Seconds, int ActiveAfter, int KvPagesAfter)
    {
        public double TokensPerSecond => CompletionTokens / Seconds;
        public bool Clean => Failed5xx == 0 && TransportErrors == 0 && ActiveAfter == 0 && KvPagesAfter == 0;
    }

    private static readonly string[] Words = "once upon a time there was a little girl named lily she liked to play in the park with her dog and one day the sun was hot".Split(' ');

    public static async Task<Report> RunAsync(Options o, CancellationToken ct = default)
    {
        using var http = new HttpClient { BaseAddress = new Uri(o.Url.TrimEnd('/') + "/"), Timeout = TimeSpan.FromMinutes(10) };
        if (o.ApiKey != null) http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", o.ApiKey);
        var rng = new Random(o.Seed);
        var plans = Enumerable.Range(0, o.Requests).Select(_ =>
        {
            int words = rng.Next(3) switch { 0 => rng.Next(2, 8), 1 => rng.Next(10, 25), _ => rng.Next(40, 80) };   // short, medium, long prompts
            string prompt = string.Join(' ', Enumerable.Range(0, words).Select(_ => Words[rng.Next(Words.Length)]));
            int hangUpAfter = rng.NextDouble() < o.DisconnectShare ? rng.Next(1, 6) : -1;
            return (Prompt: prompt, HangUpAfter: hangUpAfter);
        }).ToArray();
        var statuses = new Dictionary<int, int>();
        var ttfts = new List<double>();
        long tokens = 0, promptTokens = 0;
        int disconnected = 0, transport = 0, next = -1;
        var sw = Stopwatch.StartNew();
        async Task Worker()
        {
            while (Interlocked.Increment(ref next) is int i && i < plans.Length)
            {
                var (prompt, hangUp) = plans[i];
                var start = Stopwatch.GetTimestamp();
                try
                {
                    using var req = new HttpRequestMessage(HttpMethod.Post, "v1/completions")
                    {
                        Content = JsonContent.Create(new { prompt, max_tokens = o.MaxTokens, temperature = 0.8, stream = true, stream_options = new { include_usage = true } }),
                    };
                    using var r = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ct);
                    lock (statuses) statuses[(int)r.StatusCode] = statuses.GetValueOrDefault((int)r.StatusCode) + 1;
                    if (!r.IsSuccessStatusCode) continue;
                    using var reader = new StreamReader(await r.Content.ReadAsStreamAsync(ct));
                    int events = 0;
                    bool first = true;
                    while (await reader.ReadLineAsync(ct) is string line)
                    {
                        if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                        string data = line[6..];
                        if (data == "[DONE]") break;
                        using var doc = JsonDocument.Parse(data);
                        if (first && doc.RootElement.GetProperty("choices") is { ValueKind: JsonValueKind.Array } c && c.GetArrayLength() > 0
                            && c[0].TryGetProperty("text", out var t) && t.GetString()!.Length > 0)
                        {
                            first = false;
                            lock (ttfts) ttfts.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                        }
                        if (doc.RootElement.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object)
                        {
                            Interlocked.Add(ref tokens, u.GetProperty("completion_tokens").GetInt64());
                            Interlocked.Add(ref promptTokens, u.GetProperty("prompt_tokens").GetInt64());
                        }
                        if (++events == hangUp) { Interlocked.Increment(ref disconnected); break; }   // hang up: disposing the response closes the connection
                    }
                }
                catch (Exception e) when (e is HttpRequestException or IOException) { Interlocked.Increment(ref transport); }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, o.Concurrency).Select(_ => Task.Run(Worker, ct)));
        double seconds = sw.Elapsed.TotalSeconds;
        // Everything has ended: the server must hold no sequence and no KV page (a hung-up stream is freed at its next step).
        int active = -1, pages = -1;
        for (int i = 0; i < 100; i++)
        {
            using var health = JsonDocument.Parse(await http.GetStringAsync("health", ct));
            active = health.RootElement.GetProperty("active").GetInt32();
            pages = health.RootElement.GetProperty("kv_pages_in_use").GetInt32();
            if (active == 0 && pages == 0) break;
            await Task.Delay(50, ct);
        }
        ttfts.Sort();
        double P(double q) => ttfts.Count == 0 ? double.NaN : ttfts[Math.Min(ttfts.Count - 1, (int)Math.Ceiling(q * ttfts.Count) - 1)];
        return new Report(o.Requests, statuses, disconnected, statuses.Where(kv => kv.Key >= 500).Sum(kv => kv.Value), transport,
            P(0.50), P(0.99), promptTokens, tokens, seconds, active, pages);
    }
}

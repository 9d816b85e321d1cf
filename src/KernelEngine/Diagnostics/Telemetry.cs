using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace KernelEngine.Diagnostics;

/// <summary>
/// Metrics and traces as .NET apps collect them (dotnet-counters, OpenTelemetry's AddMeter / AddSource with
/// <see cref="Name"/>). Meter "KernelEngine": <c>ke.prompt_tokens</c> (prompt tokens fed, cache reuse excluded),
/// <c>ke.generated_tokens</c>, <c>ke.time_to_first_token</c> (s), <c>ke.prefill.duration</c> (s), <c>ke.decode.duration</c>
/// (s), <c>ke.decode.tokens_per_second</c>, <c>ke.load.duration</c> (s), <c>ke.kv_cache.size</c> (bytes held by live
/// sessions), <c>ke.batch.queue_depth</c>, <c>ke.batch.size</c>, <c>ke.kv_pages.in_use</c> (batched generators). ActivitySource "KernelEngine": spans <c>ke.load</c>, <c>ke.generate</c> and its child <c>ke.prefill</c>.
/// </summary>
public static class Telemetry
{
    /// <summary>The meter's and the activity source's name: "KernelEngine".</summary>
    public const string Name = "KernelEngine";
    private static readonly string? Version = typeof(Telemetry).Assembly.GetName().Version?.ToString();

    /// <summary>Spans ke.load, ke.generate and ke.prefill.</summary>
    public static readonly ActivitySource Source = new(Name, Version);
    /// <summary>The library's instruments.</summary>
    public static readonly Meter Meter = new(Name, Version);

    /// <summary>ke.prompt_tokens: prompt tokens fed (cache reuse excluded).</summary>
    public static readonly Counter<long> PromptTokens = Meter.CreateCounter<long>("ke.prompt_tokens", "{token}", "Prompt tokens fed to the model (tokens reused from the cache not counted)");
    /// <summary>ke.generated_tokens: tokens generated.</summary>
    public static readonly Counter<long> GeneratedTokens = Meter.CreateCounter<long>("ke.generated_tokens", "{token}", "Tokens generated");
    /// <summary>ke.time_to_first_token, seconds.</summary>
    public static readonly Histogram<double> TimeToFirstToken = Meter.CreateHistogram<double>("ke.time_to_first_token", "s", "From the start of a generation to its first token");
    /// <summary>ke.prefill.duration, seconds.</summary>
    public static readonly Histogram<double> PrefillDuration = Meter.CreateHistogram<double>("ke.prefill.duration", "s", "Prompt processing time of a generation");
    /// <summary>ke.decode.duration, seconds.</summary>
    public static readonly Histogram<double> DecodeDuration = Meter.CreateHistogram<double>("ke.decode.duration", "s", "Token generation time of a generation");
    /// <summary>ke.decode.tokens_per_second.</summary>
    public static readonly Histogram<double> DecodeTokensPerSecond = Meter.CreateHistogram<double>("ke.decode.tokens_per_second", "{token}/s", "Decode speed of a generation");
    /// <summary>ke.load.duration, seconds.</summary>
    public static readonly Histogram<double> LoadSeconds = Meter.CreateHistogram<double>("ke.load.duration", "s", "Model load time");
    /// <summary>ke.kv_cache.size: bytes of KV cache held by live sessions.</summary>
    public static readonly UpDownCounter<long> KvCacheBytes = Meter.CreateUpDownCounter<long>("ke.kv_cache.size", "By", "KV cache memory held by live sessions");

    /// <summary>ke.batch.queue_depth: requests waiting in batched generators.</summary>
    public static readonly UpDownCounter<long> QueueDepth = Meter.CreateUpDownCounter<long>("ke.batch.queue_depth", "{request}", "Requests waiting for a slot in batched generators");
    /// <summary>ke.batch.size: sequences per batched decode step.</summary>
    public static readonly Histogram<int> BatchSize = Meter.CreateHistogram<int>("ke.batch.size", "{sequence}", "Sequences decoded together in one step");
    /// <summary>ke.kv_pages.in_use: KV pages held by batched sequences.</summary>
    public static readonly UpDownCounter<long> KvPagesInUse = Meter.CreateUpDownCounter<long>("ke.kv_pages.in_use", "{page}", "KV cache pages held by batched sequences");

    /// <summary>Records a finished generation.</summary>
    internal static void Record(GenerationStats s, double timeToFirstTokenSeconds)
    {
        PromptTokens.Add(s.PromptTokens - s.ReusedPromptTokens);
        GeneratedTokens.Add(s.GeneratedTokens);
        if (timeToFirstTokenSeconds >= 0) TimeToFirstToken.Record(timeToFirstTokenSeconds);
        PrefillDuration.Record(s.PrefillSeconds);
        DecodeDuration.Record(s.DecodeSeconds);
        if (s.DecodeTokensPerSecond > 0) DecodeTokensPerSecond.Record(s.DecodeTokensPerSecond);
    }

    /// <summary>Starts a span that is not left as the ambient Activity.Current (generation is an iterator that yields to
    /// the caller between tokens).</summary>
    internal static Activity? StartDetached(string name, Activity? parent = null)
    {
        var previous = Activity.Current;
        var a = parent != null ? Source.StartActivity(name, ActivityKind.Internal, parent.Context) : Source.StartActivity(name);
        Activity.Current = previous;
        return a;
    }
}

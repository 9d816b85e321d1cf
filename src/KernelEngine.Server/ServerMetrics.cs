using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace KernelEngine.Server;

/// <summary>The server's own instruments (meter "KernelEngine.Server"), exported on /metrics beside the library's
/// (tokens, time to first token, tok/s, queue depth, batch size, KV pages) and ASP.NET Core's.</summary>
internal sealed class ServerMetrics : IDisposable
{
    public const string MeterName = "KernelEngine.Server";
    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _requests;
    private readonly Histogram<double> _ttft;

    public ServerMetrics(Func<BatchedGeneratorStats> stats)
    {
        _requests = _meter.CreateCounter<long>("ke.server.requests", "{request}", "Requests answered, by route and status code");
        _ttft = _meter.CreateHistogram<double>("ke.server.time_to_first_token", "s", "From a request's arrival to its first generated token");
        _meter.CreateObservableGauge("ke.server.active_sequences", () => stats().Active, "{sequence}", "Sequences holding a batch slot");
        _meter.CreateObservableGauge("ke.server.queued_requests", () => stats().Queued, "{request}", "Requests waiting for a slot");
        _meter.CreateObservableGauge("ke.server.kv_pages_in_use", () => stats().KvPagesInUse, "{page}", "KV cache pages held");
        _meter.CreateObservableGauge("ke.server.kv_pages", () => stats().KvPages, "{page}", "KV cache pages in all");
        _meter.CreateObservableGauge("ke.server.kv_pages_shared", () => stats().KvPagesShared, "{page}", "KV cache pages sequences map from others' caches (shared prompt prefixes)");
    }

    public void Request(string route, int status) => _requests.Add(1, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("status", status));

    public void TimeToFirstToken(long startTimestamp) => _ttft.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds);

    public void Dispose() => _meter.Dispose();
}

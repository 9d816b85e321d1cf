using System.Diagnostics;
using System.Diagnostics.Metrics;
using KernelEngine.Decoding;
using KernelEngine.Diagnostics;
using NUnit.Framework;

namespace KernelEngine.Tests.Library;

/// <summary>What an app controls and observes: thread count, async loading with progress and cancellation, device
/// strings, and the metrics and spans the library publishes (names are a contract, documented in README).</summary>
public sealed class RuntimeControlsTests
{
    private static readonly GenerationSettings Greedy16 = new() { MaxTokens = 16, Sampling = SamplingSettings.Greedy, StopAtEos = false };

    [Test]
    public void OneThread_GivesTheReferenceIds()
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { Threads = 1, Device = "cpu" });
        Assert.That(model.Device.Capabilities, Does.StartWith("1 threads"));
        using var s = model.CreateSession();
        var ids = s.Generate(s.EncodePrompt(""), Greedy16).Select(t => t.Id);
        Assert.That(ids, Is.EqualTo(Reference.Stories().BosGreedyIds.Skip(1).Take(16)));
        Assert.Throws<InvalidRequestException>(() => new ModelOptions { Threads = 0 }.Validate());
    }

    [Test]
    public async Task LoadAsync_ReportsProgress_UpToReady()
    {
        var reports = new List<LoadProgress>();
        var progress = new SyncProgress(reports.Add);
        using var model = await Model.LoadAsync(SharedData.Stories, progress: progress);
        Assert.That(reports.First().Stage, Is.EqualTo("reading"));
        Assert.That(reports.Last(), Is.EqualTo(new LoadProgress("ready", 1)));
        var weights = reports.Where(r => r.Stage == "weights").ToList();
        Assert.That(weights, Has.Count.GreaterThan(10));
        Assert.That(weights.Select(r => r.Fraction), Is.Ordered);
        Assert.That(weights.All(r => r.Tensor != null && r.Fraction is > 0 and <= 1), Is.True);
    }

    [Test]
    public async Task LoadAsync_Cancelled_MidWeights_Throws()
    {
        using var cts = new CancellationTokenSource();
        int seen = 0;
        var progress = new SyncProgress(r => { if (r.Stage == "weights" && ++seen == 3) cts.Cancel(); });
        await Assert.CatchAsync<OperationCanceledException>(async () => (await Model.LoadAsync(SharedData.Stories, progress: progress, cancellationToken: cts.Token)).Dispose());
        Assert.That(seen, Is.EqualTo(3), "it stopped at the next weight");
        await Assert.CatchAsync<OperationCanceledException>(async () => (await Model.LoadAsync(SharedData.Stories, cancellationToken: cts.Token)).Dispose());
    }

    [TestCase("cuda:x")]
    [TestCase("cpu:1")]
    [TestCase("tpu")]
    public void BadDeviceStrings_AreDeviceErrors(string device) =>
        Assert.Throws<DeviceException>(() => Model.Load(SharedData.Stories, new ModelOptions { Device = device }).Dispose());

    [Test]
    public void Metrics_AndSpans_AreReported()
    {
        var measured = new Dictionary<string, double>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == Telemetry.Name) l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<long>((i, v, _, _) => { lock (measured) measured[i.Name] = measured.GetValueOrDefault(i.Name) + v; });
        listener.SetMeasurementEventCallback<double>((i, v, _, _) => { lock (measured) measured[i.Name] = measured.GetValueOrDefault(i.Name) + v; });
        listener.Start();
        var spans = new List<string>();
        using var activities = new ActivityListener
        {
            ShouldListenTo = s => s.Name == Telemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = a => { lock (spans) spans.Add(a.OperationName); },
        };
        ActivitySource.AddActivityListener(activities);

        using (var model = Model.Load(SharedData.Stories))
        using (var s = model.CreateSession())
        {
            _ = s.Generate(s.EncodePrompt("Once upon a time"), Greedy16).ToList();
        }
        listener.RecordObservableInstruments();
        foreach (var name in new[] { "ke.prompt_tokens", "ke.generated_tokens", "ke.time_to_first_token", "ke.prefill.duration", "ke.decode.duration",
            "ke.decode.tokens_per_second", "ke.load.duration", "ke.kv_cache.size" })
            Assert.That(measured.ContainsKey(name), Is.True, name);
        Assert.That(measured["ke.generated_tokens"], Is.GreaterThanOrEqualTo(16));
        Assert.That(spans, Does.Contain("ke.load").And.Contain("ke.generate").And.Contain("ke.prefill"));
    }

    /// <summary>IProgress that reports on the calling thread (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(Action<LoadProgress> report) : IProgress<LoadProgress>
    {
        public void Report(LoadProgress value) { lock (this) report(value); }
    }
}

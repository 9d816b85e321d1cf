using System.Diagnostics;
using System.Text.Json;
using KernelEngine.Backends;

namespace KernelEngine.Benchmarking;

/// <summary>Per-kernel totals of one phase.</summary>
public sealed record KernelTotal(string Kernel, int Calls, double TotalMicroseconds, double MeanMicroseconds, double Percent, long Bytes)
{
    /// <summary>Achieved bandwidth of this kernel over the run (bytes moved / time).</summary>
    public double GBps => TotalMicroseconds > 0 ? Bytes / (TotalMicroseconds * 1e3) : 0;
}

/// <summary>Profile of a prefill and of decode steps: per-kernel breakdown, wall time, launches.</summary>
public sealed record ProfileReport(
    int PromptTokens, double PrefillWallMicroseconds, IReadOnlyList<KernelTotal> Prefill,
    int DecodeSteps, double DecodeStepWallMicroseconds, IReadOnlyList<KernelTotal> DecodeStep, double DecodeAttributedFraction,
    double LaunchesPerDecodeStep, IReadOnlyList<ProfileEvent> Events);

/// <summary>
/// Runs a prompt of random tokens through a profiled model, then decode steps, and attributes the wall time of each
/// phase to kernels (the profiler synchronizes after every op, so the sum is what the device spent).
/// </summary>
public static class Profiler
{
    /// <summary>Profiles one prefill of <paramref name="promptTokens"/> tokens and <paramref name="decodeSteps"/> decode steps on a model loaded with <see cref="ModelOptions.Profile"/>.</summary>
    public static ProfileReport Run(Model model, int promptTokens, int decodeSteps)
    {
        var prof = model.Profiler ?? throw new InvalidOperationException("load the model with ModelOptions.Profile = true");
        var rng = new Random(7);
        var prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(3, model.Config.VocabSize)).ToArray();
        using var session = model.CreateSession();
        // Warm-up (JIT, kernel compilation, page-in) through the very code the measured loops run, recording included
        // (first calls JIT-compile the recorder and TensorPrimitives too), then discarded.
        for (int i = 0; i < 3; i++)
        {
            session.Feed(prompt.AsSpan(0, Math.Min(8, prompt.Length)));
            long l0 = model.Launches;
            var sw0 = Stopwatch.StartNew();
            int next0 = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(session.Feed([5]));
            _ = sw0.Elapsed.TotalMicroseconds + next0 + (model.Launches - l0);
            session.Reset();
        }
        prof.Enabled = true;
        prof.Clear();
        var sw = Stopwatch.StartNew();
        session.Feed(prompt);
        double prefillWall = sw.Elapsed.TotalMicroseconds;
        var prefillEvents = prof.Events.ToList();
        prof.Clear();
        double decodeWall = 0;
        long launches = 0;
        int next = 1;
        for (int i = 0; i < decodeSteps; i++)
        {
            long l0 = model.Launches;
            sw.Restart();
            var logits = session.Feed([next]);
            next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
            decodeWall += sw.Elapsed.TotalMicroseconds;
            launches += model.Launches - l0;
        }
        var decodeEvents = prof.Events.ToList();
        var decodeTotals = Totals(decodeEvents, decodeWall, decodeSteps);
        double attributed = decodeEvents.Sum(e => e.DurationMicroseconds) / decodeWall;
        return new ProfileReport(promptTokens, prefillWall, Totals(prefillEvents, prefillWall, 1), decodeSteps, decodeWall / decodeSteps,
            decodeTotals, attributed, launches / (double)decodeSteps, prefillEvents.Concat(decodeEvents).ToList());
    }

    private static IReadOnlyList<KernelTotal> Totals(List<ProfileEvent> events, double wall, int steps) =>
        events.GroupBy(e => e.Kernel)
            .Select(g => new KernelTotal(g.Key, g.Count() / steps, g.Sum(e => e.DurationMicroseconds) / steps, g.Average(e => e.DurationMicroseconds),
                100 * g.Sum(e => e.DurationMicroseconds) / wall, g.Sum(e => e.Bytes) / steps))
            .OrderByDescending(t => t.TotalMicroseconds).ToList();

    /// <summary>Chrome trace-event JSON (opens in Perfetto or chrome://tracing).</summary>
    public static void WriteChromeTrace(string path, ProfileReport report)
    {
        using var fs = File.Create(path);
        using var w = new Utf8JsonWriter(fs);
        w.WriteStartObject();
        w.WriteStartArray("traceEvents");
        foreach (var e in report.Events)
        {
            w.WriteStartObject();
            w.WriteString("name", e.Kernel);
            w.WriteString("cat", "kernel");
            w.WriteString("ph", "X");
            w.WriteNumber("ts", e.StartMicroseconds);
            w.WriteNumber("dur", e.DurationMicroseconds);
            w.WriteNumber("pid", 1);
            w.WriteNumber("tid", 1);
            w.WriteStartObject("args");
            w.WriteString("detail", e.Detail);
            w.WriteNumber("bytes", e.Bytes);
            w.WriteNumber("launches", e.Launches);
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteString("displayTimeUnit", "ms");
        w.WriteEndObject();
    }
}

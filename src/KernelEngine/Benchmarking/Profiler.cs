using System.Diagnostics;
using System.Text.Json;
using KernelEngine.Backends;

namespace KernelEngine.Benchmarking;

/// <summary>Per-kernel totals of one phase.</summary>
public sealed record KernelTotal(string Kernel, int Calls, double TotalMicroseconds, double MeanMicroseconds, double Percent, long Bytes)
{
    /// <summary>Achieved bandwidth of this kernel over the run (bytes moved / time).</summary>
    public double GBps => TotalMicroseconds > 0 ? Bytes / (TotalMicroseconds * 1e3) : 0;
    /// <summary>Floating-point operations (matmuls and attention; 0 for ops that only move bytes).</summary>
    public long Flops { get; init; }
    /// <summary>The cost model's time for the same work: max(bytes / bandwidth, FLOPs / peak) at the profile's
    /// <see cref="DevicePeak"/> (0 without one).</summary>
    public double PredictedMicroseconds { get; init; }
}

/// <summary>What the cost model predicts with: a device's memory bandwidth and arithmetic peak, and where they come from
/// ("measured": this machine's roofline; "nominal": the driver's clocks and widths).</summary>
public sealed record DevicePeak(double GBps, double Gflops, string Source)
{
    /// <summary>max(bytes / bandwidth, flops / peak) in microseconds.</summary>
    public double Microseconds(long bytes, long flops) => Math.Max(bytes / (GBps * 1e3), flops / (Gflops * 1e3));
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
    /// <param name="peak">the device's bandwidth and peak for the predicted times (null: none predicted)</param>
    public static ProfileReport Run(Model model, int promptTokens, int decodeSteps, DevicePeak? peak = null)
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
        var decodeTotals = Totals(decodeEvents, decodeWall, decodeSteps, peak);
        double attributed = decodeEvents.Sum(e => e.DurationMicroseconds) / decodeWall;
        return new ProfileReport(promptTokens, prefillWall, Totals(prefillEvents, prefillWall, 1, peak), decodeSteps, decodeWall / decodeSteps,
            decodeTotals, attributed, launches / (double)decodeSteps, prefillEvents.Concat(decodeEvents).ToList());
    }

    private static IReadOnlyList<KernelTotal> Totals(List<ProfileEvent> events, double wall, int steps, DevicePeak? peak) =>
        events.GroupBy(e => e.Kernel)
            .Select(g => new KernelTotal(g.Key, g.Count() / steps, g.Sum(e => e.DurationMicroseconds) / steps, g.Average(e => e.DurationMicroseconds),
                100 * g.Sum(e => e.DurationMicroseconds) / wall, g.Sum(e => e.Bytes) / steps)
            {
                Flops = g.Sum(e => e.Flops) / steps,
                // per call, so that a call's fixed cost is not spread over others: the model has no launch overhead
                PredictedMicroseconds = peak == null ? 0 : g.Sum(e => peak.Microseconds(e.Bytes, e.Flops)) / steps,
            })
            .OrderByDescending(t => t.TotalMicroseconds).ToList();

    /// <summary>The peak the cost model uses for a loaded model's device: on the CPU this machine's measured roofline
    /// (DRAM read bandwidth, F32 GEMM rate), on CUDA the driver's nominal figures (2 · memory clock · bus width; SMs ·
    /// clock · FP32 lanes · 2), elsewhere none.</summary>
    public static DevicePeak? PeakOf(Model model)
    {
        if (model.Device.Kind == Backends.DeviceKind.Cpu)
        {
            var r = Roofline.Measure();
            return new DevicePeak(r.ReadGBps, r.GemmGflops, "measured roofline");
        }
        return Backends.IlgpuBackend.NominalPeak(model.Backend);
    }

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

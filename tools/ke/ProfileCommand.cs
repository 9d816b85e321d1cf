using System.CommandLine;
using KernelEngine.Benchmarking;

namespace KernelEngine.Cli;

internal static class ProfileCommand
{
    public static Command Create()
    {
        var json = CliCommon.Json(); var device = CliCommon.Device();
        var model = new Option<string?>("--model", "-m") { Description = "Model folder" };
        var preset = new Option<string?>("--preset") { Description = "Random-weight model of a real shape" };
        var dtype = new Option<string>("--dtype") { Description = "Preset weight type", DefaultValueFactory = _ => "f32" };
        var tokens = new Option<int>("--tokens") { Description = "Prompt tokens of the profiled prefill", DefaultValueFactory = _ => 64 }.InRange(1, 1 << 20);
        var steps = new Option<int>("--steps") { Description = "Decode steps averaged", DefaultValueFactory = _ => 16 }.InRange(1, 1 << 20);
        var trace = new Option<string?>("--trace") { Description = "Write a Chrome trace-event JSON (Perfetto, chrome://tracing)" };
        var cmd = new Command("profile", "Per-kernel time of a prefill and of one decode step, launches per step, Chrome trace") { model, preset, dtype, tokens, steps, device, trace, json };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            string dir = p.GetValue(model) ?? (p.GetValue(preset) is string name ? Presets.Materialize(name, BenchCommand.ParseType(p.GetValue(dtype)!))
                : throw new InvalidRequestException("give --model DIR or --preset NAME"));
            using var m = CliProgress.Load(dir, new ModelOptions { Device = p.GetValue(device)!, Profile = true });
            // The CPU accelerator stands in for a GPU here: profile the kernels a GPU runs (tests and generation on it take
            // their per-element twins, which need no barriers).
            if (m.Device.Kind == KernelEngine.Backends.DeviceKind.IlgpuCpu && m.Backend is KernelEngine.Backends.ProfilingBackend { Inner: KernelEngine.Backends.IlgpuBackend g }) g.GroupKernels = true;
            var peak = Profiler.PeakOf(m);
            var r = Profiler.Run(m, p.GetValue(tokens), p.GetValue(steps), peak);
            if (p.GetValue(trace) is string t) Profiler.WriteChromeTrace(t, r);
            if (p.GetValue(json))
            {
                CliCommon.PrintJson(new
                {
                    device = m.Device.Id, prompt_tokens = r.PromptTokens, prefill_wall_us = r.PrefillWallMicroseconds, prefill = r.Prefill,
                    decode_steps = r.DecodeSteps, decode_step_wall_us = r.DecodeStepWallMicroseconds, decode_step = r.DecodeStep,
                    decode_attributed_fraction = r.DecodeAttributedFraction, launches_per_decode_step = r.LaunchesPerDecodeStep,
                    peak_gbps = peak?.GBps, peak_gflops = peak?.Gflops, peak_source = peak?.Source,
                    decode_step_predicted_us = peak == null ? (double?)null : r.DecodeStep.Sum(k => k.PredictedMicroseconds),
                });
                return 0;
            }
            Console.WriteLine($"device {m.Device.Id} ({m.Device.Name})");
            Console.WriteLine(peak == null ? "cost model: no peak known for this device (pred us: 0)"
                : $"cost model: {peak.GBps:F1} GB/s, {peak.Gflops:F0} GFLOP/s ({peak.Source}); pred us = max(bytes / bandwidth, FLOPs / peak) per call");
            Print($"prefill of {r.PromptTokens} tokens: {r.PrefillWallMicroseconds / 1000:F2} ms wall ({r.PromptTokens / (r.PrefillWallMicroseconds / 1e6):F1} tok/s)", r.Prefill);
            Print($"decode step (mean of {r.DecodeSteps}): {r.DecodeStepWallMicroseconds:F0} us wall, {r.DecodeAttributedFraction:P1} attributed to kernels, {r.LaunchesPerDecodeStep:F0} launches"
                + (peak == null ? "" : $", {r.DecodeStep.Sum(k => k.PredictedMicroseconds):F0} us predicted"), r.DecodeStep);
            return 0;
        }));
        return cmd;
    }

    private static void Print(string title, IReadOnlyList<KernelTotal> totals)
    {
        Console.WriteLine();
        Console.WriteLine(title);
        int width = Math.Max(22, totals.Count == 0 ? 0 : totals.Max(t => t.Kernel.Length));   // fused kernels have long names
        Console.WriteLine($"  {"kernel".PadRight(width)} {"calls",6} {"total us",11} {"mean us",9} {"% wall",7} {"MB moved",9} {"GB/s",7} {"GFLOP",8} {"pred us",9}");
        foreach (var t in totals)
            Console.WriteLine($"  {t.Kernel.PadRight(width)} {t.Calls,6} {t.TotalMicroseconds,11:F1} {t.MeanMicroseconds,9:F1} {t.Percent,6:F1}% {t.Bytes / 1e6,9:F2} {t.GBps,7:F1} {t.Flops / 1e9,8:F3} {t.PredictedMicroseconds,9:F1}");
    }
}

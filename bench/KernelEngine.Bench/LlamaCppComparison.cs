using System.Diagnostics;
using System.Numerics.Tensors;
using KernelEngine.Benchmarking;
using KernelEngine.Formats;
using KernelEngine.Kernels;
using LLama;
using LLama.Common;
using LLama.Native;

namespace KernelEngine.Bench;

/// <summary>
/// KernelEngine and llama.cpp (NuGet LLamaSharp + LLamaSharp.Backend.Cpu 0.30.0) on the same weights in one run:
/// a preset is written as a model folder, exported to GGUF with <c>ke export-gguf</c>'s exporter, logits of both
/// engines are compared on the same tokens first, then pp (one batch of N prompt tokens) and tg (N single-token
/// decodes), both from an empty cache, same thread count, flash attention off, F32 KV cache in llama.cpp.
/// </summary>
public static class LlamaCppComparison
{
    public sealed record Row(string Model, string Test, double Ours, double OursSd, double Theirs, double TheirsSd,
        double? OursGBps, double? TheirsGBps, double? RooflineGBps, double? Roofline)
    {
        public double Ratio => Ours / Theirs;
    }

    /// <summary>Pins llama.cpp's native build (noavx, avx, avx2, avx512: the folders LLamaSharp.Backend.Cpu ships) before
    /// its first load.</summary>
    public static void UseBuild(string level)
    {
        level = level.Trim().ToLowerInvariant() is "none" ? "noavx" : level.Trim().ToLowerInvariant();
        if (level is not ("noavx" or "avx" or "avx2" or "avx512")) throw new ArgumentException($"--llama-avx {level}: expected noavx, avx, avx2 or avx512");
        string rid = OperatingSystem.IsWindows() ? "win-x64" : OperatingSystem.IsMacOS() ? "osx-x64" : "linux-x64";
        string native = Path.Combine(AppContext.BaseDirectory, "runtimes", rid, "native", level);
        string ext = OperatingSystem.IsWindows() ? ".dll" : OperatingSystem.IsMacOS() ? ".dylib" : ".so";
        string prefix = OperatingSystem.IsWindows() ? "" : "lib";
        if (!File.Exists(Path.Combine(native, prefix + "llama" + ext))) throw new FileNotFoundException($"no llama.cpp {level} build under {native}");
        NativeLibraryConfig.All.WithLibrary(Path.Combine(native, prefix + "llama" + ext), Path.Combine(native, prefix + "mtmd" + ext));
    }

    public static List<Row> Run(string preset, IEnumerable<WeightType> types, int pp, int tg, int reps, int threads, TextWriter log, string? modelDir = null)
    {
        var rows = new List<Row>();
        foreach (var type in types)
        {
            string dir = modelDir ?? Presets.Materialize(preset, type);
            string label = modelDir != null ? Path.GetFileName(Path.TrimEndingDirectorySeparator(modelDir)) + " " + type.Name() : $"{preset} {type.Name()}";
            string gguf = Path.Combine(Path.GetTempPath(), "kernelengine-presets", $"{label.Replace(' ', '-')}.gguf");
            Directory.CreateDirectory(Path.GetDirectoryName(gguf)!);
            if (!File.Exists(gguf)) GgufExporter.Export(dir, gguf, modelDir != null ? type : null);
            rows.AddRange(Measure(label, dir, gguf, pp, tg, reps, threads, log));
        }
        return rows;
    }

    /// <summary>The same GGUF file in both engines: llama.cpp's own quantizer (LLamaQuantizer) makes it from the preset's
    /// F32 export, with its tensor-type mix for <paramref name="ftypes"/> (q4_k_m, q5_k_m, q6_k, ...).</summary>
    public static List<Row> RunLlamaCppFiles(string preset, IEnumerable<string> ftypes, int pp, int tg, int reps, int threads, TextWriter log)
    {
        var rows = new List<Row>();
        NativeApi.llama_empty_call();   // loads llama.cpp through LLamaSharp's resolver before the quantizer's first call
        string root = Path.Combine(Path.GetTempPath(), "kernelengine-presets");
        Directory.CreateDirectory(root);
        string f32 = Path.Combine(root, $"{preset}-f32.gguf");
        if (!File.Exists(f32)) GgufExporter.Export(Presets.Materialize(preset, WeightType.F32), f32, WeightType.F32);
        foreach (var ftype in ftypes)
        {
            string gguf = Path.Combine(root, $"{preset}-{ftype}-llamacpp.gguf");
            if (!File.Exists(gguf) && !LLamaQuantizer.Quantize(f32, gguf, ftype, threads, true, true))
                throw new InvalidOperationException($"llama.cpp could not quantize {f32} to {ftype}");
            rows.AddRange(Measure($"{preset} {ftype} (llama.cpp's file)", gguf, gguf, pp, tg, reps, threads, log));
        }
        return rows;
    }

    private static List<Row> Measure(string label, string ourModel, string gguf, int pp, int tg, int reps, int threads, TextWriter log)
    {
        var rows = new List<Row>();
        {
            using var ours = Model.Load(ourModel, new ModelOptions { Device = "cpu", ContextLength = Math.Min(1024, pp + tg + 8), PrefillBatch = 512 });
            var p = new ModelParams(gguf)
            {
                ContextSize = (uint)Math.Min(1024, pp + tg + 8), Threads = threads, BatchThreads = threads, BatchSize = 512, UBatchSize = 512,
                GpuLayerCount = 0, TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32, FlashAttention = false,
            };
            using var weights = LLamaWeights.LoadFromFile(p);
            using var ctx = weights.CreateContext(p);

            CheckLogits(ours, ctx, log, label);
            var rng = new Random(99);
            var prompt = Enumerable.Range(0, pp).Select(_ => rng.Next(3, ours.Config.VocabSize)).ToArray();
            using var session = ours.CreateSession();
            // The two engines alternate rep by rep (after one warm-up each), so drift in the VM's memory bandwidth over
            // minutes lands on both alike; the decode roofline is the mean of read-bandwidth samples taken between its reps.
            using var probe = new ReadProbe();
            var (ppOurs, ppTheirs) = Alternate(reps, null,
                () => { session.Reset(); session.Feed(prompt); },
                () => { ctx.NativeHandle.MemoryClear(true); DecodeBatch(ctx, prompt); });
            var (tgOurs, tgTheirs) = Alternate(reps, probe,
                () =>
                {
                    session.Reset();
                    int next = 1;
                    for (int i = 0; i < tg; i++) next = TensorPrimitives.IndexOfMax(session.Feed([next]));
                },
                () =>
                {
                    ctx.NativeHandle.MemoryClear(true);
                    int next = 1;
                    for (int i = 0; i < tg; i++) next = DecodeOne(ctx, next, i);
                });
            var ppO = Stat.Of(ppOurs.Select(t => pp / t).ToList());
            var ppT = Stat.Of(ppTheirs.Select(t => pp / t).ToList());
            var tgO = Stat.Of(tgOurs.Select(t => tg / t).ToList());
            var tgT = Stat.Of(tgTheirs.Select(t => tg / t).ToList());
            // Same weights and cache layout (F32 KV) in both: the same bytes per token.
            double bytesPerToken = BenchRunner.BytesPerDecodeToken(ours, tg / 2.0);
            double gbO = bytesPerToken * tgO.Mean / 1e9, gbT = bytesPerToken * tgT.Mean / 1e9;
            rows.Add(new Row(label, $"pp{pp}", ppO.Mean, ppO.StdDev, ppT.Mean, ppT.StdDev, null, null, null, null));
            rows.Add(new Row(label, $"tg{tg}", tgO.Mean, tgO.StdDev, tgT.Mean, tgT.StdDev, gbO, gbT, probe.Mean, gbO / probe.Mean));
            log.WriteLine($"{label}: pp{pp} {ppO} vs {ppT} tok/s ({ppO.Mean / ppT.Mean:F2}x); tg{tg} {tgO} vs {tgT} tok/s ({tgO.Mean / tgT.Mean:F2}x), " +
                $"{gbO:F1} vs {gbT:F1} GB/s of a {probe.Mean:F1} GB/s roofline ({gbO / probe.Mean:P0} vs {gbT / probe.Mean:P0})");
        }
        return rows;
    }

    /// <summary>One warm-up of each, then <paramref name="reps"/> rounds of (ours, theirs) with a bandwidth sample before,
    /// between and after them; the seconds of each run.</summary>
    private static (List<double> Ours, List<double> Theirs) Alternate(int reps, ReadProbe? probe, Action ours, Action theirs)
    {
        ours(); theirs();
        var a = new List<double>(); var b = new List<double>();
        for (int r = 0; r < reps; r++)
        {
            probe?.Sample();
            var sw = Stopwatch.StartNew(); ours(); a.Add(sw.Elapsed.TotalSeconds);
            sw.Restart(); theirs(); b.Add(sw.Elapsed.TotalSeconds);
        }
        probe?.Sample();
        return (a, b);
    }

    private static void CheckLogits(Model ours, LLamaContext ctx, TextWriter log, string label)
    {
        int[] tokens = [1, 15, 27, 300, 42, 7, 99, 5];
        using var s = ours.CreateSession();
        var a = s.Feed(tokens).ToArray();
        ctx.NativeHandle.MemoryClear(true);
        DecodeBatch(ctx, tokens);
        var b = ctx.NativeHandle.GetLogitsIth(tokens.Length - 1).ToArray();
        double maxDiff = 0, range = TensorPrimitives.Max(a) - TensorPrimitives.Min(a);
        for (int i = 0; i < a.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - b[i]));
        bool top1 = TensorPrimitives.IndexOfMax(a) == TensorPrimitives.IndexOfMax(b);
        log.WriteLine($"{label}: logits vs llama.cpp: max |diff| {maxDiff:E2} (logit range {range:F3}), top-1 {(top1 ? "agrees" : "DIFFERS")}");
    }

    private static void DecodeBatch(LLamaContext ctx, int[] tokens)
    {
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Length; i++) batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, i == tokens.Length - 1);
        var r = ctx.Decode(batch);
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {r}");
    }

    private static int DecodeOne(LLamaContext ctx, int token, int pos)
    {
        var batch = new LLamaBatch();
        batch.Add((LLamaToken)token, pos, LLamaSeqId.Zero, true);
        var r = ctx.Decode(batch);
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {r}");
        return TensorPrimitives.IndexOfMax(ctx.NativeHandle.GetLogitsIth(0));
    }

    public static void PrintMarkdown(IEnumerable<Row> rows, TextWriter w)
    {
        w.WriteLine("| model | test | KernelEngine tok/s | llama.cpp tok/s | ratio | GB/s KE / llama.cpp | roofline GB/s | KE % roofline | llama.cpp % roofline |");
        w.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            string gb = r.OursGBps is double o && r.TheirsGBps is double t ? $"{o:F1} / {t:F1}" : "";
            string roof = r.RooflineGBps is double g ? $"{g:F1}" : "";
            string pctO = r.Roofline is double f ? f.ToString("P0") : "";
            string pctT = r.TheirsGBps is double t2 && r.RooflineGBps is double g2 ? (t2 / g2).ToString("P0") : "";
            w.WriteLine($"| {r.Model} | {r.Test} | {r.Ours:F1} ± {r.OursSd:F1} | {r.Theirs:F1} ± {r.TheirsSd:F1} | {r.Ratio:F2} | {gb} | {roof} | {pctO} | {pctT} |");
        }
    }
}

using System.Diagnostics;
using System.Numerics.Tensors;
using KernelEngine.Backends;
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
/// decodes), both after <see cref="Settings.Depth"/> tokens of context (0: an empty cache; llama-bench's <c>-d</c>), same
/// thread count, flash attention off, the same KV cache type (F32 or F16) in both.
/// </summary>
public static class LlamaCppComparison
{
    /// <param name="Depth">tokens already in the cache when pp and tg are measured (filled once, rewound between reps)</param>
    /// <param name="Kv">KV cache type in both engines: f32, f16 (llama.cpp's default), q8_0, ... (a block format turns llama.cpp's
    /// flash attention on, which its quantized V cache needs)</param>
    /// <param name="Parallel">besides one sequence, tg with N sequences decoded together in each engine (our batched
    /// generator; llama.cpp's context with N sequence ids, one batch of N tokens per step, as llama-batched-bench), the
    /// aggregate tok/s of the steps that decode all N; empty: none</param>
    public sealed record Settings(int Pp, int Tg, int Reps, int Threads, int Depth = 0, string Kv = "f32", int[]? Parallel = null)
    {
        public string Suffix => Depth > 0 ? $" @ d{Depth}" : "";
        public int ContextLength => Depth + Math.Max(Pp, Tg) + 8;
    }

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

    public static List<Row> Run(string preset, IEnumerable<WeightType> types, Settings settings, TextWriter log, string? modelDir = null)
    {
        var rows = new List<Row>();
        foreach (var type in types)
        {
            string dir = modelDir ?? Presets.Materialize(preset, type);
            string label = modelDir != null ? Path.GetFileName(Path.TrimEndingDirectorySeparator(modelDir)) + " " + type.Name() : $"{preset} {type.Name()}";
            string gguf = Path.Combine(Path.GetTempPath(), "kernelengine-presets", $"{label.Replace(' ', '-')}.gguf");
            Directory.CreateDirectory(Path.GetDirectoryName(gguf)!);
            // re-exported when the folder is newer (a preset's config changed)
            if (!File.Exists(gguf) || File.GetLastWriteTimeUtc(gguf) < File.GetLastWriteTimeUtc(Path.Combine(dir, "config.json")))
                GgufExporter.Export(dir, gguf, modelDir != null ? type : null);
            rows.AddRange(Measure(label, dir, gguf, settings, log));
        }
        return rows;
    }

    /// <summary>The same GGUF file in both engines: llama.cpp's own quantizer (LLamaQuantizer) makes it from the preset's
    /// F32 export, with its tensor-type mix for <paramref name="ftypes"/> (q4_k_m, q5_k_m, q6_k, ...).</summary>
    public static List<Row> RunLlamaCppFiles(string preset, IEnumerable<string> ftypes, Settings settings, TextWriter log)
    {
        var rows = new List<Row>();
        NativeApi.llama_empty_call();   // loads llama.cpp through LLamaSharp's resolver before the quantizer's first call
        string root = Path.Combine(Path.GetTempPath(), "kernelengine-presets");
        Directory.CreateDirectory(root);
        string f32 = Path.Combine(root, $"{preset}-f32.gguf");
        string f32Dir = Presets.Materialize(preset, WeightType.F32);
        bool stale = File.Exists(f32) && File.GetLastWriteTimeUtc(f32) < File.GetLastWriteTimeUtc(Path.Combine(f32Dir, "config.json"));
        if (!File.Exists(f32) || stale) GgufExporter.Export(f32Dir, f32, WeightType.F32);
        foreach (var ftype in ftypes)
        {
            string gguf = Path.Combine(root, $"{preset}-{ftype}-llamacpp.gguf");
            if (stale) File.Delete(gguf);
            if (!File.Exists(gguf) && !LLamaQuantizer.Quantize(f32, gguf, ftype, settings.Threads, true, true))
                throw new InvalidOperationException($"llama.cpp could not quantize {f32} to {ftype}");
            rows.AddRange(Measure($"{preset} {ftype} (llama.cpp's file)", gguf, gguf, settings, log));
        }
        return rows;
    }

    private static List<Row> Measure(string label, string ourModel, string gguf, Settings set, TextWriter log)
    {
        var rows = new List<Row>();
        int pp = set.Pp, tg = set.Tg, depth = set.Depth;
        var loadWatch = Stopwatch.StartNew();
        using var ours = Model.Load(ourModel, new ModelOptions { Device = "cpu", ContextLength = set.ContextLength, PrefillBatch = 512, KvCacheType = set.Kv });
        double ourLoad = loadWatch.Elapsed.TotalSeconds;
        var kv = (GGMLType)(int)KvCacheTypes.Parse(set.Kv).Format().Ggml;
        var p = new ModelParams(gguf)
        {
            ContextSize = (uint)set.ContextLength, Threads = set.Threads, BatchThreads = set.Threads, BatchSize = 512, UBatchSize = 512,
            GpuLayerCount = 0, TypeK = kv, TypeV = kv, FlashAttention = kv is not (GGMLType.GGML_TYPE_F32 or GGMLType.GGML_TYPE_F16),
        };
        loadWatch.Restart();
        using var weights = LLamaWeights.LoadFromFile(p);
        using var ctx = weights.CreateContext(p);
        double theirLoad = loadWatch.Elapsed.TotalSeconds;
        log.WriteLine($"{label}: load (model + context, warm page cache) {ourLoad:F2} s vs {theirLoad:F2} s");

        CheckLogits(ours, ctx, log, label);
        var rng = new Random(99);
        var context = Enumerable.Range(0, depth).Select(_ => rng.Next(3, ours.Config.VocabSize)).ToArray();
        var prompt = Enumerable.Range(0, pp).Select(_ => rng.Next(3, ours.Config.VocabSize)).ToArray();
        using var session = ours.CreateSession();
        // The depth's context is prefilled once in each engine; every rep rewinds both caches to it.
        ctx.NativeHandle.MemoryClear(true);
        if (depth > 0)
        {
            session.Feed(context);
            DecodeBatch(ctx, context, 0);
        }
        void RewindTheirs() => ctx.NativeHandle.MemorySequenceRemove(LLamaSeqId.Zero, depth, -1);
        // The two engines alternate rep by rep (after one warm-up each), so drift in the VM's memory bandwidth over
        // minutes lands on both alike; the decode roofline is the mean of read-bandwidth samples taken between its reps.
        using var probe = new ReadProbe();
        var (ppOurs, ppTheirs) = pp == 0 ? ([], []) : Alternate(set.Reps, null,
            () => { session.Rewind(depth); session.Feed(prompt); },
            () => { RewindTheirs(); DecodeBatch(ctx, prompt, depth); });
        var (tgOurs, tgTheirs) = tg == 0 ? ([], []) : Alternate(set.Reps, probe,
            () =>
            {
                session.Rewind(depth);
                int next = 1;
                for (int i = 0; i < tg; i++) next = TensorPrimitives.IndexOfMax(session.Feed([next]));
            },
            () =>
            {
                RewindTheirs();
                int next = 1;
                for (int i = 0; i < tg; i++) next = DecodeOne(ctx, next, depth + i);
            });
        if (pp > 0)
        {
            var ppO = Stat.Of(ppOurs.Select(t => pp / t).ToList());
            var ppT = Stat.Of(ppTheirs.Select(t => pp / t).ToList());
            rows.Add(new Row(label, $"pp{pp}{set.Suffix}", ppO.Mean, ppO.StdDev, ppT.Mean, ppT.StdDev, null, null, null, null));
            log.WriteLine($"{label}: pp{pp}{set.Suffix} {ppO} vs {ppT} tok/s ({ppO.Mean / ppT.Mean:F2}x)");
        }
        if (tg > 0)
        {
            var tgO = Stat.Of(tgOurs.Select(t => tg / t).ToList());
            var tgT = Stat.Of(tgTheirs.Select(t => tg / t).ToList());
            // Same weights and the same cache type in both: the same bytes per token.
            double bytesPerToken = BenchRunner.BytesPerDecodeToken(ours, depth + tg / 2.0);
            double gbO = bytesPerToken * tgO.Mean / 1e9, gbT = bytesPerToken * tgT.Mean / 1e9;
            rows.Add(new Row(label, $"tg{tg}{set.Suffix}", tgO.Mean, tgO.StdDev, tgT.Mean, tgT.StdDev, gbO, gbT, probe.Mean, gbO / probe.Mean));
            log.WriteLine($"{label}: tg{tg}{set.Suffix} {tgO} vs {tgT} tok/s ({tgO.Mean / tgT.Mean:F2}x), " +
                $"{gbO:F1} vs {gbT:F1} GB/s of a {probe.Mean:F1} GB/s roofline ({gbO / probe.Mean:P0} vs {gbT / probe.Mean:P0})");
            foreach (int n in set.Parallel ?? []) rows.Add(MeasureParallel(label, ours, weights, p, set, n, tgO.Mean, tgT.Mean, log));
        }
        return rows;
    }

    /// <summary>
    /// tg with <paramref name="n"/> sequences in each engine, rep by rep alternating: ours through
    /// <see cref="BenchRunner.RunParallel"/> (its full-batch decode steps), llama.cpp through a context with n sequence ids
    /// whose every step decodes one batch of n tokens (sequence s at its own position, logits for each, greedy), timed
    /// from its second step (the first holds the 1-token prompts). Also prints each engine's ratio to its one-sequence tg.
    /// </summary>
    private static Row MeasureParallel(string label, Model ours, LLamaWeights weights, ModelParams single, Settings set, int n, double oursOne, double theirsOne, TextWriter log)
    {
        int tg = set.Tg;
        var p = new ModelParams(single.ModelPath)
        {
            ContextSize = (uint)(n * (tg + 16)), SeqMax = (uint)n, Threads = single.Threads, BatchThreads = single.BatchThreads,
            BatchSize = 512, UBatchSize = 512, GpuLayerCount = 0, TypeK = single.TypeK, TypeV = single.TypeV, FlashAttention = single.FlashAttention,
        };
        using var ctx = weights.CreateContext(p);
        var rng = new Random(5);
        var batch = new LLamaBatch();
        var next = new int[n];
        double Theirs()
        {
            ctx.NativeHandle.MemoryClear(true);
            for (int s = 0; s < n; s++) next[s] = rng.Next(3, ours.Config.VocabSize);
            var sw = new Stopwatch();
            for (int step = 0; step < tg; step++)
            {
                if (step == 1) sw.Start();
                batch.Clear();
                for (int s = 0; s < n; s++) batch.Add((LLamaToken)next[s], step, (LLamaSeqId)s, true);
                var r = ctx.Decode(batch);
                if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode of {n} sequences failed: {r}");
                for (int s = 0; s < n; s++) next[s] = TensorPrimitives.IndexOfMax(ctx.NativeHandle.GetLogitsIth(s));
            }
            return n * (tg - 1) / sw.Elapsed.TotalSeconds;
        }
        Theirs();   // warm-up (RunParallel warms up itself)
        var a = new List<double>(); var b = new List<double>();
        for (int r = 0; r < set.Reps; r++)
        {
            a.Add(BenchRunner.RunParallel(ours, tg, n, 1, null).TokensPerSecond.Mean);
            b.Add(Theirs());
        }
        var o = Stat.Of(a); var t = Stat.Of(b);
        log.WriteLine($"{label}: tg{tg}{set.Suffix} x{n} {o} vs {t} tok/s ({o.Mean / t.Mean:F2}x); {n} vs 1 sequence: ours {o.Mean / oursOne:F2}x, llama.cpp's {t.Mean / theirsOne:F2}x");
        return new Row(label, $"tg{tg}{set.Suffix} x{n}", o.Mean, o.StdDev, t.Mean, t.StdDev, null, null, null, null);
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
        DecodeBatch(ctx, tokens, 0);
        var b = ctx.NativeHandle.GetLogitsIth(tokens.Length - 1).ToArray();
        double maxDiff = 0, range = TensorPrimitives.Max(a) - TensorPrimitives.Min(a);
        for (int i = 0; i < a.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - b[i]));
        bool top1 = TensorPrimitives.IndexOfMax(a) == TensorPrimitives.IndexOfMax(b);
        log.WriteLine($"{label}: logits vs llama.cpp: max |diff| {maxDiff:E2} (logit range {range:F3}), top-1 {(top1 ? "agrees" : "DIFFERS")}");
    }

    /// <summary>tokens at positions start.. in batches of 512 (the context's batch size); logits of the last one.</summary>
    private static void DecodeBatch(LLamaContext ctx, int[] tokens, int start)
    {
        for (int b0 = 0; b0 < tokens.Length; b0 += 512)
        {
            var batch = new LLamaBatch();
            int b1 = Math.Min(tokens.Length, b0 + 512);
            for (int i = b0; i < b1; i++) batch.Add((LLamaToken)tokens[i], start + i, LLamaSeqId.Zero, i == tokens.Length - 1);
            var r = ctx.Decode(batch);
            if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {r}");
        }
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

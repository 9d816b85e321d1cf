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
    public sealed record Row(string Model, string Test, double Ours, double OursSd, double Theirs, double TheirsSd, double OursGBps, double? Roofline)
    {
        public double Ratio => Ours / Theirs;
    }

    public static List<Row> Run(string preset, IEnumerable<WeightType> types, int pp, int tg, int reps, int threads, TextWriter log, string? modelDir = null)
    {
        var roof = Roofline.Measure();
        log.WriteLine($"roofline: read {roof.ReadGBps:F1} GB/s, triad {roof.TriadGBps:F1} GB/s, F32 GEMM {roof.GemmGflops:F0} GFLOP/s ({roof.Threads} threads)");
        var rows = new List<Row>();
        foreach (var type in types)
        {
            string dir = modelDir ?? Presets.Materialize(preset, type);
            string label = modelDir != null ? Path.GetFileName(Path.TrimEndingDirectorySeparator(modelDir)) + " " + type.Name() : $"{preset} {type.Name()}";
            string gguf = Path.Combine(Path.GetTempPath(), "kernelengine-presets", $"{label.Replace(' ', '-')}.gguf");
            Directory.CreateDirectory(Path.GetDirectoryName(gguf)!);
            if (!File.Exists(gguf)) GgufExporter.Export(dir, gguf, modelDir != null ? type : null);

            using var ours = Model.Load(dir, new ModelOptions { Device = "cpu", ContextLength = Math.Min(1024, pp + tg + 8), PrefillBatch = 512 });
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
            // KernelEngine
            var oursResults = BenchRunner.Run(ours, pp, tg, reps, roof.ReadGBps);
            // llama.cpp
            var ppTimes = BenchRunner.Repeat(reps, () => { ctx.NativeHandle.MemoryClear(true); DecodeBatch(ctx, prompt); });
            var tgTimes = BenchRunner.Repeat(reps, () =>
            {
                ctx.NativeHandle.MemoryClear(true);
                int next = 1;
                for (int i = 0; i < tg; i++) next = DecodeOne(ctx, next, i);
            });
            var ppO = oursResults.First(r => r.Test.StartsWith("pp"));
            var tgO = oursResults.First(r => r.Test.StartsWith("tg"));
            var ppT = Stat.Of(ppTimes.Select(t => pp / t).ToList());
            var tgT = Stat.Of(tgTimes.Select(t => tg / t).ToList());
            rows.Add(new Row(label, $"pp{pp}", ppO.TokensPerSecond.Mean, ppO.TokensPerSecond.StdDev, ppT.Mean, ppT.StdDev, ppO.GBps, null));
            rows.Add(new Row(label, $"tg{tg}", tgO.TokensPerSecond.Mean, tgO.TokensPerSecond.StdDev, tgT.Mean, tgT.StdDev, tgO.GBps, tgO.RooflineFraction));
            log.WriteLine($"{label}: pp{pp} {ppO.TokensPerSecond} vs {ppT} tok/s ({ppO.TokensPerSecond.Mean / ppT.Mean:F2}x); tg{tg} {tgO.TokensPerSecond} vs {tgT} tok/s ({tgO.TokensPerSecond.Mean / tgT.Mean:F2}x), {tgO.GBps:F1} GB/s = {tgO.RooflineFraction:P0} of roofline");
        }
        return rows;
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
        w.WriteLine("| model | test | KernelEngine tok/s | llama.cpp tok/s | ratio | KernelEngine GB/s | % roofline |");
        w.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var r in rows)
            w.WriteLine($"| {r.Model} | {r.Test} | {r.Ours:F1} ± {r.OursSd:F1} | {r.Theirs:F1} ± {r.TheirsSd:F1} | {r.Ratio:F2} | {r.OursGBps:F1} | {(r.Roofline is double f ? f.ToString("P0") : "")} |");
    }
}

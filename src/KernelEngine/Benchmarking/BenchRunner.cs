using System.Diagnostics;
using KernelEngine.Formats;
using KernelEngine.Kernels;

namespace KernelEngine.Benchmarking;

/// <summary>Mean and sample standard deviation of repeated measurements.</summary>
public readonly record struct Stat(double Mean, double StdDev)
{
    /// <summary>Mean and sample standard deviation of <paramref name="xs"/>.</summary>
    public static Stat Of(IReadOnlyList<double> xs)
    {
        double mean = xs.Average();
        double sd = xs.Count > 1 ? Math.Sqrt(xs.Sum(x => (x - mean) * (x - mean)) / (xs.Count - 1)) : 0;
        return new Stat(mean, sd);
    }
    /// <summary>"mean ± sd" with two decimals.</summary>
    public override string ToString() => $"{Mean:F2} ± {StdDev:F2}";
}

/// <summary>One llama-bench style result: pp (prompt processing) or tg (token generation).</summary>
public sealed record BenchResult(string Test, int Tokens, Stat TokensPerSecond, double GBps, double Gflops, double? RooflineFraction);

/// <summary>
/// llama-bench's two tests on a loaded model: ppN = one prompt of N random tokens fed in batched passes; tgN = N tokens
/// decoded one at a time; both from an empty cache, or after <c>depth</c> tokens of context (llama-bench's <c>-d</c>:
/// the context is prefilled once and the cache rewound to it before every run). After a warm-up run, each repeats
/// <c>reps</c> times. Bytes per decode token = every weight matrix once (the embedding contributes one row) plus
/// the KV cache read at the mean position; FLOPs per token = 2 · matmul weights + 4 · layers · position · d_attn.
/// </summary>
public static class BenchRunner
{
    /// <summary>llama-bench's two tests on <paramref name="model"/>: a <paramref name="pp"/>-token prompt and <paramref name="tg"/> decoded tokens (after <paramref name="depth"/> tokens of context), <paramref name="reps"/> repetitions each; GB/s and the roofline fraction against <paramref name="readGBps"/> when given.</summary>
    public static IReadOnlyList<BenchResult> Run(Model model, int pp, int tg, int reps, double? readGBps, int depth = 0)
    {
        var results = new List<BenchResult>();
        var rng = new Random(1234);
        int vocab = model.Config.VocabSize;
        if (depth < 0 || depth + Math.Max(pp, tg) > model.ContextLength)
            throw new InvalidRequestException($"depth {depth} + {Math.Max(pp, tg)} tokens exceed the context length {model.ContextLength} (--context)");
        string at = depth > 0 ? $" @ d{depth}" : "";
        using var session = model.CreateSession();
        if (depth > 0) session.Feed(Enumerable.Range(0, depth).Select(_ => rng.Next(3, vocab)).ToArray());
        if (pp > 0)
        {
            var prompt = Enumerable.Range(0, pp).Select(_ => rng.Next(3, vocab)).ToArray();
            var times = Repeat(reps, () => session.Feed(prompt), () => session.Rewind(depth));
            var tps = times.Select(t => pp / t).ToList();
            double meanTps = tps.Average();
            // Prefill reads the weights once per batch; FLOPs dominate.
            int batches = (pp + model.Options.PrefillBatch - 1) / model.Options.PrefillBatch;
            double gb = (WeightBytesPerPass(model) * batches + KvBytes(model, depth + pp / 2.0) * pp) / 1e9 / times.Average();
            results.Add(new BenchResult($"pp{pp}{at}", pp, Stat.Of(tps), gb, FlopsPerToken(model, depth + pp / 2.0) * meanTps / 1e9, null));
        }
        if (tg > 0)
        {
            var times = Repeat(reps, () =>
            {
                int next = 1;
                for (int i = 0; i < tg; i++)
                {
                    var logits = session.Feed([next]);
                    next = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
                }
            }, () => session.Rewind(depth));
            var tps = times.Select(t => tg / t).ToList();
            double meanTps = tps.Average();
            double gbps = BytesPerDecodeToken(model, depth + tg / 2.0) * meanTps / 1e9;
            results.Add(new BenchResult($"tg{tg}{at}", tg, Stat.Of(tps), gbps, FlopsPerToken(model, depth + tg / 2.0) * meanTps / 1e9, readGBps is > 0 ? gbps / readGBps : null));
        }
        return results;
    }

    /// <summary>
    /// Batched decoding (llama-batched-bench's S_TG): <paramref name="parallel"/> sequences of one random token each
    /// decode <paramref name="tg"/> tokens together in a <see cref="BatchedGenerator"/>; the result is the aggregate
    /// tok/s of all of them over the steps where all of them decode together
    /// (<see cref="BatchedGeneratorStats.FullBatchSteps"/>): the prompts' prefill and the steps while sequences join one
    /// prefill at a time and leave are not counted, as one sequence's tg excludes its prompt (when tg leaves no full
    /// step, the whole run's wall time). GB/s counts the weights once per step and each sequence's KV cache.
    /// </summary>
    public static BenchResult RunParallel(Model model, int tg, int parallel, int reps, double? readGBps)
    {
        if (tg + 1 >= model.ContextLength) throw new InvalidRequestException($"{tg} tokens exceed the context length {model.ContextLength} (--context)");
        var rng = new Random(1234);
        int vocab = model.Config.VocabSize;
        using var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = parallel, ContextLength = tg + 1, KvPageSize = tg + 1 });
        var settings = new GenerationSettings { MaxTokens = tg, StopAtEos = false, Sampling = Decoding.SamplingSettings.Greedy };
        var tps = new List<double>();
        for (int rep = -1; rep < reps; rep++)   // rep -1: warm-up
        {
            var before = batch.Stats;
            var sw = Stopwatch.StartNew();
            var requests = Enumerable.Range(0, parallel).Select(_ => batch.Submit([rng.Next(3, vocab)], settings)).ToArray();
            Task.WaitAll(requests.Select(r => r.Completion).ToArray());
            double wall = sw.Elapsed.TotalSeconds;
            foreach (var r in requests)
                if (r.Completion.Result.GeneratedTokens != tg) throw new InvalidOperationException($"a batched sequence stopped after {r.Completion.Result.GeneratedTokens} of {tg} tokens");
            // the generator books the last iteration when it releases the ended sequences
            var after = batch.Stats;
            while (after.Active > 0) { Thread.Sleep(1); after = batch.Stats; }
            long steps = after.FullBatchSteps - before.FullBatchSteps;
            double seconds = after.FullBatchSeconds - before.FullBatchSeconds;
            if (rep >= 0) tps.Add(steps > 0 && seconds > 0 ? parallel * steps / seconds : parallel * tg / wall);
        }
        double meanTps = tps.Average();
        double gbps = (WeightBytesPerPass(model) + parallel * KvBytes(model, tg / 2.0)) * (meanTps / parallel) / 1e9;
        return new BenchResult($"tg{tg} x{parallel}", tg, Stat.Of(tps), gbps, FlopsPerToken(model, tg / 2.0) * meanTps / 1e9, readGBps is > 0 ? gbps / readGBps : null);
    }

    /// <summary>One warm-up run, then the seconds of each of <paramref name="reps"/> runs.</summary>
    /// <param name="setup">runs before each run, untimed (a rewind: with sliding-window layers that hold only their
    /// window it may run tokens again)</param>
    public static List<double> Repeat(int reps, Action run, Action? setup = null)
    {
        setup?.Invoke();
        run(); // warm-up: JIT, page-in of the mapped weights, caches
        var times = new List<double>();
        for (int r = 0; r < reps; r++)
        {
            setup?.Invoke();
            var sw = Stopwatch.StartNew();
            run();
            times.Add(sw.Elapsed.TotalSeconds);
        }
        return times;
    }

    /// <summary>Weight bytes one decode step reads: every layer, the final norm, the LM head and one embedding row.</summary>
    public static double WeightBytesPerPass(Model m)
    {
        var w = m.Transformer.Weights;
        long bytes = w.Layers.Sum(l => l.All().Sum(x => x.Bytes)) + w.FinalNorm.Bytes + w.LmHead.Bytes;
        return bytes + w.TokenEmbedding.Bytes / w.TokenEmbedding.Rows;
    }

    /// <summary>KV-cache bytes a decode step at <paramref name="position"/> reads (keys and values of every layer).</summary>
    public static double KvBytes(Model m, double position) =>
        2.0 * m.Config.Layers * position * m.Options.ResolvedKvCacheType.RowBytes(m.Config.KvDim);

    /// <summary>Bytes one decode step reads: weights plus the KV cache at <paramref name="meanPosition"/>.</summary>
    public static double BytesPerDecodeToken(Model m, double meanPosition) => WeightBytesPerPass(m) + KvBytes(m, meanPosition);

    /// <summary>Floating-point operations of one token at <paramref name="meanPosition"/> (2 per weight plus attention).</summary>
    public static double FlopsPerToken(Model m, double meanPosition)
    {
        var w = m.Transformer.Weights;
        double matmul = w.Layers.Sum(l => new[] { l.Wq, l.Wk, l.Wv, l.Wo, l.WGate, l.WUp, l.WDown }.Where(x => x != null).Sum(x => (double)x!.Rows * x.Cols))
            + (double)w.LmHead.Rows * w.LmHead.Cols;
        var c = m.Config;
        return 2 * matmul + 4.0 * c.Layers * meanPosition * c.Heads * c.HeadDim;
    }
}

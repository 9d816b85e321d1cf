using System.Runtime.CompilerServices;
using KernelEngine.Kernels.Simd;
using System.Numerics.Tensors;

namespace KernelEngine.Kernels.SoftmaxEntropy;

/// <summary>
/// Summary of softmax(z) for z = logits / temperature, in nats unless named otherwise.
/// Max = max z; LogSumExp = log Σ exp(z); Entropy = -Σ p log p = LogSumExp - Σ p z;
/// TokenLogProb = z[token] - LogSumExp (NaN when no token was asked for).
/// </summary>
public readonly record struct SoftmaxStats(float Max, double LogSumExp, double Entropy, double TokenLogProb, int ArgMax)
{
    /// <summary><see cref="Entropy"/> in bits.</summary>
    public double EntropyBits => Entropy / Math.Log(2);
}

/// <summary>
/// CPU twin of the fused softmax-entropy kernel: one pass over a row of logits after the max, keeping
/// S = Σ exp(z - m) and T = Σ exp(z - m)(z - m) over chunks with TensorPrimitives, folded in double;
/// entropy = log S - T / S. The GPU version merges partial (m, S, T) triples across groups the same way.
/// </summary>
internal static class SoftmaxEntropyCpu
{
    private const int Chunk = 4096;
    [ThreadStatic] private static float[]? t_scratch;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static SoftmaxStats Compute(ReadOnlySpan<float> logits, float temperature = 1f, int token = -1)
    {
        if (logits.IsEmpty) throw new ArgumentException("empty logits row");
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be > 0");
        int argmax = SpanMath.IndexOfMax(logits);
        float invT = 1f / temperature;
        float m = logits[argmax] * invT;
        // d = z - m, e = exp(d): S = Σ e, T = Σ e·d, in chunks (per-thread scratch) folded into double.
        int n = logits.Length;
        var buf = t_scratch ??= new float[2 * Chunk];
        double s = 0, t = 0;
        for (int i = 0; i < n; i += Chunk)
        {
            int len = Math.Min(Chunk, n - i);
            var d = buf.AsSpan(0, len); var e = buf.AsSpan(Chunk, len);
            SpanMath.ScaleShift(logits.Slice(i, len), invT, -m, d);
            SpanMath.ExpScaleShift(d, 1f, 0f, e);
            s += SpanMath.Sum(e);
            t += SpanMath.Dot(e, d);
        }
        double logS = Math.Log(s);
        double lse = m + logS;
        double entropy = logS - t / s;
        double tokenLogProb = token >= 0 ? logits[token] * invT - lse : double.NaN;
        return new SoftmaxStats(m, lse, entropy, tokenLogProb, argmax);
    }

    /// <summary>probs = softmax(logits / temperature) in place into probs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Softmax(ReadOnlySpan<float> logits, Span<float> probs, float temperature = 1f)
    {
        float invT = 1f / temperature;
        float m = SpanMath.Max(logits) * invT;
        SpanMath.ExpScaleShift(logits, invT, -m, probs);
        SpanMath.ScaleShift(probs[..logits.Length], 1f / SpanMath.Sum(probs[..logits.Length]), 0f, probs);
    }
}

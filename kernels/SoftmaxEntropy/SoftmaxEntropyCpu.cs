using System.Runtime.CompilerServices;
using KernelEngine.Kernels.Simd;
using System.Runtime.Intrinsics;

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
/// CPU twin of the fused softmax-entropy kernel: after the max, one pass over a row of logits keeping
/// S = Σ exp(z - m) and T = Σ exp(z - m)(z - m) in vector accumulators (exp inlined: <see cref="ISimd{V}.Exp"/>), folded
/// into double every <see cref="Chunk"/> logits; entropy = log S - T / S. The GPU version merges partial (m, S, T)
/// triples across groups the same way.
/// </summary>
internal static unsafe class SoftmaxEntropyCpu
{
    /// <summary>Logits summed in float before their sums join the double totals.</summary>
    private const int Chunk = 4096;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static SoftmaxStats Compute(ReadOnlySpan<float> logits, float temperature = 1f, int token = -1)
    {
        if (logits.IsEmpty) throw new ArgumentException("empty logits row");
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be > 0");
        int argmax = SpanMath.IndexOfMax(logits);
        float invT = 1f / temperature;
        float m = logits[argmax] * invT;
        double s, t;
        fixed (float* z = logits)
            (s, t) = SimdLevel.Current switch
            {
                SimdLevel.Width.V512 => Sums<Simd512, Vector512<float>>(z, logits.Length, invT, m),
                SimdLevel.Width.V256 => Sums<Simd256, Vector256<float>>(z, logits.Length, invT, m),
                SimdLevel.Width.V128 => Sums<Simd128, Vector128<float>>(z, logits.Length, invT, m),
                _ => ScalarSums(z, logits.Length, invT, m),
            };
        double logS = Math.Log(s);
        double lse = m + logS;
        double entropy = logS - t / s;
        double tokenLogProb = token >= 0 ? logits[token] * invT - lse : double.NaN;
        return new SoftmaxStats(m, lse, entropy, tokenLogProb, argmax);
    }

    /// <summary>(Σ e, Σ e·d) with d = z·invT − m, e = exp(d), over z[0, n).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (double S, double T) Sums<S, V>(float* z, int n, float invT, float m) where S : ISimd<V> where V : struct
    {
        int F = S.Floats;
        V a = S.Broadcast(invT), b = S.Broadcast(-m);
        double s = 0, t = 0;
        for (int i0 = 0; i0 < n; i0 += Chunk)
        {
            int end = Math.Min(n, i0 + Chunk), i = i0;
            V s0 = S.Zero, s1 = S.Zero, t0 = S.Zero, t1 = S.Zero;
            for (; i + 2 * F <= end; i += 2 * F)
            {
                V d0 = S.Fma(S.Load(z + i), a, b), d1 = S.Fma(S.Load(z + i + F), a, b);
                V e0 = S.Exp(d0), e1 = S.Exp(d1);
                s0 = S.Add(s0, e0); s1 = S.Add(s1, e1);
                t0 = S.Fma(e0, d0, t0); t1 = S.Fma(e1, d1, t1);
            }
            for (; i + F <= end; i += F)
            {
                V d0 = S.Fma(S.Load(z + i), a, b), e0 = S.Exp(d0);
                s0 = S.Add(s0, e0);
                t0 = S.Fma(e0, d0, t0);
            }
            (s, t) = Tail(z, i, end, invT, m, s + S.Sum(S.Add(s0, s1)), t + S.Sum(S.Add(t0, t1)));
        }
        return (s, t);
    }

    private static (double S, double T) ScalarSums(float* z, int n, float invT, float m)
    {
        (double s, double t) = (0, 0);
        for (int i0 = 0; i0 < n; i0 += Chunk) (s, t) = Tail(z, i0, Math.Min(n, i0 + Chunk), invT, m, s, t);
        return (s, t);
    }

    /// <summary>The logits [i, end) one at a time, added to (s, t) in float first.</summary>
    private static (double S, double T) Tail(float* z, int i, int end, float invT, float m, double s, double t)
    {
        float sc = 0, tc = 0;
        for (; i < end; i++)
        {
            float d = z[i] * invT - m, e = MathF.Exp(d);
            sc += e;
            tc += e * d;
        }
        return (s + sc, t + tc);
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

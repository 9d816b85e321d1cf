using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace KernelEngine.Kernels.SoftmaxEntropy;

/// <summary>
/// Summary of softmax(z) for z = logits / temperature, in nats unless named otherwise.
/// Max = max z; LogSumExp = log Σ exp(z); Entropy = -Σ p log p = LogSumExp - Σ p z;
/// TokenLogProb = z[token] - LogSumExp (NaN when no token was asked for).
/// </summary>
public readonly record struct SoftmaxStats(float Max, double LogSumExp, double Entropy, double TokenLogProb, int ArgMax)
{
    public double EntropyBits => Entropy / Math.Log(2);
}

/// <summary>
/// CPU twin of the fused softmax-entropy kernel: one pass over a row of logits after the max, keeping
/// S = Σ exp(z - m) and T = Σ exp(z - m)(z - m) in F32 vector lanes and folding them in double;
/// entropy = log S - T / S. The GPU version merges partial (m, S, T) triples across groups the same way.
/// </summary>
public static unsafe class SoftmaxEntropyCpu
{
    public static SoftmaxStats Compute(ReadOnlySpan<float> logits, float temperature = 1f, int token = -1)
    {
        if (logits.IsEmpty) throw new ArgumentException("empty logits row");
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "temperature must be > 0");
        int argmax = TensorPrimitives.IndexOfMax(logits);
        float invT = 1f / temperature;
        float m = logits[argmax] * invT;
        double s = 0, t = 0;
        int i = 0, n = logits.Length;
        fixed (float* x = logits)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                var vs = Vector512<float>.Zero; var vt = Vector512<float>.Zero;
                var vm = Vector512.Create(m); var vi = Vector512.Create(invT);
                // chunks of 4096 are folded into double to keep F32 lane sums short
                while (i + 16 <= n)
                {
                    int end = Math.Min(n - 15, i + 4096);
                    for (; i < end; i += 16)
                    {
                        var d = Vector512.Load(x + i) * vi - vm;
                        var e = Vector512.Exp(d);
                        vs += e;
                        vt = Vector512.FusedMultiplyAdd(e, d, vt);
                    }
                    s += Vector512.Sum(vs); t += Vector512.Sum(vt);
                    vs = Vector512<float>.Zero; vt = Vector512<float>.Zero;
                }
            }
            for (; i < n; i++)
            {
                double d = x[i] * invT - m;
                double e = Math.Exp(d);
                s += e; t += e * d;
            }
        }
        double logS = Math.Log(s);
        double lse = m + logS;
        double entropy = logS - t / s;
        double tokenLogProb = token >= 0 ? logits[token] * invT - lse : double.NaN;
        return new SoftmaxStats(m, lse, entropy, tokenLogProb, argmax);
    }

    /// <summary>probs = softmax(logits / temperature) in place into probs.</summary>
    public static void Softmax(ReadOnlySpan<float> logits, Span<float> probs, float temperature = 1f)
    {
        TensorPrimitives.Multiply(logits, 1f / temperature, probs);
        TensorPrimitives.SoftMax(probs, probs);
    }
}

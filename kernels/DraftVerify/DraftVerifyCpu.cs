using System.Numerics.Tensors;

namespace KernelEngine.Kernels.DraftVerify;

/// <summary>Outcome of verifying drafts: how many draft tokens were accepted, then the token that follows them
/// (the correction sampled from the residual on a rejection, or the bonus token when every draft was accepted).</summary>
public readonly record struct Verdict(int Accepted, int Token, int Branch = 0);

/// <summary>
/// CPU twin of the draft-verification kernel of speculative decoding (Leviathan et al. 2023; Chen et al. 2023).
/// Single draft: position i accepts draft token d_i with probability min(1, p_i(d_i) / q_i(d_i)) (u_i &lt; ratio);
/// the first rejection samples from norm(max(0, p_i − q_i)) and stops; if all k are accepted a bonus token is drawn
/// from p_k. Greedy mode compares d_i with argmax p_i and the correction/bonus is an argmax, so it reproduces
/// plain greedy decoding exactly. Multi-draft: k candidate tokens for one position are tried in turn by recursive
/// rejection sampling; after each rejection p ← norm(max(0, p − q)) and, for candidates drawn without replacement,
/// q ← q with the rejected token removed, renormalized (Jeon et al. 2024); the output is distributed exactly as p.
/// Rows are full-vocabulary probability distributions (logits are enough in greedy mode).
/// </summary>
internal static class DraftVerifyCpu
{
    /// <param name="p">(k + 1, vocab) target distributions at the k draft positions and the one after</param>
    /// <param name="q">(k, vocab) draft distributions (unused in greedy mode; a one-hot row for prompt-lookup drafts)</param>
    /// <param name="draft">(k) draft tokens</param>
    /// <param name="uniforms">(k + 1) uniform numbers in [0, 1): one per acceptance test, one for the final draw</param>
    /// <param name="residual">(vocab) scratch</param>
    public static Verdict Verify(ReadOnlySpan<float> p, ReadOnlySpan<float> q, ReadOnlySpan<int> draft, ReadOnlySpan<double> uniforms,
        int vocab, bool greedy, Span<float> residual)
    {
        int k = draft.Length;
        for (int i = 0; i < k; i++)
        {
            var pi = p.Slice(i * vocab, vocab);
            int d = draft[i];
            if (greedy)
            {
                int best = TensorPrimitives.IndexOfMax(pi);
                if (best != d) return new Verdict(i, best);
                continue;
            }
            var qi = q.Slice(i * vocab, vocab);
            float pd = pi[d], qd = qi[d];
            bool accept = qd <= 0 ? pd > 0 : uniforms[i] < Math.Min(1.0, pd / (double)qd);
            if (accept) continue;
            return new Verdict(i, SampleResidual(pi, qi, uniforms[k], residual));
        }
        var last = p.Slice(k * vocab, vocab);
        return new Verdict(k, greedy ? TensorPrimitives.IndexOfMax(last) : Sample(last, uniforms[k]));
    }

    /// <summary>
    /// Recursive rejection sampling over candidates for one position. Returns the index of the accepted candidate
    /// (Branch) and its token, or Branch = -1 with a token drawn from the final residual. p and q are modified.
    /// </summary>
    /// <param name="uniforms">(candidates + 1) uniforms</param>
    public static Verdict RecursiveReject(Span<float> p, Span<float> q, ReadOnlySpan<int> candidates, bool withoutReplacement,
        ReadOnlySpan<double> uniforms, bool greedy)
    {
        if (greedy)
        {
            int best = TensorPrimitives.IndexOfMax(p);
            int at = candidates.IndexOf(best);
            return at >= 0 ? new Verdict(1, best, at) : new Verdict(0, best, -1);
        }
        for (int j = 0; j < candidates.Length; j++)
        {
            int x = candidates[j];
            float px = p[x], qx = q[x];
            bool accept = qx <= 0 ? px > 0 : uniforms[j] < Math.Min(1.0, px / (double)qx);
            if (accept) return new Verdict(1, x, j);
            // p <- norm(max(0, p - q))
            double sum = 0;
            for (int i = 0; i < p.Length; i++) { float r = Math.Max(0f, p[i] - q[i]); p[i] = r; sum += r; }
            if (sum <= 0) break;
            TensorPrimitives.Multiply(p, (float)(1 / sum), p);
            if (withoutReplacement)
            {
                double rest = 1 - q[x];
                q[x] = 0;
                if (rest > 0) TensorPrimitives.Multiply(q, (float)(1 / rest), q);
            }
        }
        return new Verdict(0, Sample(p, uniforms[candidates.Length]), -1);
    }

    /// <summary>Draws from norm(max(0, p − q)); falls back to p when the residual is empty (p == q).</summary>
    public static int SampleResidual(ReadOnlySpan<float> p, ReadOnlySpan<float> q, double u, Span<float> residual)
    {
        var r = residual[..p.Length];
        TensorPrimitives.Subtract(p, q, r);
        TensorPrimitives.Max(r, 0f, r);
        double sum = TensorPrimitives.Sum(r);
        return sum > 0 ? Sample(r, u, sum) : Sample(p, u);
    }

    /// <summary>Inverse-CDF draw from an (unnormalized) distribution.</summary>
    public static int Sample(ReadOnlySpan<float> w, double u, double total = double.NaN)
    {
        if (double.IsNaN(total)) total = TensorPrimitives.Sum(w);
        double target = u * total, acc = 0;
        int last = -1;
        for (int i = 0; i < w.Length; i++)
        {
            if (w[i] <= 0) continue;
            acc += w[i];
            last = i;
            if (acc > target) return i;
        }
        return last;
    }
}

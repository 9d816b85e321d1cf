using ILGPU;
using ILGPU.Algorithms;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Kernels.DraftVerify;

internal struct DraftVerifyArgs
{
    public ArrayView<float> P;          // (k + 1, vocab) target distributions (logits suffice when greedy)
    public ArrayView<float> Q;          // (k, vocab) draft distributions; multi-draft: (1, vocab) q of the position
    public ArrayView<int> Draft;        // (k) draft tokens; multi-draft: the candidates
    public ArrayView<double> Uniforms;  // (k + 1)
    public ArrayView<float> Residual;   // (vocab) scratch
    public ArrayView<int> Result;       // (3): accepted, token, branch
    public int K, Vocab, Greedy, WithoutReplacement;
}

/// <summary>
/// ILGPU twin of draft verification: one group of 128 threads walks the draft positions in order (the decisions
/// are sequential by nature), parallel inside each position: argmax and sums are group reductions, and a draw from
/// an unnormalized row is an inverse CDF over per-thread contiguous slices (slice sums, a prefix over the slices,
/// then one thread scans its slice). Same rules and uniforms as <see cref="DraftVerifyCpu"/>.
/// </summary>
internal static class DraftVerifyIlgpu
{
    private static int ArgMax(ArrayView<float> row, int vocab, ArrayView<float> vals, ArrayView<int> idxs, bool warp)
    {
        float best = float.NegativeInfinity;
        int bi = -1;
        for (int i = Group.IdxX; i < vocab; i += Group.DimX)
            if (bi < 0 || row[i] > best) { best = row[i]; bi = i; }
        return DeviceMath.GroupArgMax(best, bi, vals, idxs, warp);
    }

    /// <summary>Inverse-CDF draw: the first index whose running sum exceeds u · Σ w (zero weights skipped).</summary>
    private static int Sample(ArrayView<float> w, int vocab, double u, ArrayView<float> sums, ArrayView<int> pick)
    {
        int tid = Group.IdxX, threads = Group.DimX;
        int per = (vocab + threads - 1) / threads;
        int from = tid * per, to = XMath.Min(vocab, from + per);
        float mine = 0;
        for (int i = from; i < to; i++) mine += XMath.Max(0f, w[i]);
        sums[tid] = mine;
        if (tid == 0) pick[0] = -1;
        Group.Barrier();
        double total = 0, before = 0;
        for (int j = 0; j < threads; j++) { if (j < tid) before += sums[j]; total += sums[j]; }
        double target = u * total;
        if (mine > 0 && before <= target && (target < before + mine || tid == threads - 1 || before + mine >= total))
        {
            double acc = before;
            int last = -1, found = -1;
            for (int i = from; i < to && found < 0; i++)
            {
                if (w[i] <= 0) continue;
                acc += w[i];
                last = i;
                if (acc > target) found = i;
            }
            Atomic.Max(ref pick[0], found >= 0 ? found : last);
        }
        Group.Barrier();
        int r = pick[0];
        Group.Barrier();
        return r;
    }

    /// <summary>Residual norm(max(0, p − q)) written to scratch; returns its sum.</summary>
    private static float MakeResidual(ArrayView<float> p, ArrayView<float> q, ArrayView<float> r, int vocab, ArrayView<float> red, bool warp)
    {
        float s = 0;
        for (int i = Group.IdxX; i < vocab; i += Group.DimX) { float v = XMath.Max(0f, p[i] - q[i]); r[i] = v; s += v; }
        return DeviceMath.GroupSum(s, red, warp);
    }

    /// <summary>Single draft of k tokens. Grid: 1 group.</summary>
    public static void Verify(DraftVerifyArgs a) => Verify(a, false);

    /// <summary><see cref="Verify(DraftVerifyArgs)"/> with warp-shuffle reductions (devices that shuffle).</summary>
    public static void VerifyWarp(DraftVerifyArgs a) => Verify(a, true);

    private static void Verify(DraftVerifyArgs a, bool warp)
    {
        var red = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        var idxs = SharedMemory.Allocate<int>(DeviceMath.GroupSize);
        var pick = SharedMemory.Allocate<int>(1);
        int v = a.Vocab;
        for (int i = 0; i < a.K; i++)
        {
            var pi = a.P.SubView((long)i * v, v);
            int d = a.Draft[i];
            if (a.Greedy != 0)
            {
                int best = ArgMax(pi, v, red, idxs, warp);
                if (best != d) { Write(a, i, best, 0); return; }
                continue;
            }
            var qi = a.Q.SubView((long)i * v, v);
            float pd = pi[d], qd = qi[d];
            bool accept = qd <= 0 ? pd > 0 : a.Uniforms[i] < XMath.Min(1.0, pd / (double)qd);
            if (accept) continue;
            float total = MakeResidual(pi, qi, a.Residual, v, red, warp);
            int token = total > 0 ? Sample(a.Residual, v, a.Uniforms[a.K], red, pick) : Sample(pi, v, a.Uniforms[a.K], red, pick);
            Write(a, i, token, 0);
            return;
        }
        var last = a.P.SubView((long)a.K * v, v);
        int t = a.Greedy != 0 ? ArgMax(last, v, red, idxs, warp) : Sample(last, v, a.Uniforms[a.K], red, pick);
        Write(a, a.K, t, 0);
    }

    /// <summary>Recursive rejection sampling over K candidates for one position; p and q are modified. Grid: 1 group.</summary>
    public static void RecursiveReject(DraftVerifyArgs a) => RecursiveReject(a, false);

    /// <summary><see cref="RecursiveReject(DraftVerifyArgs)"/> with warp-shuffle reductions (devices that shuffle).</summary>
    public static void RecursiveRejectWarp(DraftVerifyArgs a) => RecursiveReject(a, true);

    private static void RecursiveReject(DraftVerifyArgs a, bool warp)
    {
        var red = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        var idxs = SharedMemory.Allocate<int>(DeviceMath.GroupSize);
        var pick = SharedMemory.Allocate<int>(1);
        int v = a.Vocab;
        var p = a.P.SubView(0, v);
        var q = a.Q.SubView(0, v);
        if (a.Greedy != 0)
        {
            int best = ArgMax(p, v, red, idxs, warp);
            int at = -1;
            for (int j = a.K - 1; j >= 0; j--) if (a.Draft[j] == best) at = j;
            Write(a, at >= 0 ? 1 : 0, best, at);
            return;
        }
        for (int j = 0; j < a.K; j++)
        {
            int x = a.Draft[j];
            float px = p[x], qx = q[x];
            bool accept = qx <= 0 ? px > 0 : a.Uniforms[j] < XMath.Min(1.0, px / (double)qx);
            if (accept) { Write(a, 1, x, j); return; }
            float total = MakeResidual(p, q, a.Residual, v, red, warp);
            if (total <= 0) break;
            for (int i = Group.IdxX; i < v; i += Group.DimX) p[i] = a.Residual[i] * (1f / total);
            Group.Barrier();
            if (a.WithoutReplacement != 0)
            {
                float rest = 1f - qx;
                for (int i = Group.IdxX; i < v; i += Group.DimX)
                    q[i] = i == x ? 0f : (rest > 0 ? q[i] * (1f / rest) : q[i]);
                Group.Barrier();
            }
        }
        Write(a, 0, Sample(p, v, a.Uniforms[a.K], red, pick), -1);
    }

    private static void Write(DraftVerifyArgs a, int accepted, int token, int branch)
    {
        if (Group.IdxX == 0) { a.Result[0] = accepted; a.Result[1] = token; a.Result[2] = branch; }
    }
}

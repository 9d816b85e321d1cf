using ILGPU;
using ILGPU.Algorithms;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Kernels.SoftmaxEntropy;

internal struct SoftmaxEntropyArgs
{
    public ArrayView<float> Logits;       // the row
    public ArrayView<float> Partial;      // (groups, 3): m, S, T
    public ArrayView<int> PartialIdx;     // (groups) argmax of each group
    public ArrayView<int> Counter;        // (1) groups finished; the last one merges and resets it
    public ArrayView<float> Result;       // (4): max z, log-sum-exp, entropy (nats), log p(token)
    public ArrayView<int> ResultIdx;      // (1): argmax
    public int N, Token, Groups;
    public float InvTemperature;
}

/// <summary>
/// ILGPU twin of the fused softmax-entropy kernel, ONE launch for any vocabulary: each group folds its slice of
/// z = logits / T into a triple (m, S = Σ e^(z−m), T = Σ e^(z−m)(z−m)) plus its argmax; triples merge exactly by
/// (m, S, T) ⊕ (m', S', T') = (M, S e^(m−M) + S' e^(m'−M), e^(m−M)(T + (m−M)S) + e^(m'−M)(T' + (m'−M)S')).
/// The last group to finish (device-wide atomic ticket after a fence) merges every group's triple and writes
/// log-sum-exp = M + log S, entropy = log S − T/S and log p(token).
/// </summary>
internal static class SoftmaxEntropyIlgpu
{
    private static void Merge(ref float m, ref float s, ref float t, float m2, float s2, float t2)
    {
        if (s2 <= 0) return;
        if (s <= 0) { m = m2; s = s2; t = t2; return; }
        float mm = XMath.Max(m, m2);
        float e1 = XMath.Exp(m - mm), e2 = XMath.Exp(m2 - mm);
        t = e1 * (t + (m - mm) * s) + e2 * (t2 + (m2 - mm) * s2);
        s = s * e1 + s2 * e2;
        m = mm;
    }

    private static void GroupMerge(ref float m, ref float s, ref float t, ref int idx, float bestZ,
        ArrayView<float> sm, ArrayView<float> ss, ArrayView<float> st, ArrayView<float> bz, ArrayView<int> bi, bool warp)
    {
        if (warp) { WarpGroupMerge(ref m, ref s, ref t, ref idx, bestZ, sm, ss, st, bz, bi); return; }
        int tid = Group.IdxX;
        sm[tid] = m; ss[tid] = s; st[tid] = t; bz[tid] = bestZ; bi[tid] = idx;
        Group.Barrier();
        for (int k = Group.DimX / 2; k > 0; k >>= 1)
        {
            if (tid < k)
            {
                float m1 = sm[tid], s1 = ss[tid], t1 = st[tid];
                Merge(ref m1, ref s1, ref t1, sm[tid + k], ss[tid + k], st[tid + k]);
                sm[tid] = m1; ss[tid] = s1; st[tid] = t1;
                int ia = bi[tid], ib = bi[tid + k];
                float za = bz[tid], zb = bz[tid + k];
                if (DeviceMath.Better(zb, ib, za, ia)) { bz[tid] = zb; bi[tid] = ib; }
            }
            Group.Barrier();
        }
        m = sm[0]; s = ss[0]; t = st[0]; idx = bi[0];
        Group.Barrier();
    }

    /// <summary>
    /// <see cref="GroupMerge"/> by warps: a butterfly of shuffles merges the lanes' triples and argmaxes (Merge is
    /// symmetric to the last bit, so every lane ends with the same triple), then every thread merges the warps' results
    /// in warp order from shared memory.
    /// </summary>
    private static void WarpGroupMerge(ref float m, ref float s, ref float t, ref int idx, float bestZ,
        ArrayView<float> sm, ArrayView<float> ss, ArrayView<float> st, ArrayView<float> bz, ArrayView<int> bi)
    {
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
        {
            int from = Warp.LaneIdx ^ mask;
            float m2 = Warp.Shuffle(m, from), s2 = Warp.Shuffle(s, from), t2 = Warp.Shuffle(t, from), z2 = Warp.Shuffle(bestZ, from);
            int i2 = Warp.Shuffle(idx, from);
            Merge(ref m, ref s, ref t, m2, s2, t2);
            if (DeviceMath.Better(z2, i2, bestZ, idx)) { bestZ = z2; idx = i2; }
        }
        int w = Warp.WarpIdx;
        if (Warp.LaneIdx == 0) { sm[w] = m; ss[w] = s; st[w] = t; bz[w] = bestZ; bi[w] = idx; }
        Group.Barrier();
        m = sm[0]; s = ss[0]; t = st[0]; bestZ = bz[0]; idx = bi[0];
        for (int k = 1; k < Group.DimX / Warp.WarpSize; k++)
        {
            Merge(ref m, ref s, ref t, sm[k], ss[k], st[k]);
            if (DeviceMath.Better(bz[k], bi[k], bestZ, idx)) { bestZ = bz[k]; idx = bi[k]; }
        }
        Group.Barrier();
    }

    public static void Compute(SoftmaxEntropyArgs a) => Compute(a, false);

    /// <summary><see cref="Compute(SoftmaxEntropyArgs)"/> with warp-shuffle merges (devices that shuffle).</summary>
    public static void ComputeWarp(SoftmaxEntropyArgs a) => Compute(a, true);

    private static void Compute(SoftmaxEntropyArgs a, bool warp)
    {
        var sm = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        var ss = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        var st = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        var bz = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        var bi = SharedMemory.Allocate<int>(DeviceMath.GroupSize);
        var ticket = SharedMemory.Allocate<int>(1);
        int g = Grid.IdxX, tid = Group.IdxX;
        int per = (a.N + a.Groups - 1) / a.Groups;
        int from = g * per, to = XMath.Min(a.N, from + per);
        float m = float.NegativeInfinity, s = 0, t = 0, bestZ = float.NegativeInfinity;
        int idx = -1;
        for (int i = from + tid; i < to; i += Group.DimX)
        {
            float z = a.Logits[i] * a.InvTemperature;
            if (z > bestZ || idx < 0) { bestZ = z; idx = i; }
            Merge(ref m, ref s, ref t, z, 1f, 0f);
        }
        GroupMerge(ref m, ref s, ref t, ref idx, bestZ, sm, ss, st, bz, bi, warp);
        if (tid == 0)
        {
            a.Partial[g * 3] = m; a.Partial[g * 3 + 1] = s; a.Partial[g * 3 + 2] = t;
            a.PartialIdx[g] = idx;
            MemoryFence.DeviceLevel();
            ticket[0] = Atomic.Add(ref a.Counter[0], 1);
        }
        Group.Barrier();
        if (ticket[0] != a.Groups - 1) return;   // not the last group
        MemoryFence.DeviceLevel();
        m = float.NegativeInfinity; s = 0; t = 0; idx = -1; bestZ = float.NegativeInfinity;
        for (int k = tid; k < a.Groups; k += Group.DimX)
        {
            Merge(ref m, ref s, ref t, a.Partial[k * 3], a.Partial[k * 3 + 1], a.Partial[k * 3 + 2]);
            int ik = a.PartialIdx[k];
            if (ik >= 0)
            {
                float zk = a.Logits[ik] * a.InvTemperature;
                if (DeviceMath.Better(zk, ik, bestZ, idx)) { bestZ = zk; idx = ik; }
            }
        }
        GroupMerge(ref m, ref s, ref t, ref idx, bestZ, sm, ss, st, bz, bi, warp);
        if (tid == 0)
        {
            float logS = XMath.Log(s);
            float lse = m + logS;
            a.Result[0] = m;
            a.Result[1] = lse;
            a.Result[2] = logS - t / s;
            a.Result[3] = a.Token >= 0 ? a.Logits[a.Token] * a.InvTemperature - lse : float.NaN;
            a.ResultIdx[0] = idx;
            a.Counter[0] = 0;
        }
    }
}

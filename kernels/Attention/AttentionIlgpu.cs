using ILGPU;
using ILGPU.Algorithms;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Kernels.Attention;

internal struct AttentionArgs
{
    public ArrayView<float> Q, Out;
    public ArrayView<byte> K, V;          // the whole cache; LayerOffset selects the layer (elements)
    public ArrayView<float> Partial;      // flash-decoding scratch: (heads, chunks, headDim + 2)
    public ArrayView<int> Counter;        // decode: chunks finished per head (the last one merges and resets it)
    public long LayerOffset;
    public int F16, Start, Rows, Heads, KvHeads, HeadDim, Branch, Chunk, Chunks, Window;   // Window 0: full causal
    public float Scale, SoftCap;                                                       // SoftCap 0: no score capping
}

/// <summary>
/// ILGPU twin of the Attention family (head dim up to 256).
/// Prefill (FlashAttention style): one 32-thread group per (query row, head) walks the visible keys in tiles of 32:
///   scores of a tile in shared memory, an online softmax (running max m and sum l, the output rescaled by
///   exp(m_old − m_new)), so no n×n score matrix ever exists in global memory. Branch layouts (speculative drafts)
///   see the committed prefix and their own rows, as on the CPU.
/// Decode (Flash-Decoding), one launch: the keys are split into chunks, one group per (head, chunk) computes a partial
///   (m, l, o); the last group of a head to finish (a device-wide atomic ticket after a fence) merges the head's chunks
///   by log-sum-exp weights, in chunk order, so the result does not depend on which group finished last. On devices
///   that shuffle the group is one warp with warp-level softmax (<see cref="DecodeWarp"/>: no shared memory, no barrier).
/// </summary>
internal static class AttentionIlgpu
{
    public const int Threads = 32;
    public const int MaxHeadDim = 256;
    /// <summary>Query heads the decode kernel's per-head counters cover.</summary>
    public const int MaxHeads = 1024;

    internal static float Key(AttentionArgs a, long index) =>
        a.F16 != 0 ? DeviceMath.HalfToFloat(a.K.Cast<ushort>()[a.LayerOffset + index]) : a.K.Cast<float>()[a.LayerOffset + index];

    internal static float Value(AttentionArgs a, long index) =>
        a.F16 != 0 ? DeviceMath.HalfToFloat(a.V.Cast<ushort>()[a.LayerOffset + index]) : a.V.Cast<float>()[a.LayerOffset + index];

    internal static float Capped(AttentionArgs a, float score) => a.SoftCap > 0 ? a.SoftCap * XMath.Tanh(score / a.SoftCap) : score;

    /// <summary>Online-softmax attention of one query over visible positions [from, to) (in visible-index space: index s
    /// is cache position first + s within the prefix of prefixEnd positions, then the branch's own rows).</summary>
    private static void Attend(AttentionArgs a, int t, int h, int from, int to, int first, int prefixEnd, int ownStart,
        ArrayView<float> o, ArrayView<float> sc, ArrayView<float> red, out float mOut, out float lOut)
    {
        int tid = Group.IdxX, hd = a.HeadDim, kvDim = a.KvHeads * hd;
        int kvh = h / (a.Heads / a.KvHeads);
        long qo = (long)t * a.Heads * hd + h * hd;
        for (int d = tid; d < hd; d += Threads) o[d] = 0;
        float m = float.NegativeInfinity, l = 0;
        Group.Barrier();
        for (int s0 = from; s0 < to; s0 += Threads)
        {
            int s = s0 + tid;
            float score = float.NegativeInfinity;
            if (s < to)
            {
                int p = s < prefixEnd ? first + s : ownStart + s - prefixEnd;
                long ko = (long)p * kvDim + kvh * hd;
                float dot = 0;
                for (int d = 0; d < hd; d++) dot += a.Q[qo + d] * Key(a, ko + d);
                score = Capped(a, dot * a.Scale);
            }
            float mNew = XMath.Max(m, DeviceMath.GroupMax(score, red));
            float corr = XMath.Exp(m - mNew);
            float e = s < to ? XMath.Exp(score - mNew) : 0f;
            sc[tid] = e;
            float tileSum = DeviceMath.GroupSum(e, red);
            int n = XMath.Min(Threads, to - s0);
            for (int d = tid; d < hd; d += Threads)
            {
                float acc = o[d] * corr;
                for (int j = 0; j < n; j++)
                {
                    int sj = s0 + j;
                    int p = sj < prefixEnd ? first + sj : ownStart + sj - prefixEnd;
                    acc += sc[j] * Value(a, (long)p * kvDim + kvh * hd + d);
                }
                o[d] = acc;
            }
            l = l * corr + tileSum;
            m = mNew;
            Group.Barrier();
        }
        mOut = m; lOut = l;
    }

    /// <summary>Row t sees cache positions [first, first + prefixEnd) and then its branch's own rows; first &gt; 0 under a
    /// sliding window (of the row's logical position: a draft row i sits at start + i), as on the CPU.</summary>
    private static void Visible(AttentionArgs a, int t, out int first, out int prefixEnd, out int ownStart, out int visible)
    {
        int own, logical;
        if (a.Branch > 0) { prefixEnd = a.Start; ownStart = a.Start + t / a.Branch * a.Branch; own = t % a.Branch + 1; logical = a.Start + t % a.Branch; }
        else { prefixEnd = a.Start + t + 1; ownStart = 0; own = 0; logical = a.Start + t; }
        first = a.Window > 0 ? XMath.Min(prefixEnd, XMath.Max(0, logical - a.Window + 1)) : 0;
        prefixEnd -= first;
        visible = prefixEnd + own;
    }

    /// <summary>
    /// v0 one thread per (query row, head) with the same online softmax over single keys and the output row in
    /// thread-local memory: no barriers, the path for ILGPU's CPU accelerator (and a reference for the group kernels).
    /// </summary>
    public static void PerQuery(Index1D index, AttentionArgs a)
    {
        var o = LocalMemory.Allocate<float>(MaxHeadDim);
        int t = index / a.Heads, h = index % a.Heads, hd = a.HeadDim, kvDim = a.KvHeads * hd;
        int kvh = h / (a.Heads / a.KvHeads);
        Visible(a, t, out int first, out int prefixEnd, out int ownStart, out int visible);
        long qo = (long)t * a.Heads * hd + h * hd;
        for (int d = 0; d < hd; d++) o[d] = 0;
        float m = float.NegativeInfinity, l = 0;
        for (int s = 0; s < visible; s++)
        {
            int p = s < prefixEnd ? first + s : ownStart + s - prefixEnd;
            long ko = (long)p * kvDim + kvh * hd;
            float dot = 0;
            for (int d = 0; d < hd; d++) dot += a.Q[qo + d] * Key(a, ko + d);
            float score = Capped(a, dot * a.Scale);
            float mNew = XMath.Max(m, score);
            float corr = XMath.Exp(m - mNew), e = XMath.Exp(score - mNew);
            for (int d = 0; d < hd; d++) o[d] = o[d] * corr + e * Value(a, ko + d);
            l = l * corr + e;
            m = mNew;
        }
        for (int d = 0; d < hd; d++) a.Out[qo + d] = o[d] / l;
    }

    /// <summary>Grid: rows * heads groups of 32 threads.</summary>
    public static void Prefill(AttentionArgs a)
    {
        var o = SharedMemory.Allocate<float>(MaxHeadDim);
        var sc = SharedMemory.Allocate<float>(Threads);
        var red = SharedMemory.Allocate<float>(Threads);
        int t = Grid.IdxX / a.Heads, h = Grid.IdxX % a.Heads;
        Visible(a, t, out int first, out int prefixEnd, out int ownStart, out int visible);
        Attend(a, t, h, 0, visible, first, prefixEnd, ownStart, o, sc, red, out _, out float l);
        long oo = (long)t * a.Heads * a.HeadDim + h * a.HeadDim;
        for (int d = Group.IdxX; d < a.HeadDim; d += Threads) a.Out[oo + d] = o[d] / l;
    }

    /// <summary>
    /// Decode attention of head h (row 0, all visible positions) by one warp, normalized into Out: the path of
    /// <see cref="FusedDecodeAttentionIlgpu"/>, where warps of a group run different heads.
    /// </summary>
    internal static void AttendWarp(AttentionArgs a, int h)
    {
        int first = a.Window > 0 ? XMath.Max(0, a.Start - a.Window + 1) : 0;
        long qo = (long)h * a.HeadDim;
        var o = a.Out.SubView(qo, a.HeadDim);
        AttendWarpRange(a, h, 0, a.Start + 1 - first, first, o, out _, out float l);
        for (int d = Warp.LaneIdx; d < a.HeadDim; d += Warp.WarpSize) o[d] /= l;
    }

    /// <summary>
    /// Online softmax of head h's query (row 0) over visible positions [from, to) (visible index s is cache position
    /// first + s) by one warp, no shared memory and no barrier: a lane scores one key of each tile of 32, max and sum are
    /// butterfly shuffles, the tile's softmax weights reach every lane by shuffles, and each lane keeps its own output
    /// dimensions (d = lane, lane + 32, ..) of o, rescaled per tile. o gets Σ e^(score − m)·v (not divided by l).
    /// </summary>
    internal static void AttendWarpRange(AttentionArgs a, int h, int from, int to, int first, ArrayView<float> o, out float mOut, out float lOut)
    {
        int lane = Warp.LaneIdx, hd = a.HeadDim, kvDim = a.KvHeads * hd;
        long kvo = (long)(h / (a.Heads / a.KvHeads)) * hd, qo = (long)h * hd;
        for (int d = lane; d < hd; d += Warp.WarpSize) o[d] = 0;
        float m = float.NegativeInfinity, l = 0;
        for (int s0 = from; s0 < to; s0 += Warp.WarpSize)
        {
            int s = s0 + lane;
            float score = float.NegativeInfinity;
            if (s < to)
            {
                long ko = (long)(first + s) * kvDim + kvo;
                float dot = 0;
                for (int d = 0; d < hd; d++) dot += a.Q[qo + d] * Key(a, ko + d);
                score = Capped(a, dot * a.Scale);
            }
            float mNew = XMath.Max(m, DeviceMath.WarpMax(score));
            float corr = XMath.Exp(m - mNew);
            float e = s < to ? XMath.Exp(score - mNew) : 0f;
            l = l * corr + DeviceMath.WarpSum(e);
            int n = XMath.Min(Warp.WarpSize, to - s0);
            for (int d0 = 0; d0 < hd; d0 += Warp.WarpSize)   // the same trip count in every lane: the shuffles stay converged
            {
                int d = d0 + lane;
                float acc = d < hd ? o[d] * corr : 0f;
                for (int j = 0; j < n; j++)
                {
                    float ej = Warp.Shuffle(e, j);
                    if (d < hd) acc += ej * Value(a, (long)(first + s0 + j) * kvDim + kvo + d);
                }
                if (d < hd) o[d] = acc;
            }
            m = mNew;
        }
        mOut = m; lOut = l;
    }

    /// <summary>
    /// Decode, warp-level (devices that shuffle): grid heads × chunks warps; each writes its chunk's partial (m, l, o) with
    /// <see cref="AttendWarpRange"/> straight into the scratch, takes the head's ticket after a fence, and the head's last
    /// chunk merges, as <see cref="Decode"/> does with shared-memory reductions.
    /// </summary>
    public static void DecodeWarp(AttentionArgs a)
    {
        int h = Grid.IdxX / a.Chunks, c = Grid.IdxX % a.Chunks;
        int first = a.Window > 0 ? XMath.Max(0, a.Start - a.Window + 1) : 0;
        int visible = a.Start + 1 - first;
        int from = c * a.Chunk, to = XMath.Min(visible, from + a.Chunk);
        long po = ((long)h * a.Chunks + c) * (a.HeadDim + 2);
        AttendWarpRange(a, h, from, to, first, a.Partial.SubView(po + 2, a.HeadDim), out float m, out float l);
        if (Warp.LaneIdx == 0) { a.Partial[po] = m; a.Partial[po + 1] = l; }
        MemoryFence.DeviceLevel();   // this lane's part of the partial is visible before the ticket
        Warp.Barrier();
        int ticket = Warp.LaneIdx == 0 ? Atomic.Add(ref a.Counter[h], 1) : 0;
        if (Warp.Shuffle(ticket, 0) != a.Chunks - 1) return;   // not the head's last chunk
        MemoryFence.DeviceLevel();
        Merge(a, h);
    }

    /// <summary>Decode: grid heads × chunks groups; each a chunk's partial, the head's last one the merge.</summary>
    public static void Decode(AttentionArgs a)
    {
        var o = SharedMemory.Allocate<float>(MaxHeadDim);
        var sc = SharedMemory.Allocate<float>(Threads);
        var red = SharedMemory.Allocate<float>(Threads);
        var ticket = SharedMemory.Allocate<int>(1);
        int h = Grid.IdxX / a.Chunks, c = Grid.IdxX % a.Chunks;
        int first = a.Window > 0 ? XMath.Max(0, a.Start - a.Window + 1) : 0;
        int visible = a.Start + 1 - first;
        int from = c * a.Chunk, to = XMath.Min(visible, from + a.Chunk);
        Attend(a, 0, h, from, to, first, visible, 0, o, sc, red, out float m, out float l);
        long po = ((long)h * a.Chunks + c) * (a.HeadDim + 2);
        for (int d = Group.IdxX; d < a.HeadDim; d += Threads) a.Partial[po + 2 + d] = o[d];
        if (Group.IdxX == 0) { a.Partial[po] = m; a.Partial[po + 1] = l; }
        MemoryFence.DeviceLevel();   // this thread's part of the partial is visible before the ticket
        Group.Barrier();
        if (Group.IdxX == 0) ticket[0] = Atomic.Add(ref a.Counter[h], 1);
        Group.Barrier();
        if (ticket[0] != a.Chunks - 1) return;   // not the head's last chunk
        MemoryFence.DeviceLevel();
        Merge(a, h);
    }

    /// <summary>The head's chunks merged by log-sum-exp weights, in chunk order, into Out; the head's counter reset.</summary>
    private static void Merge(AttentionArgs a, int h)
    {
        // out = Σ_c o_c e^(m_c − m) / Σ_c l_c e^(m_c − m), m = max_c m_c
        long baseOff = (long)h * a.Chunks * (a.HeadDim + 2);
        float mx = float.NegativeInfinity;
        for (int k = 0; k < a.Chunks; k++) mx = XMath.Max(mx, a.Partial[baseOff + k * (a.HeadDim + 2)]);
        float sum = 0;
        for (int k = 0; k < a.Chunks; k++)
        {
            long pk = baseOff + k * (a.HeadDim + 2);
            float lk = a.Partial[pk + 1];
            if (lk > 0) sum += lk * XMath.Exp(a.Partial[pk] - mx);
        }
        for (int d = Group.IdxX; d < a.HeadDim; d += Group.DimX)
        {
            float acc = 0;
            for (int k = 0; k < a.Chunks; k++)
            {
                long pk = baseOff + k * (a.HeadDim + 2);
                if (a.Partial[pk + 1] > 0) acc += a.Partial[pk + 2 + d] * XMath.Exp(a.Partial[pk] - mx);
            }
            a.Out[(long)h * a.HeadDim + d] = acc / sum;
        }
        if (Group.IdxX == 0) a.Counter[h] = 0;
    }
}

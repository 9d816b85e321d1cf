using ILGPU;
using ILGPU.Algorithms;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Kernels.Attention;

/// <summary>
/// Prefill attention on shared tiles (FlashAttention-2's loop order), for causal rows with or without a sliding window
/// (draft-branch layouts take <see cref="AttentionIlgpu.Prefill"/>): a group of <see cref="Warps"/> warps takes that many
/// consecutive query rows of one head. Per tile of <see cref="Tile"/> key positions the group stages the KV head's K and V
/// rows in shared memory once (coalesced; K rows padded by one float so lanes reading different keys hit different
/// banks), then each warp scores its row's query against the tile (a lane per key), takes max and sum by shuffles,
/// broadcasts the softmax weights by shuffles and accumulates its output dimensions from the V tile, rescaled per tile
/// (online softmax). Each K/V element is read from memory once per group of rows instead of once per row.
/// </summary>
internal static class PrefillAttentionIlgpu
{
    public const int Warps = 8, Tile = 32, MaxHeadDim = 128;

    /// <summary>Grid: heads × ⌈rows / Warps⌉ groups of Warps warps.</summary>
    public static void Run(AttentionArgs a)
    {
        var ks = SharedMemory.Allocate<float>(Tile * (MaxHeadDim + 1));
        var vs = SharedMemory.Allocate<float>(Tile * MaxHeadDim);
        int hd = a.HeadDim, kvDim = a.KvHeads * hd, stride = hd + 1, lane = Warp.LaneIdx;
        int h = Grid.IdxX % a.Heads, t0 = Grid.IdxX / a.Heads * Warps, t = t0 + Warp.WarpIdx;
        int kvh = h / (a.Heads / a.KvHeads);
        bool row = t < a.Rows;
        // row t (position Start + t) sees [first, Start + t]; the group's rows together see [groupFirst, end)
        int first = a.Window > 0 ? XMath.Max(0, a.Start + t - a.Window + 1) : 0, visible = a.Start + t + 1;
        int groupFirst = a.Window > 0 ? XMath.Max(0, a.Start + t0 - a.Window + 1) : 0, end = a.Start + XMath.Min(a.Rows, t0 + Warps);
        long qo = (long)t * a.Heads * hd + h * hd;
        if (row) for (int d = lane; d < hd; d += Warp.WarpSize) a.Out[qo + d] = 0;
        float m = float.NegativeInfinity, l = 0;
        for (int s0 = groupFirst; s0 < end; s0 += Tile)
        {
            for (int i = Group.IdxX; i < Tile * hd; i += Group.DimX)
            {
                int j = i / hd, d = i % hd, p = s0 + j;
                long at = (long)p * kvDim + kvh * hd + d;
                ks[j * stride + d] = p < end ? AttentionIlgpu.Key(a, at) : 0f;
                vs[j * hd + d] = p < end ? AttentionIlgpu.Value(a, at) : 0f;
            }
            Group.Barrier();
            if (row && s0 < visible && s0 + Tile > first)   // the whole warp: its row sees part of this tile
            {
                int s = s0 + lane;
                float score = float.NegativeInfinity;
                if (s >= first && s < visible)
                {
                    float dot = 0;
                    for (int d = 0; d < hd; d++) dot += a.Q[qo + d] * ks[lane * stride + d];
                    score = AttentionIlgpu.Capped(a, dot * a.Scale);
                }
                float mNew = XMath.Max(m, DeviceMath.WarpMax(score));
                float corr = XMath.Exp(m - mNew);
                float e = s >= first && s < visible ? XMath.Exp(score - mNew) : 0f;
                l = l * corr + DeviceMath.WarpSum(e);
                int n = XMath.Min(Tile, visible - s0);
                for (int d0 = 0; d0 < hd; d0 += Warp.WarpSize)   // the same trip count in every lane: the shuffles stay converged
                {
                    int d = d0 + lane;
                    float acc = d < hd ? a.Out[qo + d] * corr : 0f;
                    for (int j = 0; j < n; j++)
                    {
                        float ej = Warp.Shuffle(e, j);
                        if (d < hd) acc += ej * vs[j * hd + d];
                    }
                    if (d < hd) a.Out[qo + d] = acc;
                }
                m = mNew;
            }
            Group.Barrier();
        }
        if (row) for (int d = lane; d < hd; d += Warp.WarpSize) a.Out[qo + d] /= l;
    }
}

using ILGPU;
using KernelEngine.Kernels.Ilgpu;
using KernelEngine.Kernels.MatMul;
using KernelEngine.Kernels.Rope;

namespace KernelEngine.Kernels.Attention;

/// <summary>Arguments of <see cref="FusedDecodeAttentionIlgpu.Run"/>.</summary>
internal struct FusedAttentionArgs
{
    public WarpMatVecArgs M;          // the normed q/k/v matvec: P0 = Wq → q, P1 = Wk → k, P2 = Wv → v
    public RopeArgs Rope;             // X = q, CosSin: the token's angles
    public AttentionArgs Att;         // Q = q, Out = the attention output; the cache, Start = the token's cache position
    public ArrayView<int> Counter;    // groups finished per KV head (the last one resets it to 0)
    public int Attend;                // 0: stop after the KV store (long contexts: the split kernel attends next)
}

/// <summary>
/// The front half of a decode token's attention block in one launch: RMSNorm → q/k/v matvec → RoPE → KV store → attention.
/// Groups of <see cref="WarpMatVecIlgpu.WarpsPerGroup"/> warps compute rows of q|k|v (a warp per row, the norm in the
/// prologue, as <see cref="WarpMatVecIlgpu"/>); the rows of one KV head's query heads, its k head and its v head (head
/// dimension a multiple of the warps per group, so a group's rows never straddle two) form a unit. Each group takes a
/// device-wide ticket for its unit after a fence; the unit's last group, the only one that sees all its rows, rotates the
/// unit's q and k pairs, writes k and v into the cache and runs the unit's heads' attention, a warp per head
/// (<see cref="AttentionIlgpu.AttendWarp"/>). No group waits on another, so nothing depends on how many are resident, and
/// the result does not depend on which group finished last. One group per KV head attends over all positions, so the
/// host runs attention here while the keys fit one flash-decoding chunk (where the split kernel would not split either);
/// beyond that the launch stops after the KV store and the split kernel attends (<see cref="AttentionIlgpu.DecodeWarp"/>).
/// </summary>
internal static class FusedDecodeAttentionIlgpu
{
    public static void Run(FusedAttentionArgs a)
    {
        var shared = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        var ticket = SharedMemory.Allocate<int>(1);
        var m = a.M;
        var at = a.Att;
        int warps = Group.DimX / Warp.WarpSize, hd = at.HeadDim, perKv = at.Heads / at.KvHeads;
        float scale = WarpMatVecIlgpu.NormScale(m, shared);
        int first = Grid.IdxX * warps;   // the group's first row of q|k|v
        WarpMatVecIlgpu.StoreRow(m, first + Warp.WarpIdx, scale, Warp.LaneIdx);
        int g = first < m.P0.Rows ? first / hd / perKv : (first - m.P0.Rows) % m.P1.Rows / hd;
        MemoryFence.DeviceLevel();   // the rows are visible before the ticket
        Group.Barrier();
        if (Group.IdxX == 0) ticket[0] = Atomic.Add(ref a.Counter[g], 1);
        Group.Barrier();
        if (ticket[0] != (perKv + 2) * hd / warps - 1) return;   // not the unit's last group
        MemoryFence.DeviceLevel();
        if (Group.IdxX == 0) a.Counter[g] = 0;

        var rope = a.Rope;
        var k = m.P1.Y;
        var v = m.P2.Y;
        int half = rope.Pairs, qPairs = perKv * half;
        long kvAt = (long)g * hd, cacheAt = at.LayerOffset + (long)at.Start * at.KvHeads * hd + kvAt;
        for (int t = Group.IdxX; t < qPairs + half + hd; t += Group.DimX)
        {
            if (t < qPairs) RopeIlgpu.Rotate(rope, rope.X, (long)(g * perKv + t / half) * hd, 0, t % half, out _, out _);
            else if (t < qPairs + half) RopeIlgpu.RotateAndStoreKey(rope, k, kvAt, 0, t - qPairs, at.K, at.F16, cacheAt);
            else
            {
                int d = t - qPairs - half;
                RopeIlgpu.StoreValue(rope, k, v, kvAt + d, d, at.K, at.V, at.F16, cacheAt + d);
            }
        }
        if (a.Attend == 0) return;
        Group.Barrier();
        for (int h = g * perKv + Warp.WarpIdx; h < (g + 1) * perKv; h += warps) AttentionIlgpu.AttendWarp(at, h);
    }
}

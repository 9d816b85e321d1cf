using ILGPU;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Kernels.MatMul;

/// <summary>Arguments of the MatMul kernels: y (rows, outDim) = x (rows, inDim) · Wᵀ + bias, W raw bytes of a WeightType.</summary>
internal struct MatMulArgs
{
    public ArrayView<float> X;
    public ArrayView<byte> W;
    public ArrayView<float> Bias;
    public ArrayView<float> Y;
    public int Rows, InDim, OutDim, Type, HasBias;
    public long RowBytes;
}

/// <summary>16 bytes read as one 128-bit load (ILGPU emits <c>ld.v4</c> for a 16-byte struct of four 4-byte fields).</summary>
internal struct Vec4F { public float X, Y, Z, W; }

/// <summary>16 bytes of 2-byte elements (F16, BF16): eight of them, two per word.</summary>
internal struct Vec4U { public uint A, B, C, D; }

/// <summary>
/// ILGPU twin of the MatMul family (weights converted element by element inside the kernel, never widened in memory).
/// v1 MatVec (decode): one group of 128 threads per output row; threads stride along the row, a shared-memory tree
///    reduction sums them. Coalesced weight reads; x is re-read by every group (it stays in cache).
/// v2 Tiled (prefill): 16x16 output tiles per group of 256 threads; 16x16 tiles of x and W are staged in shared
///    memory (padded to 17 columns against bank conflicts) so each weight is read once per 16 rows of x.
/// v3 WarpRows (decode, F32/F16/BF16 rows of whole 16-byte vectors): one warp per output row, each lane reads 16 bytes
///    of the row per step (one 128-bit load: 4 floats or 8 halves) and the matching x as 128-bit loads; the lanes'
///    partial sums meet through warp shuffles (no shared memory, no barrier). A group holds several warps, so
///    several rows.
/// </summary>
internal static class MatMulIlgpu
{
    public const int Tile = 16;
    /// <summary>Warps of a <see cref="WarpRows"/> group (rows per group).</summary>
    public const int WarpsPerGroup = 4;

    /// <summary>
    /// v0 one thread per output element, no shared memory or barriers: the path for ILGPU's CPU accelerator, where
    /// each barrier costs an OS context switch per simulated thread (and a tested reference for the group kernels).
    /// </summary>
    public static void PerElement(Index1D index, MatMulArgs a)
    {
        int r = index / a.OutDim, o = index % a.OutDim;
        long xo = (long)r * a.InDim;
        float acc = 0;
        for (int i = 0; i < a.InDim; i++) acc += a.X[xo + i] * DeviceMath.ReadWeight(a.W, a.Type, a.RowBytes, o, i);
        a.Y[index] = a.HasBias != 0 ? acc + a.Bias[o] : acc;
    }

    public static void MatVec(MatMulArgs a)
    {
        var shared = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        int o = Grid.IdxX;
        float acc = 0;
        for (int i = Group.IdxX; i < a.InDim; i += Group.DimX)
            acc += a.X[i] * DeviceMath.ReadWeight(a.W, a.Type, a.RowBytes, o, i);
        float s = DeviceMath.GroupSum(acc, shared);
        if (Group.IdxX == 0) a.Y[o] = a.HasBias != 0 ? s + a.Bias[o] : s;
    }

    /// <summary>Whether <see cref="WarpRows"/> takes a weight of this type and row (its rows are whole 16-byte vectors).</summary>
    public static bool WarpRowsSupports(WeightType type, int inDim) =>
        type == WeightType.F32 ? inDim % 4 == 0 : (type is WeightType.F16 or WeightType.BF16) && inDim % 8 == 0;

    public static void WarpRows(MatMulArgs a)
    {
        int warps = Group.DimX / Warp.WarpSize, lane = Warp.LaneIdx;
        int o = Grid.IdxX * warps + Warp.WarpIdx;
        if (o >= a.OutDim) return;   // the whole warp leaves together
        var x = a.X.Cast<Vec4F>();
        long row = o * a.RowBytes / 16;
        float acc = 0;
        if (a.Type == (int)WeightType.F32)
        {
            var w = a.W.Cast<Vec4F>();
            for (int i = lane; i < a.InDim / 4; i += Warp.WarpSize)
            {
                var wv = w[row + i];
                var xv = x[i];
                acc += wv.X * xv.X + wv.Y * xv.Y + wv.Z * xv.Z + wv.W * xv.W;
            }
        }
        else
        {
            var w = a.W.Cast<Vec4U>();
            bool bf16 = a.Type == (int)WeightType.BF16;
            for (int i = lane; i < a.InDim / 8; i += Warp.WarpSize)
            {
                var wv = w[row + i];
                var x0 = x[2 * i];
                var x1 = x[2 * i + 1];
                acc += Lo(wv.A, bf16) * x0.X + Hi(wv.A, bf16) * x0.Y + Lo(wv.B, bf16) * x0.Z + Hi(wv.B, bf16) * x0.W
                     + Lo(wv.C, bf16) * x1.X + Hi(wv.C, bf16) * x1.Y + Lo(wv.D, bf16) * x1.Z + Hi(wv.D, bf16) * x1.W;
            }
        }
        acc = DeviceMath.WarpSum(acc);
        if (lane == 0) a.Y[o] = a.HasBias != 0 ? acc + a.Bias[o] : acc;
    }

    /// <summary>The element in the low half of a word of two F16 or BF16 values.</summary>
    private static float Lo(uint word, bool bf16) => bf16 ? Interop.IntAsFloat(word << 16) : Interop.IntAsFloat((ushort)word);
    /// <summary>The element in the high half.</summary>
    private static float Hi(uint word, bool bf16) => bf16 ? Interop.IntAsFloat(word & 0xFFFF0000u) : Interop.IntAsFloat((ushort)(word >> 16));

    public static void Tiled(MatMulArgs a)
    {
        var xs = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        var ws = SharedMemory.Allocate<float>(Tile * (Tile + 1));
        int tilesO = (a.OutDim + Tile - 1) / Tile;
        int tr = Grid.IdxX / tilesO, to = Grid.IdxX % tilesO;
        int tx = Group.IdxX % Tile, ty = Group.IdxX / Tile;
        float acc = 0;
        for (int k0 = 0; k0 < a.InDim; k0 += Tile)
        {
            int col = k0 + tx;
            int xr = tr * Tile + ty, wr = to * Tile + ty;
            xs[ty * (Tile + 1) + tx] = xr < a.Rows && col < a.InDim ? a.X[(long)xr * a.InDim + col] : 0f;
            ws[ty * (Tile + 1) + tx] = wr < a.OutDim && col < a.InDim ? DeviceMath.ReadWeight(a.W, a.Type, a.RowBytes, wr, col) : 0f;
            Group.Barrier();
            for (int kk = 0; kk < Tile; kk++) acc += xs[ty * (Tile + 1) + kk] * ws[tx * (Tile + 1) + kk];
            Group.Barrier();
        }
        int r = tr * Tile + ty, o = to * Tile + tx;
        if (r < a.Rows && o < a.OutDim) a.Y[(long)r * a.OutDim + o] = a.HasBias != 0 ? acc + a.Bias[o] : acc;
    }
}

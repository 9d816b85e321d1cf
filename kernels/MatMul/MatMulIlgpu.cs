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

/// <summary>
/// ILGPU twin of the MatMul family (weights converted element by element inside the kernel, never widened in memory).
/// v1 MatVec (decode): one group of 128 threads per output row; threads stride along the row, a shared-memory tree
///    reduction sums them. Coalesced weight reads; x is re-read by every group (it stays in cache).
/// v2 Tiled (prefill): 16x16 output tiles per group of 256 threads; 16x16 tiles of x and W are staged in shared
///    memory (padded to 17 columns against bank conflicts) so each weight is read once per 16 rows of x.
/// v3 is <see cref="WarpMatVecIlgpu"/> (decode: a warp per row, 128-bit loads, shuffles, fused epilogues).
/// </summary>
internal static class MatMulIlgpu
{
    public const int Tile = 16;

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

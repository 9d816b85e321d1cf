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
/// v2 (prefill, retired) staged 16x16 tiles of x and W in shared memory, one output per thread.
/// v3 is <see cref="WarpMatVecIlgpu"/> (decode: a warp per row, 128-bit loads, shuffles, fused epilogues).
/// v4 <see cref="Tiled"/> (prefill): 64x64 blocks, 4x4 outputs per thread in registers, double-buffered k-major tiles.
/// </summary>
internal static class MatMulIlgpu
{
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

    /// <summary>
    /// v4 (prefill), a register-tiled GEMM: a group of 256 threads computes a 64x64 block of y, each thread a 4x4 sub-block
    /// held in registers (16 FMAs per pair of 128-bit shared-memory reads instead of 1 per 2 reads). Per step of 16 along
    /// the input, the group stages x's (64, 16) and W's (64, 16) tiles k-major in shared memory; the stages are double
    /// buffered (the next tile's global loads are in flight while this one is multiplied; one barrier per step). x and F32
    /// weights come in as 128-bit loads where the input width allows; other formats are converted element by element.
    /// </summary>
    public static void Tiled(MatMulArgs a)
    {
        const int stride = Block + 4;   // padded rows of the k-major tiles (16-byte aligned, fewer bank conflicts)
        var xs = SharedMemory.Allocate<float>(2 * Depth * stride);
        var ws = SharedMemory.Allocate<float>(2 * Depth * stride);
        int blocksO = (a.OutDim + Block - 1) / Block;
        int r0 = Grid.IdxX / blocksO * Block, o0 = Grid.IdxX % blocksO * Block;
        int t = Group.IdxX;
        int tx = t % 16, ty = t / 16;            // this thread's outputs: rows r0 + 4ty.., columns o0 + 4tx..
        int lr = t / 4, lk = t % 4 * 4;          // this thread's loads: row lr of each tile, its k lk..lk+3
        bool vec = a.InDim % 4 == 0;
        var c0 = new Vec4F(); var c1 = new Vec4F(); var c2 = new Vec4F(); var c3 = new Vec4F();
        var xv = LoadX(a, r0 + lr, lk, vec);
        var wv = LoadW(a, o0 + lr, lk, vec);
        StoreTile(xs, 0, lr, lk, xv);
        StoreTile(ws, 0, lr, lk, wv);
        Group.Barrier();
        int stage = 0;
        for (int k0 = 0; k0 < a.InDim; k0 += Depth)
        {
            bool more = k0 + Depth < a.InDim;
            if (more)
            {
                xv = LoadX(a, r0 + lr, k0 + Depth + lk, vec);
                wv = LoadW(a, o0 + lr, k0 + Depth + lk, vec);
            }
            var xt = xs.Cast<Vec4F>();
            var wt = ws.Cast<Vec4F>();
            int at = stage * Depth * stride / 4;
            for (int kk = 0; kk < Depth; kk++)
            {
                var x4 = xt[at + kk * stride / 4 + ty];
                var w4 = wt[at + kk * stride / 4 + tx];
                c0 = Fma(c0, x4.X, w4); c1 = Fma(c1, x4.Y, w4); c2 = Fma(c2, x4.Z, w4); c3 = Fma(c3, x4.W, w4);
            }
            if (more)
            {
                StoreTile(xs, stage ^ 1, lr, lk, xv);
                StoreTile(ws, stage ^ 1, lr, lk, wv);
            }
            Group.Barrier();
            stage ^= 1;
        }
        int r = r0 + 4 * ty, o = o0 + 4 * tx;
        StoreRow(a, r, o, c0); StoreRow(a, r + 1, o, c1); StoreRow(a, r + 2, o, c2); StoreRow(a, r + 3, o, c3);
    }

    /// <summary>Rows and columns of y per group of <see cref="Tiled"/>, its step along the input, its threads (16 x 16, 4x4 outputs each).</summary>
    public const int Block = 64, Depth = 16, Threads = 256;

    private static Vec4F Fma(Vec4F c, float x, Vec4F w) => new() { X = c.X + x * w.X, Y = c.Y + x * w.Y, Z = c.Z + x * w.Z, W = c.W + x * w.W };

    /// <summary>x[row, k..k+3], zero outside x.</summary>
    private static Vec4F LoadX(MatMulArgs a, int row, int k, bool vec)
    {
        if (row >= a.Rows) return new Vec4F();
        long at = (long)row * a.InDim + k;
        if (vec && k < a.InDim) return a.X.Cast<Vec4F>()[at / 4];
        return new Vec4F
        {
            X = k < a.InDim ? a.X[at] : 0f, Y = k + 1 < a.InDim ? a.X[at + 1] : 0f,
            Z = k + 2 < a.InDim ? a.X[at + 2] : 0f, W = k + 3 < a.InDim ? a.X[at + 3] : 0f,
        };
    }

    /// <summary>W[row, k..k+3] as floats, zero outside W. With a width of whole 4s (k a multiple of 4): F32 as one 128-bit
    /// load, F16/BF16 as one 64-bit load, Q8_0/Q4_0 (the repacked device layout) as one 32-bit load of quants and the
    /// block's scale; other formats element by element.</summary>
    private static Vec4F LoadW(MatMulArgs a, int row, int k, bool vec)
    {
        if (row >= a.OutDim) return new Vec4F();
        long rowStart = row * a.RowBytes;
        if (vec && k < a.InDim)
        {
            if (a.Type == (int)WeightType.F32) return a.W.Cast<Vec4F>()[(rowStart / 4 + k) / 4];
            if (a.Type == (int)WeightType.F16 || a.Type == (int)WeightType.BF16)
            {
                bool bf16 = a.Type == (int)WeightType.BF16;
                var h = a.W.Cast<Vec2U>()[(rowStart / 2 + k) / 4];
                return new Vec4F { X = WarpMatVecIlgpu.Lo(h.A, bf16), Y = WarpMatVecIlgpu.Hi(h.A, bf16), Z = WarpMatVecIlgpu.Lo(h.B, bf16), W = WarpMatVecIlgpu.Hi(h.B, bf16) };
            }
            if (a.Type == (int)WeightType.Q8_0 || a.Type == (int)WeightType.Q4_0)
            {
                bool q8 = a.Type == (int)WeightType.Q8_0;
                long quants = rowStart + DeviceWeightLayout.ScaleBytes(a.InDim / 32);
                float d = Interop.IntAsFloat(a.W.Cast<ushort>()[rowStart / 2 + k / 32]);
                if (q8)
                {
                    uint q = a.W.Cast<uint>()[(quants + k) / 4];
                    return new Vec4F { X = d * (sbyte)q, Y = d * (sbyte)(q >> 8), Z = d * (sbyte)(q >> 16), W = d * (sbyte)(q >> 24) };
                }
                uint n = a.W.Cast<uint>()[(quants + k / 32 * 16 + k % 16) / 4];
                int shift = k % 32 < 16 ? 0 : 4;   // byte j holds element j low, j + 16 high
                return new Vec4F
                {
                    X = d * ((int)((n >> shift) & 15) - 8), Y = d * ((int)((n >> (8 + shift)) & 15) - 8),
                    Z = d * ((int)((n >> (16 + shift)) & 15) - 8), W = d * ((int)((n >> (24 + shift)) & 15) - 8),
                };
            }
        }
        return new Vec4F
        {
            X = k < a.InDim ? DeviceMath.ReadWeight(a.W, a.Type, a.RowBytes, row, k) : 0f,
            Y = k + 1 < a.InDim ? DeviceMath.ReadWeight(a.W, a.Type, a.RowBytes, row, k + 1) : 0f,
            Z = k + 2 < a.InDim ? DeviceMath.ReadWeight(a.W, a.Type, a.RowBytes, row, k + 2) : 0f,
            W = k + 3 < a.InDim ? DeviceMath.ReadWeight(a.W, a.Type, a.RowBytes, row, k + 3) : 0f,
        };
    }

    /// <summary>A thread's 4 values of row lr, k lk.. into stage's k-major tile (element [k][row]).</summary>
    private static void StoreTile(ArrayView<float> tile, int stage, int lr, int lk, Vec4F v)
    {
        int at = stage * Depth * (Block + 4) + lk * (Block + 4) + lr;
        tile[at] = v.X;
        tile[at + Block + 4] = v.Y;
        tile[at + 2 * (Block + 4)] = v.Z;
        tile[at + 3 * (Block + 4)] = v.W;
    }

    /// <summary>y[row, o..o+3] = c + bias, within y.</summary>
    private static void StoreRow(MatMulArgs a, int row, int o, Vec4F c)
    {
        if (row >= a.Rows) return;
        long at = (long)row * a.OutDim + o;
        if (o < a.OutDim) a.Y[at] = a.HasBias != 0 ? c.X + a.Bias[o] : c.X;
        if (o + 1 < a.OutDim) a.Y[at + 1] = a.HasBias != 0 ? c.Y + a.Bias[o + 1] : c.Y;
        if (o + 2 < a.OutDim) a.Y[at + 2] = a.HasBias != 0 ? c.Z + a.Bias[o + 2] : c.Z;
        if (o + 3 < a.OutDim) a.Y[at + 3] = a.HasBias != 0 ? c.W + a.Bias[o + 3] : c.W;
    }
}

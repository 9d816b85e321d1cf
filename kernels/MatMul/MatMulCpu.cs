using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// CPU twin of the MatMul family: y (rows, outDim) = x (rows, inDim) · Wᵀ (+ bias), W stored (outDim, inDim)
/// in any <see cref="WeightType"/>, converted inside the kernel (never widened in memory as a whole).
/// v1 decode (rows &lt;= <see cref="MatVecCpu.MaxRows"/>: one token, or one token of each of a batch of sequences):
///    <see cref="MatVecCpu"/> (bands of W rows streamed once; Q8_0/Q4_0 in integers; each row's result independent of the others).
/// v2 prefill (more rows): tasks own a block of 64 W rows, widened to F32 once into per-thread scratch; chunks of 32
///    x rows (L2) meet groups of 4 W rows (L1) in a 4x4 register-blocked micro-kernel (<see cref="MicroKernel"/>).
/// </summary>
internal static unsafe class MatMulCpu
{
    private const int PrefillBlockRows = 64;
    private const int PrefillXRows = 32;
    private const int PrefillK = 1024;

    [ThreadStatic] private static float* t_scratch;
    [ThreadStatic] private static int t_scratchFloats;

    private struct Job
    {
        public float* X;
        public int Rows;
        public int InDim;
        public byte* W;
        public long WRowBytes;
        public WeightType Type;
        public int OutDim;
        public float* Bias;
        public float* Y;
        public int RowsPerTask;
        public byte* Packed;          // Q8_0/Q4_0 in PackedQuant layout, or null
        public int HalfShift;
    }

    /// <param name="packed">Q8_0/Q4_0: W in <see cref="PackedQuant"/> layout (decode reads only it, prefill widens from it);
    /// null: decode packs per call (tests, one-off calls), prefill widens ggml blocks</param>
    /// <param name="halfShift">F16: w holds the weights times 2^halfShift (<see cref="HalfPrescale"/>)</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatMul(WorkerPool pool, float* x, int rows, int inDim, byte* w, WeightType type, int outDim, float* bias, float* y,
        byte* packed = null, int halfShift = 0)
    {
        if (rows <= MatVecCpu.MaxRows)
        {
            byte* own = type.HasPackedCpuDecode() && packed == null ? PackedQuant.Pack(w, type, outDim, inDim) : null;
            try
            {
                var part = new MatVecPart { W = w, Type = type, OutDim = outDim, Bias = bias, Y = y, Packed = own != null ? own : packed, HalfShift = halfShift };
                MatVecCpu.MatVec(pool, x, inDim, new ReadOnlySpan<MatVecPart>(ref part), rows);
            }
            finally
            {
                if (own != null) PackedQuant.Free(own);
            }
            return;
        }
        var job = new Job
        {
            X = x, Rows = rows, InDim = inDim, W = w, WRowBytes = type.RowBytes(inDim), Type = type,
            OutDim = outDim, Bias = bias, Y = y, RowsPerTask = PrefillBlockRows,
            Packed = type.HasPackedCpuDecode() ? packed : null,
            HalfShift = halfShift,
        };
        pool.For((outDim + PrefillBlockRows - 1) / PrefillBlockRows, &PrefillTask, &job, (long)rows * outDim * inDim);
    }

    /// <summary>Tests set this: every <see cref="Scratch"/> request comes back filled with NaN, so a kernel that reads
    /// scratch it has not written gives a NaN every time, not garbage now and then.</summary>
    internal static volatile bool PoisonScratch;

    /// <summary>Per-thread scratch, 64-byte aligned so Vector512 loads never split cache lines (grows, never shrinks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float* Scratch(int floats)
    {
        float* s = ScratchBuffer(floats);
        if (PoisonScratch) new Span<float>(s, t_scratchFloats).Fill(float.NaN);
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float* ScratchBuffer(int floats)
    {
        if (t_scratchFloats < floats)
        {
            if (t_scratch != null) System.Runtime.InteropServices.NativeMemory.AlignedFree(t_scratch);
            t_scratchFloats = Math.Max(floats, 4096);
            t_scratch = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)t_scratchFloats * 4, 64);
        }
        return t_scratch;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PrefillTask(void* ctx, int task)
    {
        ref Job j = ref Unsafe.AsRef<Job>(ctx);
        int o0 = task * j.RowsPerTask, nO = Math.Min(j.OutDim, o0 + j.RowsPerTask) - o0;
        int n = j.InDim;
        // Widened (or for F32 copied: mapped safetensors data is only 4-byte aligned) into aligned scratch, once
        // per block, then reused by every x row.
        float* wf = Scratch(nO * n);
        if (j.Packed != null)
            for (int r = 0; r < nO; r++) PackedQuant.RowToF32(j.Packed, j.Type, n, o0 + r, wf + r * n);
        else
            for (int r = 0; r < nO; r++) RowConvert.ToF32(j.W + (o0 + r) * j.WRowBytes, j.Type, n, wf + r * n);
        if (j.HalfShift != 0)   // exact: a power of two
            TensorPrimitives.Multiply(new ReadOnlySpan<float>(wf, nO * n), HalfPrescale.Unscale(j.HalfShift), new Span<float>(wf, nO * n));
        int outDim = j.OutDim;
        // Cache blocking: slices of PrefillK elements of the rows (a group of 4 weight rows' slice stays in L1 while the x
        // rows' slices stream from L2), in which a chunk of 32 x rows meets each group of 4 weight rows.
        for (int k0 = 0; k0 < n; k0 += PrefillK)
        {
            int kn = Math.Min(PrefillK, n - k0);
            bool add = k0 > 0;
            for (int t0 = 0; t0 < j.Rows; t0 += PrefillXRows)
            {
                int t1 = Math.Min(j.Rows, t0 + PrefillXRows);
                for (int b = 0; b + 4 <= nO; b += 4)
                {
                    int t = t0;
                    for (; t + 4 <= t1; t += 4) MicroKernel.Tile4x4(j.X + (long)t * n + k0, wf + b * n + k0, kn, n, j.Y + (long)t * outDim + o0 + b, outDim, add);
                    for (; t < t1; t++) MicroKernel.Tile1x4(j.X + (long)t * n + k0, wf + b * n + k0, kn, n, j.Y + (long)t * outDim + o0 + b, add);
                }
            }
        }
        for (int b = nO & ~3; b < nO; b++)
            for (int t = 0; t < j.Rows; t++)
                j.Y[(long)t * outDim + o0 + b] = TensorPrimitives.Dot(new ReadOnlySpan<float>(j.X + (long)t * n, n), new ReadOnlySpan<float>(wf + b * n, n));
        if (j.Bias != null)
            for (int t = 0; t < j.Rows; t++)
                for (int b = 0; b < nO; b++) j.Y[(long)t * outDim + o0 + b] += j.Bias[o0 + b];
    }
}

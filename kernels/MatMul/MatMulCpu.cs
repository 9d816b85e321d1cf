using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// CPU twin of the MatMul family: y (rows, outDim) = x (rows, inDim) · Wᵀ (+ bias), W stored (outDim, inDim)
/// in any <see cref="WeightType"/>, converted inside the kernel (never widened in memory as a whole).
/// v1 decode (rows == 1): <see cref="MatVecCpu"/> (bands of W rows streamed once; Q8_0/Q4_0 in integers).
/// v2 prefill (rows > 1): tasks own a block of 64 W rows, widened to F32 once into per-thread scratch; chunks of 32
///    x rows (L2) meet groups of 4 W rows (L1) in a 4x4 register-blocked micro-kernel (16 Vector512 accumulators).
/// </summary>
public static unsafe class MatMulCpu
{
    private const int PrefillBlockRows = 64;
    private const int PrefillXRows = 32;

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
        public long PackedRowBytes;
    }

    /// <param name="packed">Q8_0/Q4_0: W in <see cref="PackedQuant"/> layout (decode reads only it, prefill widens from it);
    /// null: decode packs per call (tests, one-off calls), prefill widens ggml blocks</param>
    public static void MatMul(WorkerPool pool, float* x, int rows, int inDim, byte* w, WeightType type, int outDim, float* bias, float* y,
        byte* packed = null)
    {
        if (rows == 1)
        {
            byte* own = type.HasPackedCpuDecode() && packed == null ? PackedQuant.Pack(w, type, outDim, inDim) : null;
            try
            {
                var part = new MatVecPart { W = w, Type = type, OutDim = outDim, Bias = bias, Y = y, Packed = own != null ? own : packed };
                MatVecCpu.MatVec(pool, x, inDim, new ReadOnlySpan<MatVecPart>(ref part));
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
            Packed = type.HasPackedCpuDecode() ? packed : null, PackedRowBytes = type.HasPackedCpuDecode() ? PackedQuant.RowBytes(type, inDim) : 0,
        };
        pool.For((outDim + PrefillBlockRows - 1) / PrefillBlockRows, &PrefillTask, &job, (long)rows * outDim * inDim);
    }

    /// <summary>Per-thread scratch, 64-byte aligned so Vector512 loads never split cache lines (grows, never shrinks).</summary>
    internal static float* Scratch(int floats)
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
            for (int r = 0; r < nO; r++) PackedQuant.ToF32(j.Packed + (o0 + r) * j.PackedRowBytes, j.Type, n, wf + r * n);
        else
            for (int r = 0; r < nO; r++) RowConvert.ToF32(j.W + (o0 + r) * j.WRowBytes, j.Type, n, wf + r * n);
        int outDim = j.OutDim;
        // Cache blocking: a chunk of 32 x rows (L2) meets each group of 4 weight rows (L1) of this task's block.
        for (int t0 = 0; t0 < j.Rows; t0 += PrefillXRows)
        {
            int t1 = Math.Min(j.Rows, t0 + PrefillXRows);
            int b = 0;
            for (; b + 4 <= nO; b += 4)
            {
                int t = t0;
                for (; t + 4 <= t1; t += 4) Dot4x4(j.X + (long)t * n, wf + b * n, n, j.Y + (long)t * outDim + o0 + b, outDim);
                for (; t < t1; t++) Dot1x4(j.X + (long)t * n, wf + b * n, n, n, j.Y + (long)t * outDim + o0 + b);
            }
            for (; b < nO; b++)
                for (int t = t0; t < t1; t++)
                    j.Y[(long)t * outDim + o0 + b] = TensorPrimitives.Dot(new ReadOnlySpan<float>(j.X + (long)t * n, n), new ReadOnlySpan<float>(wf + b * n, n));
        }
        if (j.Bias != null)
            for (int t = 0; t < j.Rows; t++)
                for (int b = 0; b < nO; b++) j.Y[(long)t * outDim + o0 + b] += j.Bias[o0 + b];
    }

    /// <summary>dot(w, x) for n a multiple of 64.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float DotRow64(float* w, float* x, int n)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (int i = 0; i < n; i += 64)
        {
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 16), Vector512.Load(x + i + 16), a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 32), Vector512.Load(x + i + 32), a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 48), Vector512.Load(x + i + 48), a3);
        }
        return VectorMath.Sum((a0 + a1) + (a2 + a3));
    }

    /// <summary>dot(x, w) for a row of 16-bit floats (fp16 or bf16), n a multiple of 32, x deinterleaved by
    /// <see cref="HalfVector.Deinterleave32"/>: 32 weights per load, widened without shuffles.</summary>
    internal static float DotHalfRowPaired(float* xd, ushort* w, int n, bool bf16) =>
        bf16 ? DotPaired<Bf16Pairs>(xd, w, n) : DotPaired<Fp16Pairs>(xd, w, n);

    /// <summary>Widens 16-bit floats: 32 as (even, odd) f32 vectors scaled by 1 / <see cref="Scale"/>, or 16 in order, exact.</summary>
    private interface IPairedLoad
    {
        static abstract (Vector512<float> Even, Vector512<float> Odd) Load(ushort* p);
        static abstract Vector512<float> Load16(ushort* p);
        static abstract float Scale { get; }
    }

    private readonly struct Fp16Pairs : IPairedLoad
    {
        public static (Vector512<float> Even, Vector512<float> Odd) Load(ushort* p) => HalfVector.LoadHalf32PairedUnscaled(p);
        public static Vector512<float> Load16(ushort* p) => HalfVector.LoadHalf16(p);
        public static float Scale => HalfVector.HalfScale;
    }

    private readonly struct Bf16Pairs : IPairedLoad
    {
        public static (Vector512<float> Even, Vector512<float> Odd) Load(ushort* p) => HalfVector.LoadBf16x32Paired(p);
        public static Vector512<float> Load16(ushort* p) => HalfVector.LoadBf16x16(p);
        public static float Scale => 1f;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotPaired<TLoad>(float* xd, ushort* w, int n) where TLoad : IPairedLoad
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 64 <= n; i += 64)
        {
            var (e0, o0) = TLoad.Load(w + i);
            var (e1, o1) = TLoad.Load(w + i + 32);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(xd + i), e0, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(xd + i + 16), o0, a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Load(xd + i + 32), e1, a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Load(xd + i + 48), o1, a3);
        }
        if (i < n)
        {
            var (e0, o0) = TLoad.Load(w + i);
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(xd + i), e0, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(xd + i + 16), o0, a1);
        }
        return VectorMath.Sum((a0 + a1) + (a2 + a3)) * TLoad.Scale;
    }

    /// <summary>dot(x, w) for a row of 16-bit floats (fp16 or bf16), n a multiple of 16 (the path when n is not a
    /// multiple of 32).</summary>
    internal static float DotHalfRow(float* x, ushort* w, int n, bool bf16) =>
        bf16 ? DotHalf<Bf16Pairs>(x, w, n) : DotHalf<Fp16Pairs>(x, w, n);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotHalf<TLoad>(float* x, ushort* w, int n) where TLoad : IPairedLoad
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 64 <= n; i += 64)
        {
            a0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i), TLoad.Load16(w + i), a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i + 16), TLoad.Load16(w + i + 16), a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i + 32), TLoad.Load16(w + i + 32), a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i + 48), TLoad.Load16(w + i + 48), a3);
        }
        for (; i < n; i += 16) a0 = Vector512.FusedMultiplyAdd(Vector512.Load(x + i), TLoad.Load16(w + i), a0);
        return VectorMath.Sum((a0 + a1) + (a2 + a3));
    }

    /// <summary>y[0..4) = dot(x, w_r) for 4 rows of w (row stride wStride floats).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Dot1x4(float* x, float* w, int n, int wStride, float* y)
    {
        float* w0 = w, w1 = w + wStride, w2 = w + 2 * wStride, w3 = w + 3 * wStride;
        int i = 0;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        if (Vector512.IsHardwareAccelerated && n >= 16)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 16 <= n; i += 16)
            {
                var xv = Vector512.Load(x + i);
                a0 = Vector512.FusedMultiplyAdd(xv, Vector512.Load(w0 + i), a0);
                a1 = Vector512.FusedMultiplyAdd(xv, Vector512.Load(w1 + i), a1);
                a2 = Vector512.FusedMultiplyAdd(xv, Vector512.Load(w2 + i), a2);
                a3 = Vector512.FusedMultiplyAdd(xv, Vector512.Load(w3 + i), a3);
            }
            s0 = VectorMath.Sum(a0); s1 = VectorMath.Sum(a1); s2 = VectorMath.Sum(a2); s3 = VectorMath.Sum(a3);
        }
        else if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 8 <= n; i += 8)
            {
                var xv = Vector256.Load(x + i);
                a0 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(w0 + i), a0);
                a1 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(w1 + i), a1);
                a2 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(w2 + i), a2);
                a3 = Vector256.FusedMultiplyAdd(xv, Vector256.Load(w3 + i), a3);
            }
            s0 = Vector256.Sum(a0); s1 = Vector256.Sum(a1); s2 = Vector256.Sum(a2); s3 = Vector256.Sum(a3);
        }
        for (; i < n; i++)
        {
            float xv = x[i];
            s0 += xv * w0[i]; s1 += xv * w1[i]; s2 += xv * w2[i]; s3 += xv * w3[i];
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    /// <summary>y[a*yStride + b] = dot(x_a, w_b) for 4 rows of x and 4 rows of w, both with row stride n.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Dot4x4(float* x, float* w, int n, float* y, int yStride)
    {
        if (!Vector512.IsHardwareAccelerated || n < 16)
        {
            for (int a = 0; a < 4; a++) Dot1x4(x + a * n, w, n, n, y + a * yStride);
            return;
        }
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        float* x0 = x, x1 = x + n, x2 = x + 2 * n, x3 = x + 3 * n;
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n;
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var b0 = Vector512.Load(w0 + i); var b1 = Vector512.Load(w1 + i);
            var b2 = Vector512.Load(w2 + i); var b3 = Vector512.Load(w3 + i);
            var a = Vector512.Load(x0 + i);
            c00 = Vector512.FusedMultiplyAdd(a, b0, c00); c01 = Vector512.FusedMultiplyAdd(a, b1, c01);
            c02 = Vector512.FusedMultiplyAdd(a, b2, c02); c03 = Vector512.FusedMultiplyAdd(a, b3, c03);
            a = Vector512.Load(x1 + i);
            c10 = Vector512.FusedMultiplyAdd(a, b0, c10); c11 = Vector512.FusedMultiplyAdd(a, b1, c11);
            c12 = Vector512.FusedMultiplyAdd(a, b2, c12); c13 = Vector512.FusedMultiplyAdd(a, b3, c13);
            a = Vector512.Load(x2 + i);
            c20 = Vector512.FusedMultiplyAdd(a, b0, c20); c21 = Vector512.FusedMultiplyAdd(a, b1, c21);
            c22 = Vector512.FusedMultiplyAdd(a, b2, c22); c23 = Vector512.FusedMultiplyAdd(a, b3, c23);
            a = Vector512.Load(x3 + i);
            c30 = Vector512.FusedMultiplyAdd(a, b0, c30); c31 = Vector512.FusedMultiplyAdd(a, b1, c31);
            c32 = Vector512.FusedMultiplyAdd(a, b2, c32); c33 = Vector512.FusedMultiplyAdd(a, b3, c33);
        }
        float* r0 = y, r1 = y + yStride, r2 = y + 2 * yStride, r3 = y + 3 * yStride;
        r0[0] = VectorMath.Sum(c00); r0[1] = VectorMath.Sum(c01); r0[2] = VectorMath.Sum(c02); r0[3] = VectorMath.Sum(c03);
        r1[0] = VectorMath.Sum(c10); r1[1] = VectorMath.Sum(c11); r1[2] = VectorMath.Sum(c12); r1[3] = VectorMath.Sum(c13);
        r2[0] = VectorMath.Sum(c20); r2[1] = VectorMath.Sum(c21); r2[2] = VectorMath.Sum(c22); r2[3] = VectorMath.Sum(c23);
        r3[0] = VectorMath.Sum(c30); r3[1] = VectorMath.Sum(c31); r3[2] = VectorMath.Sum(c32); r3[3] = VectorMath.Sum(c33);
        for (; i < n; i++)
            for (int a = 0; a < 4; a++)
            {
                float xv = x[a * n + i];
                for (int b = 0; b < 4; b++) y[a * yStride + b] += xv * w[b * n + i];
            }
    }
}

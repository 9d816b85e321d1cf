using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Simd;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// Prefill's register-blocked micro-kernel: y[a·yStride + b] = dot(x_a, w_b) (or += with add: a later slice of the rows)
/// for 4 rows of x and 4 rows of w, n elements of rows `stride` apart, one template over the SIMD width. With 32 vector registers (AVX-512, NEON) the 4x4 block keeps 16 accumulators;
/// with 16 (AVX2, SSE) it runs as two 2x4 halves (8 accumulators + 4 w loads + 1 x, no spills).
/// </summary>
internal static unsafe class MicroKernel
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile4x4(float* x, float* w, int n, int stride, float* y, int yStride, bool add)
    {
        switch (SimdLevel.Current)
        {
            case SimdLevel.Width.V512: Tile4x4<Simd512, Vector512<float>>(x, w, n, stride, y, yStride, add); break;
            case SimdLevel.Width.V256: Tile4x4<Simd256, Vector256<float>>(x, w, n, stride, y, yStride, add); break;
            case SimdLevel.Width.V128: Tile4x4<Simd128, Vector128<float>>(x, w, n, stride, y, yStride, add); break;
            default: for (int a = 0; a < 4; a++) Scalar(x + a * stride, w, n, stride, 4, y + a * yStride, add); break;
        }
    }

    /// <summary>y[0..4) = dot(x, w_b) for 4 rows of w.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile1x4(float* x, float* w, int n, int stride, float* y, bool add)
    {
        switch (SimdLevel.Current)
        {
            case SimdLevel.Width.V512: Rows<Simd512, Vector512<float>>(x, w, n, stride, y, 0, 1, add); break;
            case SimdLevel.Width.V256: Rows<Simd256, Vector256<float>>(x, w, n, stride, y, 0, 1, add); break;
            case SimdLevel.Width.V128: Rows<Simd128, Vector128<float>>(x, w, n, stride, y, 0, 1, add); break;
            default: Scalar(x, w, n, stride, 4, y, add); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile4x4<S, V>(float* x, float* w, int n, int stride, float* y, int yStride, bool add) where S : ISimd<V> where V : struct
    {
        if (S.Registers >= 32)
        {
            Block4x4<S, V>(x, w, n, stride, y, yStride, add);
            return;
        }
        Rows<S, V>(x, w, n, stride, y, yStride, 2, add);
        Rows<S, V>(x + 2 * stride, w, n, stride, y + 2 * yStride, yStride, 2, add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Block4x4<S, V>(float* x, float* w, int n, int stride, float* y, int yStride, bool add) where S : ISimd<V> where V : struct
    {
        int F = S.Floats;
        V c00 = S.Zero, c01 = S.Zero, c02 = S.Zero, c03 = S.Zero;
        V c10 = S.Zero, c11 = S.Zero, c12 = S.Zero, c13 = S.Zero;
        V c20 = S.Zero, c21 = S.Zero, c22 = S.Zero, c23 = S.Zero;
        V c30 = S.Zero, c31 = S.Zero, c32 = S.Zero, c33 = S.Zero;
        float* x0 = x, x1 = x + stride, x2 = x + 2 * stride, x3 = x + 3 * stride;
        float* w0 = w, w1 = w + stride, w2 = w + 2 * stride, w3 = w + 3 * stride;
        int i = 0;
        for (; i + F <= n; i += F)
        {
            V b0 = S.Load(w0 + i), b1 = S.Load(w1 + i), b2 = S.Load(w2 + i), b3 = S.Load(w3 + i);
            V a = S.Load(x0 + i);
            c00 = S.Fma(a, b0, c00); c01 = S.Fma(a, b1, c01); c02 = S.Fma(a, b2, c02); c03 = S.Fma(a, b3, c03);
            a = S.Load(x1 + i);
            c10 = S.Fma(a, b0, c10); c11 = S.Fma(a, b1, c11); c12 = S.Fma(a, b2, c12); c13 = S.Fma(a, b3, c13);
            a = S.Load(x2 + i);
            c20 = S.Fma(a, b0, c20); c21 = S.Fma(a, b1, c21); c22 = S.Fma(a, b2, c22); c23 = S.Fma(a, b3, c23);
            a = S.Load(x3 + i);
            c30 = S.Fma(a, b0, c30); c31 = S.Fma(a, b1, c31); c32 = S.Fma(a, b2, c32); c33 = S.Fma(a, b3, c33);
        }
        float* r0 = y, r1 = y + yStride, r2 = y + 2 * yStride, r3 = y + 3 * yStride;
        Put(r0, S.Sum(c00), S.Sum(c01), S.Sum(c02), S.Sum(c03), add);
        Put(r1, S.Sum(c10), S.Sum(c11), S.Sum(c12), S.Sum(c13), add);
        Put(r2, S.Sum(c20), S.Sum(c21), S.Sum(c22), S.Sum(c23), add);
        Put(r3, S.Sum(c30), S.Sum(c31), S.Sum(c32), S.Sum(c33), add);
        if (i < n) AddTail(x, w, n, stride, i, 4, y, yStride);
    }

    /// <summary>1 or 2 rows of x (<paramref name="xRows"/>, a JIT-time constant at each call) against 4 rows of w.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Rows<S, V>(float* x, float* w, int n, int stride, float* y, int yStride, int xRows, bool add) where S : ISimd<V> where V : struct
    {
        int F = S.Floats;
        V c00 = S.Zero, c01 = S.Zero, c02 = S.Zero, c03 = S.Zero;
        V c10 = S.Zero, c11 = S.Zero, c12 = S.Zero, c13 = S.Zero;
        float* x0 = x, x1 = x + stride;
        float* w0 = w, w1 = w + stride, w2 = w + 2 * stride, w3 = w + 3 * stride;
        int i = 0;
        for (; i + F <= n; i += F)
        {
            V b0 = S.Load(w0 + i), b1 = S.Load(w1 + i), b2 = S.Load(w2 + i), b3 = S.Load(w3 + i);
            V a = S.Load(x0 + i);
            c00 = S.Fma(a, b0, c00); c01 = S.Fma(a, b1, c01); c02 = S.Fma(a, b2, c02); c03 = S.Fma(a, b3, c03);
            if (xRows == 2)
            {
                a = S.Load(x1 + i);
                c10 = S.Fma(a, b0, c10); c11 = S.Fma(a, b1, c11); c12 = S.Fma(a, b2, c12); c13 = S.Fma(a, b3, c13);
            }
        }
        Put(y, S.Sum(c00), S.Sum(c01), S.Sum(c02), S.Sum(c03), add);
        if (xRows == 2) Put(y + yStride, S.Sum(c10), S.Sum(c11), S.Sum(c12), S.Sum(c13), add);
        if (i < n) AddTail(x, w, n, stride, i, xRows, y, yStride);
    }

    /// <summary>y[0..4) = (or +=) the four sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(float* y, float s0, float s1, float s2, float s3, bool add)
    {
        if (add) { y[0] += s0; y[1] += s1; y[2] += s2; y[3] += s3; }
        else { y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3; }
    }

    /// <summary>The last n − i elements (n not a multiple of the width), scalar.</summary>
    private static void AddTail(float* x, float* w, int n, int stride, int i, int xRows, float* y, int yStride)
    {
        for (int a = 0; a < xRows; a++)
            for (int b = 0; b < 4; b++)
            {
                float s = 0;
                for (int k = i; k < n; k++) s += x[a * stride + k] * w[b * stride + k];
                y[a * yStride + b] += s;
            }
    }

    private static void Scalar(float* x, float* w, int n, int stride, int wRows, float* y, bool add)
    {
        for (int b = 0; b < wRows; b++)
        {
            float s = 0;
            for (int k = 0; k < n; k++) s += x[k] * w[b * stride + k];
            y[b] = add ? y[b] + s : s;
        }
    }
}

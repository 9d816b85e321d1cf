using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Simd;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// Prefill's register-blocked micro-kernel: y[a·yStride + b] = dot(x_a, w_b) for 4 rows of x and 4 rows of w (row stride
/// n), one template over the SIMD width. With 32 vector registers (AVX-512, NEON) the 4x4 block keeps 16 accumulators;
/// with 16 (AVX2, SSE) it runs as two 2x4 halves (8 accumulators + 4 w loads + 1 x, no spills).
/// </summary>
internal static unsafe class MicroKernel
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile4x4(float* x, float* w, int n, float* y, int yStride)
    {
        switch (SimdLevel.Current)
        {
            case SimdLevel.Width.V512: Tile4x4<Simd512, Vector512<float>>(x, w, n, y, yStride); break;
            case SimdLevel.Width.V256: Tile4x4<Simd256, Vector256<float>>(x, w, n, y, yStride); break;
            case SimdLevel.Width.V128: Tile4x4<Simd128, Vector128<float>>(x, w, n, y, yStride); break;
            default: for (int a = 0; a < 4; a++) Scalar(x + a * n, w, n, 4, y + a * yStride); break;
        }
    }

    /// <summary>y[0..4) = dot(x, w_b) for 4 rows of w.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile1x4(float* x, float* w, int n, float* y)
    {
        switch (SimdLevel.Current)
        {
            case SimdLevel.Width.V512: Rows<Simd512, Vector512<float>>(x, w, n, y, 0, 1); break;
            case SimdLevel.Width.V256: Rows<Simd256, Vector256<float>>(x, w, n, y, 0, 1); break;
            case SimdLevel.Width.V128: Rows<Simd128, Vector128<float>>(x, w, n, y, 0, 1); break;
            default: Scalar(x, w, n, 4, y); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Tile4x4<S, V>(float* x, float* w, int n, float* y, int yStride) where S : ISimd<V> where V : struct
    {
        if (S.Registers >= 32)
        {
            Block4x4<S, V>(x, w, n, y, yStride);
            return;
        }
        Rows<S, V>(x, w, n, y, yStride, 2);
        Rows<S, V>(x + 2 * n, w, n, y + 2 * yStride, yStride, 2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Block4x4<S, V>(float* x, float* w, int n, float* y, int yStride) where S : ISimd<V> where V : struct
    {
        int F = S.Floats;
        V c00 = S.Zero, c01 = S.Zero, c02 = S.Zero, c03 = S.Zero;
        V c10 = S.Zero, c11 = S.Zero, c12 = S.Zero, c13 = S.Zero;
        V c20 = S.Zero, c21 = S.Zero, c22 = S.Zero, c23 = S.Zero;
        V c30 = S.Zero, c31 = S.Zero, c32 = S.Zero, c33 = S.Zero;
        float* x0 = x, x1 = x + n, x2 = x + 2 * n, x3 = x + 3 * n;
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n;
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
        r0[0] = S.Sum(c00); r0[1] = S.Sum(c01); r0[2] = S.Sum(c02); r0[3] = S.Sum(c03);
        r1[0] = S.Sum(c10); r1[1] = S.Sum(c11); r1[2] = S.Sum(c12); r1[3] = S.Sum(c13);
        r2[0] = S.Sum(c20); r2[1] = S.Sum(c21); r2[2] = S.Sum(c22); r2[3] = S.Sum(c23);
        r3[0] = S.Sum(c30); r3[1] = S.Sum(c31); r3[2] = S.Sum(c32); r3[3] = S.Sum(c33);
        if (i < n) AddTail(x, w, n, i, 4, y, yStride);
    }

    /// <summary>1 or 2 rows of x (<paramref name="xRows"/>, a JIT-time constant at each call) against 4 rows of w.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Rows<S, V>(float* x, float* w, int n, float* y, int yStride, int xRows) where S : ISimd<V> where V : struct
    {
        int F = S.Floats;
        V c00 = S.Zero, c01 = S.Zero, c02 = S.Zero, c03 = S.Zero;
        V c10 = S.Zero, c11 = S.Zero, c12 = S.Zero, c13 = S.Zero;
        float* x0 = x, x1 = x + n;
        float* w0 = w, w1 = w + n, w2 = w + 2 * n, w3 = w + 3 * n;
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
        y[0] = S.Sum(c00); y[1] = S.Sum(c01); y[2] = S.Sum(c02); y[3] = S.Sum(c03);
        if (xRows == 2)
        {
            float* r1 = y + yStride;
            r1[0] = S.Sum(c10); r1[1] = S.Sum(c11); r1[2] = S.Sum(c12); r1[3] = S.Sum(c13);
        }
        if (i < n) AddTail(x, w, n, i, xRows, y, yStride);
    }

    /// <summary>The last n − i elements (n not a multiple of the width), scalar.</summary>
    private static void AddTail(float* x, float* w, int n, int i, int xRows, float* y, int yStride)
    {
        for (int a = 0; a < xRows; a++)
            for (int b = 0; b < 4; b++)
            {
                float s = 0;
                for (int k = i; k < n; k++) s += x[a * n + k] * w[b * n + k];
                y[a * yStride + b] += s;
            }
    }

    private static void Scalar(float* x, float* w, int n, int wRows, float* y)
    {
        for (int b = 0; b < wRows; b++)
        {
            float s = 0;
            for (int k = 0; k < n; k++) s += x[k] * w[b * n + k];
            y[b] = s;
        }
    }
}

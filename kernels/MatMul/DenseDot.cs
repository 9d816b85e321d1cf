using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Simd;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// Dot products of one dense weight row (f32, fp16, bf16) with x: one loop template per shape, generic over the SIMD
/// width (<see cref="ISimd{V}"/>), four independent accumulators, a scalar tail for any length. The public entry points
/// take the widest width this process runs (<see cref="SimdLevel"/>).
/// </summary>
internal static unsafe class DenseDot
{
    /// <summary><see cref="F32x2{S, V}"/> at the current width (SIMD only: without it the caller goes one row at a time).</summary>
    public static void F32x2(float* w, float* x0, float* x1, int n, float* y0, float* y1)
    {
        switch (SimdLevel.Current)
        {
            case SimdLevel.Width.V512: F32x2<Simd512, Vector512<float>>(w, x0, x1, n, y0, y1); break;
            case SimdLevel.Width.V256: F32x2<Simd256, Vector256<float>>(w, x0, x1, n, y0, y1); break;
            case SimdLevel.Width.V128: F32x2<Simd128, Vector128<float>>(w, x0, x1, n, y0, y1); break;
            default: throw new PlatformNotSupportedException("F32x2 needs SIMD");
        }
    }

    /// <summary>Elements per paired 16-bit load at the current width (x's <see cref="Deinterleave"/> period).</summary>
    public static int PairElements { get; } = SimdLevel.Current switch
    {
        SimdLevel.Width.V512 => 32, SimdLevel.Width.V256 => 16, SimdLevel.Width.V128 => 8, _ => 0,
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float F32(float* w, float* x, int n) => SimdLevel.Current switch
    {
        SimdLevel.Width.V512 => F32<Simd512, Vector512<float>>(w, x, n),
        SimdLevel.Width.V256 => F32<Simd256, Vector256<float>>(w, x, n),
        SimdLevel.Width.V128 => F32<Simd128, Vector128<float>>(w, x, n),
        _ => F32Scalar(w, x, n),
    };

    /// <summary>
    /// 2^56, the scale of <see cref="Deinterleave"/>'s x: half of the 2^112 that the paired fp16 loads leave out, so that
    /// neither the products nor the partial sums of a paired dot product fall to f32 subnormals (2^-112·w·x would for
    /// |w·x| below 2^-14: each such product costs a microcode assist on x86 when the multiply and add are separate, as
    /// on the 128-bit path without FMA, and loses precision), while x·2^56 overflows only for |x| above 2^72.
    /// </summary>
    public const float XdScale = 72057594037927936f;

    /// <summary>x (n a multiple of <see cref="PairElements"/>) times <see cref="XdScale"/>, in the order <see cref="HalfPaired"/> reads.</summary>
    public static void Deinterleave(float* x, int n, float* dst)
    {
        switch (SimdLevel.Current)
        {
            case SimdLevel.Width.V512: Simd512.Deinterleave(x, n, dst, XdScale); break;
            case SimdLevel.Width.V256: Simd256.Deinterleave(x, n, dst, XdScale); break;
            case SimdLevel.Width.V128: Simd128.Deinterleave(x, n, dst, XdScale); break;
            default: throw new PlatformNotSupportedException("no SIMD width for paired 16-bit loads");
        }
    }

    /// <summary>dot(x, w) for a 16-bit row, n a multiple of <see cref="PairElements"/>, xd from <see cref="Deinterleave"/>:
    /// 2·Floats weights per load, widened without shuffles.</summary>
    public static float HalfPaired(float* xd, ushort* w, int n, bool bf16) => (SimdLevel.Current, bf16) switch
    {
        (SimdLevel.Width.V512, false) => Paired<Simd512, Vector512<float>, Fp16>(xd, w, n),
        (SimdLevel.Width.V512, true) => Paired<Simd512, Vector512<float>, Bf16>(xd, w, n),
        (SimdLevel.Width.V256, false) => Paired<Simd256, Vector256<float>, Fp16>(xd, w, n),
        (SimdLevel.Width.V256, true) => Paired<Simd256, Vector256<float>, Bf16>(xd, w, n),
        (SimdLevel.Width.V128, false) => Paired<Simd128, Vector128<float>, Fp16>(xd, w, n),
        (SimdLevel.Width.V128, true) => Paired<Simd128, Vector128<float>, Bf16>(xd, w, n),
        _ => throw new PlatformNotSupportedException("no SIMD width for paired 16-bit loads"),
    };

    /// <summary>dot(x, w) for a 16-bit row of any length, x in natural order.</summary>
    public static float Half(float* x, ushort* w, int n, bool bf16) => (SimdLevel.Current, bf16) switch
    {
        (SimdLevel.Width.V512, false) => Half<Simd512, Vector512<float>, Fp16>(x, w, n),
        (SimdLevel.Width.V512, true) => Half<Simd512, Vector512<float>, Bf16>(x, w, n),
        (SimdLevel.Width.V256, false) => Half<Simd256, Vector256<float>, Fp16>(x, w, n),
        (SimdLevel.Width.V256, true) => Half<Simd256, Vector256<float>, Bf16>(x, w, n),
        (SimdLevel.Width.V128, false) => Half<Simd128, Vector128<float>, Fp16>(x, w, n),
        (SimdLevel.Width.V128, true) => Half<Simd128, Vector128<float>, Bf16>(x, w, n),
        (_, false) => HalfScalar<Fp16>(x, w, n),
        (_, true) => HalfScalar<Bf16>(x, w, n),
    };

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float F32<S, V>(float* w, float* x, int n) where S : ISimd<V> where V : struct
    {
        int F = S.Floats, i = 0;
        V a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero;
        for (; i + 4 * F <= n; i += 4 * F)
        {
            a0 = S.Fma(S.Load(w + i), S.Load(x + i), a0);
            a1 = S.Fma(S.Load(w + i + F), S.Load(x + i + F), a1);
            a2 = S.Fma(S.Load(w + i + 2 * F), S.Load(x + i + 2 * F), a2);
            a3 = S.Fma(S.Load(w + i + 3 * F), S.Load(x + i + 3 * F), a3);
        }
        for (; i + F <= n; i += F) a0 = S.Fma(S.Load(w + i), S.Load(x + i), a0);
        float sum = S.Sum(S.Add(S.Add(a0, a1), S.Add(a2, a3)));
        for (; i < n; i++) sum += w[i] * x[i];
        return sum;
    }

    /// <summary><see cref="F32{S, V}"/> of one weight row against 2 x rows: each weight vector loaded once for both, each
    /// row's accumulators and sum those of the one-row kernel (bit for bit its result).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void F32x2<S, V>(float* w, float* x0, float* x1, int n, float* y0, float* y1) where S : ISimd<V> where V : struct
    {
        int F = S.Floats, i = 0;
        V a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero, b0 = S.Zero, b1 = S.Zero, b2 = S.Zero, b3 = S.Zero;
        for (; i + 4 * F <= n; i += 4 * F)
        {
            var w0 = S.Load(w + i); var w1 = S.Load(w + i + F);
            a0 = S.Fma(w0, S.Load(x0 + i), a0); b0 = S.Fma(w0, S.Load(x1 + i), b0);
            a1 = S.Fma(w1, S.Load(x0 + i + F), a1); b1 = S.Fma(w1, S.Load(x1 + i + F), b1);
            var w2 = S.Load(w + i + 2 * F); var w3 = S.Load(w + i + 3 * F);
            a2 = S.Fma(w2, S.Load(x0 + i + 2 * F), a2); b2 = S.Fma(w2, S.Load(x1 + i + 2 * F), b2);
            a3 = S.Fma(w3, S.Load(x0 + i + 3 * F), a3); b3 = S.Fma(w3, S.Load(x1 + i + 3 * F), b3);
        }
        for (; i + F <= n; i += F)
        {
            var wv = S.Load(w + i);
            a0 = S.Fma(wv, S.Load(x0 + i), a0); b0 = S.Fma(wv, S.Load(x1 + i), b0);
        }
        float s0 = S.Sum(S.Add(S.Add(a0, a1), S.Add(a2, a3))), s1 = S.Sum(S.Add(S.Add(b0, b1), S.Add(b2, b3)));
        for (; i < n; i++) { s0 += w[i] * x0[i]; s1 += w[i] * x1[i]; }
        *y0 = s0; *y1 = s1;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Paired<S, V, H>(float* xd, ushort* w, int n) where S : ISimd<V> where V : struct where H : IHalfFormat
    {
        int F = S.Floats, i = 0;
        V a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero;
        for (; i + 4 * F <= n; i += 4 * F)
        {
            var (e0, o0) = H.Pairs<S, V>(w + i);
            var (e1, o1) = H.Pairs<S, V>(w + i + 2 * F);
            a0 = S.Fma(S.Load(xd + i), e0, a0);
            a1 = S.Fma(S.Load(xd + i + F), o0, a1);
            a2 = S.Fma(S.Load(xd + i + 2 * F), e1, a2);
            a3 = S.Fma(S.Load(xd + i + 3 * F), o1, a3);
        }
        if (i < n)
        {
            var (e0, o0) = H.Pairs<S, V>(w + i);
            a0 = S.Fma(S.Load(xd + i), e0, a0);
            a1 = S.Fma(S.Load(xd + i + F), o0, a1);
        }
        return S.Sum(S.Add(S.Add(a0, a1), S.Add(a2, a3))) * H.PairScale;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Half<S, V, H>(float* x, ushort* w, int n) where S : ISimd<V> where V : struct where H : IHalfFormat
    {
        int F = S.Floats, i = 0;
        V a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero;
        for (; i + 4 * F <= n; i += 4 * F)
        {
            a0 = S.Fma(S.Load(x + i), H.Load<S, V>(w + i), a0);
            a1 = S.Fma(S.Load(x + i + F), H.Load<S, V>(w + i + F), a1);
            a2 = S.Fma(S.Load(x + i + 2 * F), H.Load<S, V>(w + i + 2 * F), a2);
            a3 = S.Fma(S.Load(x + i + 3 * F), H.Load<S, V>(w + i + 3 * F), a3);
        }
        for (; i + F <= n; i += F) a0 = S.Fma(S.Load(x + i), H.Load<S, V>(w + i), a0);
        float sum = S.Sum(S.Add(S.Add(a0, a1), S.Add(a2, a3)));
        for (; i < n; i++) sum += x[i] * H.ToSingle(w[i]);
        return sum;
    }

    private static float F32Scalar(float* w, float* x, int n)
    {
        float s = 0;
        for (int i = 0; i < n; i++) s += w[i] * x[i];
        return s;
    }

    private static float HalfScalar<H>(float* x, ushort* w, int n) where H : IHalfFormat
    {
        float s = 0;
        for (int i = 0; i < n; i++) s += x[i] * H.ToSingle(w[i]);
        return s;
    }

    /// <summary>Widens n 16-bit values to f32 at the current width (prefill's weight blocks).</summary>
    public static void Widen<H>(ushort* src, int n, float* dst) where H : IHalfFormat
    {
        switch (SimdLevel.Current)
        {
            case SimdLevel.Width.V512: Widen<Simd512, Vector512<float>, H>(src, n, dst); break;
            case SimdLevel.Width.V256: Widen<Simd256, Vector256<float>, H>(src, n, dst); break;
            case SimdLevel.Width.V128: Widen<Simd128, Vector128<float>, H>(src, n, dst); break;
            default: for (int i = 0; i < n; i++) dst[i] = H.ToSingle(src[i]); break;
        }
    }

    private static void Widen<S, V, H>(ushort* src, int n, float* dst) where S : ISimd<V> where V : struct where H : IHalfFormat
    {
        int F = S.Floats, i = 0;
        for (; i + F <= n; i += F) S.Store(H.Load<S, V>(src + i), dst + i);
        for (; i < n; i++) dst[i] = H.ToSingle(src[i]);
    }
}

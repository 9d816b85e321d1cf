using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace KernelEngine.Kernels.Simd;

/// <summary>
/// The span operations a decode step does between its kernels (softmax pieces, norms, reductions), as width-generic
/// loops that are compiled optimized on their first call (AggressiveOptimization): TensorPrimitives' generic methods
/// run as unoptimized tier-0 code until the runtime's tiering promotes them, which under default host settings does
/// not happen within a short generation.
/// </summary>
internal static unsafe class SpanMath
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Max(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty) throw new ArgumentException("empty span", nameof(x));
        fixed (float* p = x)
            return SimdLevel.Current switch
            {
                SimdLevel.Width.V512 => Max<Simd512, Vector512<float>>(p, x.Length),
                SimdLevel.Width.V256 => Max<Simd256, Vector256<float>>(p, x.Length),
                SimdLevel.Width.V128 => Max<Simd128, Vector128<float>>(p, x.Length),
                _ => MaxScalar(p, 0, x.Length, float.NegativeInfinity),
            };
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Max<S, V>(float* p, int n) where S : ISimd<V> where V : struct
    {
        int F = S.Floats, i = 0;
        if (n < F) return MaxScalar(p, 0, n, float.NegativeInfinity);
        V m = S.Load(p);
        for (i = F; i + F <= n; i += F) m = S.Max(m, S.Load(p + i));
        return MaxScalar(p, i, n, S.Max(m));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float MaxScalar(float* p, int from, int n, float m)
    {
        for (int i = from; i < n; i++) m = MathF.Max(m, p[i]);
        return m;
    }

    /// <summary>Index of the largest element (the first of equals); a NaN anywhere gives the first NaN's index, as
    /// TensorPrimitives.IndexOfMax does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int IndexOfMax(ReadOnlySpan<float> x)
    {
        float m = Max(x);
        if (float.IsNaN(m))
        {
            for (int i = 0; i < x.Length; i++) if (float.IsNaN(x[i])) return i;
        }
        return x.IndexOf(m);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Sum(ReadOnlySpan<float> x)
    {
        fixed (float* p = x)
            return SimdLevel.Current switch
            {
                SimdLevel.Width.V512 => Dot<Simd512, Vector512<float>, One>(p, p, x.Length),
                SimdLevel.Width.V256 => Dot<Simd256, Vector256<float>, One>(p, p, x.Length),
                SimdLevel.Width.V128 => Dot<Simd128, Vector128<float>, One>(p, p, x.Length),
                _ => DotScalar<One>(p, p, 0, x.Length),
            };
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float SumOfSquares(ReadOnlySpan<float> x) => Dot(x, x);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("spans of different lengths");
        fixed (float* pa = a, pb = b)
            return SimdLevel.Current switch
            {
                SimdLevel.Width.V512 => Dot<Simd512, Vector512<float>, Both>(pa, pb, a.Length),
                SimdLevel.Width.V256 => Dot<Simd256, Vector256<float>, Both>(pa, pb, a.Length),
                SimdLevel.Width.V128 => Dot<Simd128, Vector128<float>, Both>(pa, pb, a.Length),
                _ => DotScalar<Both>(pa, pb, 0, a.Length),
            };
    }

    /// <summary>Whether a dot reads b (else a sum of a).</summary>
    private interface IOperand { static abstract bool ReadsB { get; } }
    private readonly struct One : IOperand { public static bool ReadsB => false; }
    private readonly struct Both : IOperand { public static bool ReadsB => true; }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot<S, V, O>(float* a, float* b, int n) where S : ISimd<V> where V : struct where O : IOperand
    {
        int F = S.Floats, i = 0;
        V s0 = S.Zero, s1 = S.Zero;
        for (; i + 2 * F <= n; i += 2 * F)
        {
            if (O.ReadsB)
            {
                s0 = S.Fma(S.Load(a + i), S.Load(b + i), s0);
                s1 = S.Fma(S.Load(a + i + F), S.Load(b + i + F), s1);
            }
            else
            {
                s0 = S.Add(s0, S.Load(a + i));
                s1 = S.Add(s1, S.Load(a + i + F));
            }
        }
        for (; i + F <= n; i += F) s0 = O.ReadsB ? S.Fma(S.Load(a + i), S.Load(b + i), s0) : S.Add(s0, S.Load(a + i));
        return S.Sum(S.Add(s0, s1)) + DotScalar<O>(a, b, i, n);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotScalar<O>(float* a, float* b, int from, int n) where O : IOperand
    {
        float s = 0;
        for (int i = from; i < n; i++) s += O.ReadsB ? a[i] * b[i] : a[i];
        return s;
    }

    /// <summary>dst = x · scale + shift.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ScaleShift(ReadOnlySpan<float> x, float scale, float shift, Span<float> dst) => ScaleShift(x, scale, shift, dst, exp: false);

    /// <summary>dst = e^(x · scale + shift).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ExpScaleShift(ReadOnlySpan<float> x, float scale, float shift, Span<float> dst) => ScaleShift(x, scale, shift, dst, exp: true);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScaleShift(ReadOnlySpan<float> x, float scale, float shift, Span<float> dst, bool exp)
    {
        if (dst.Length < x.Length) throw new ArgumentException("destination too short", nameof(dst));
        fixed (float* px = x, pd = dst)
            switch (SimdLevel.Current)
            {
                case SimdLevel.Width.V512: ScaleShift<Simd512, Vector512<float>>(px, scale, shift, pd, x.Length, exp); break;
                case SimdLevel.Width.V256: ScaleShift<Simd256, Vector256<float>>(px, scale, shift, pd, x.Length, exp); break;
                case SimdLevel.Width.V128: ScaleShift<Simd128, Vector128<float>>(px, scale, shift, pd, x.Length, exp); break;
                default:
                    for (int i = 0; i < x.Length; i++) pd[i] = exp ? MathF.Exp(px[i] * scale + shift) : px[i] * scale + shift;
                    break;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScaleShift<S, V>(float* x, float scale, float shift, float* dst, int n, bool exp) where S : ISimd<V> where V : struct
    {
        int F = S.Floats, i = 0;
        V vs = S.Broadcast(scale), vb = S.Broadcast(shift);
        for (; i + F <= n; i += F)
        {
            V y = S.Fma(S.Load(x + i), vs, vb);
            S.Store(exp ? S.Exp(y) : y, dst + i);
        }
        for (; i < n; i++) dst[i] = exp ? MathF.Exp(x[i] * scale + shift) : x[i] * scale + shift;
    }

    /// <summary>dst = x · scale + y (element-wise).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MultiplyAdd(ReadOnlySpan<float> x, float scale, ReadOnlySpan<float> y, Span<float> dst)
    {
        if (y.Length < x.Length || dst.Length < x.Length) throw new ArgumentException("spans too short");
        fixed (float* px = x, py = y, pd = dst)
            switch (SimdLevel.Current)
            {
                case SimdLevel.Width.V512: MultiplyAdd<Simd512, Vector512<float>>(px, scale, py, pd, x.Length); break;
                case SimdLevel.Width.V256: MultiplyAdd<Simd256, Vector256<float>>(px, scale, py, pd, x.Length); break;
                case SimdLevel.Width.V128: MultiplyAdd<Simd128, Vector128<float>>(px, scale, py, pd, x.Length); break;
                default: for (int i = 0; i < x.Length; i++) pd[i] = px[i] * scale + py[i]; break;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MultiplyAdd<S, V>(float* x, float scale, float* y, float* dst, int n) where S : ISimd<V> where V : struct
    {
        int F = S.Floats, i = 0;
        V vs = S.Broadcast(scale);
        for (; i + F <= n; i += F) S.Store(S.Fma(S.Load(x + i), vs, S.Load(y + i)), dst + i);
        for (; i < n; i++) dst[i] = x[i] * scale + y[i];
    }

    /// <summary>dst = x ⊙ w + b (element-wise: LayerNorm's last step).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FusedMultiplyAdd(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> dst)
    {
        if (w.Length < x.Length || b.Length < x.Length || dst.Length < x.Length) throw new ArgumentException("spans too short");
        fixed (float* px = x, pw = w, pb = b, pd = dst)
            switch (SimdLevel.Current)
            {
                case SimdLevel.Width.V512: FusedMultiplyAdd<Simd512, Vector512<float>>(px, pw, pb, pd, x.Length); break;
                case SimdLevel.Width.V256: FusedMultiplyAdd<Simd256, Vector256<float>>(px, pw, pb, pd, x.Length); break;
                case SimdLevel.Width.V128: FusedMultiplyAdd<Simd128, Vector128<float>>(px, pw, pb, pd, x.Length); break;
                default: for (int i = 0; i < x.Length; i++) pd[i] = MathF.FusedMultiplyAdd(px[i], pw[i], pb[i]); break;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FusedMultiplyAdd<S, V>(float* x, float* w, float* b, float* dst, int n) where S : ISimd<V> where V : struct
    {
        int F = S.Floats, i = 0;
        for (; i + F <= n; i += F) S.Store(S.Fma(S.Load(x + i), S.Load(w + i), S.Load(b + i)), dst + i);
        for (; i < n; i++) dst[i] = MathF.FusedMultiplyAdd(x[i], w[i], b[i]);
    }

    /// <summary>dst = x ⊙ w · scale (element-wise product with a weight row, then a scalar: RMSNorm's last step).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MultiplyScaled(ReadOnlySpan<float> x, ReadOnlySpan<float> w, float scale, Span<float> dst)
    {
        if (w.Length < x.Length || dst.Length < x.Length) throw new ArgumentException("spans too short");
        fixed (float* px = x, pw = w, pd = dst)
            switch (SimdLevel.Current)
            {
                case SimdLevel.Width.V512: MultiplyScaled<Simd512, Vector512<float>>(px, pw, scale, pd, x.Length); break;
                case SimdLevel.Width.V256: MultiplyScaled<Simd256, Vector256<float>>(px, pw, scale, pd, x.Length); break;
                case SimdLevel.Width.V128: MultiplyScaled<Simd128, Vector128<float>>(px, pw, scale, pd, x.Length); break;
                default: for (int i = 0; i < x.Length; i++) pd[i] = px[i] * scale * pw[i]; break;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MultiplyScaled<S, V>(float* x, float* w, float scale, float* dst, int n) where S : ISimd<V> where V : struct
    {
        int F = S.Floats, i = 0;
        V vs = S.Broadcast(scale);
        for (; i + F <= n; i += F) S.Store(S.Mul(S.Mul(S.Load(x + i), vs), S.Load(w + i)), dst + i);
        for (; i < n; i++) dst[i] = x[i] * scale * w[i];
    }
}

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
            for (int j = 0; j < x.Length; j++) if (float.IsNaN(x[j])) return j;
        }
        // Span.IndexOf of a float compares one at a time (float equality is not bitwise); whole vectors first
        int i = 0;
        if (System.Numerics.Vector.IsHardwareAccelerated)
        {
            var target = new System.Numerics.Vector<float>(m);
            for (int w = System.Numerics.Vector<float>.Count; i + w <= x.Length; i += w)
                if (System.Numerics.Vector.EqualsAny(new System.Numerics.Vector<float>(x.Slice(i, w)), target)) break;
        }
        for (; i < x.Length; i++) if (x[i] == m) return i;
        return -1;
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
    public static void ScaleShift(ReadOnlySpan<float> x, float scale, float shift, Span<float> dst) => Map<ScaleShiftOp>(x, default, default, scale, shift, dst);

    /// <summary>dst = e^(x · scale + shift).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ExpScaleShift(ReadOnlySpan<float> x, float scale, float shift, Span<float> dst) => Map<ExpScaleShiftOp>(x, default, default, scale, shift, dst);

    /// <summary>dst = x · scale + y (element-wise).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MultiplyAdd(ReadOnlySpan<float> x, float scale, ReadOnlySpan<float> y, Span<float> dst) => Map<MultiplyAddOp>(x, y, default, scale, 0f, dst);

    /// <summary>dst = x ⊙ w + b (element-wise: LayerNorm's last step).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void FusedMultiplyAdd(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> b, Span<float> dst) => Map<FmaOp>(x, w, b, 0f, 0f, dst);

    /// <summary>dst = x ⊙ w · scale (element-wise product with a weight row, then a scalar: RMSNorm's last step).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MultiplyScaled(ReadOnlySpan<float> x, ReadOnlySpan<float> w, float scale, Span<float> dst) => Map<MultiplyScaledOp>(x, w, default, scale, 0f, dst);

    /// <summary>An element-wise operation of up to three vectors (x, y, z) and two scalars (a, b), as TensorPrimitives'
    /// operator structs: one loop template serves them all.</summary>
    private interface IMap
    {
        /// <summary>How many of x, y, z the operation reads.</summary>
        static abstract int Inputs { get; }
        static abstract V Invoke<S, V>(V x, V y, V z, V a, V b) where S : ISimd<V> where V : struct;
        static abstract float Invoke(float x, float y, float z, float a, float b);
    }

    private readonly struct ScaleShiftOp : IMap
    {
        public static int Inputs => 1;
        [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
        public static V Invoke<S, V>(V x, V y, V z, V a, V b) where S : ISimd<V> where V : struct => S.Fma(x, a, b);
        public static float Invoke(float x, float y, float z, float a, float b) => x * a + b;
    }

    private readonly struct ExpScaleShiftOp : IMap
    {
        public static int Inputs => 1;
        [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
        public static V Invoke<S, V>(V x, V y, V z, V a, V b) where S : ISimd<V> where V : struct => S.Exp(S.Fma(x, a, b));
        public static float Invoke(float x, float y, float z, float a, float b) => MathF.Exp(x * a + b);
    }

    private readonly struct MultiplyAddOp : IMap
    {
        public static int Inputs => 2;
        [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
        public static V Invoke<S, V>(V x, V y, V z, V a, V b) where S : ISimd<V> where V : struct => S.Fma(x, a, y);
        public static float Invoke(float x, float y, float z, float a, float b) => x * a + y;
    }

    private readonly struct FmaOp : IMap
    {
        public static int Inputs => 3;
        [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
        public static V Invoke<S, V>(V x, V y, V z, V a, V b) where S : ISimd<V> where V : struct => S.Fma(x, y, z);
        public static float Invoke(float x, float y, float z, float a, float b) => MathF.FusedMultiplyAdd(x, y, z);
    }

    private readonly struct MultiplyScaledOp : IMap
    {
        public static int Inputs => 2;
        [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
        public static V Invoke<S, V>(V x, V y, V z, V a, V b) where S : ISimd<V> where V : struct => S.Mul(S.Mul(x, a), y);
        public static float Invoke(float x, float y, float z, float a, float b) => x * a * y;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Map<O>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, ReadOnlySpan<float> z, float a, float b, Span<float> dst) where O : IMap
    {
        int n = x.Length;
        if (dst.Length < n || O.Inputs >= 2 && y.Length < n || O.Inputs >= 3 && z.Length < n) throw new ArgumentException("spans too short");
        fixed (float* px = x, py = y, pz = z, pd = dst)
            switch (SimdLevel.Current)
            {
                case SimdLevel.Width.V512: Map<Simd512, Vector512<float>, O>(px, py, pz, a, b, pd, n); break;
                case SimdLevel.Width.V256: Map<Simd256, Vector256<float>, O>(px, py, pz, a, b, pd, n); break;
                case SimdLevel.Width.V128: Map<Simd128, Vector128<float>, O>(px, py, pz, a, b, pd, n); break;
                default: for (int i = 0; i < n; i++) pd[i] = O.Invoke(px[i], O.Inputs >= 2 ? py[i] : 0, O.Inputs >= 3 ? pz[i] : 0, a, b); break;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Map<S, V, O>(float* x, float* y, float* z, float a, float b, float* dst, int n) where S : ISimd<V> where V : struct where O : IMap
    {
        int F = S.Floats, i = 0;
        V va = S.Broadcast(a), vb = S.Broadcast(b);
        for (; i + F <= n; i += F)
            S.Store(O.Invoke<S, V>(S.Load(x + i), O.Inputs >= 2 ? S.Load(y + i) : S.Zero, O.Inputs >= 3 ? S.Load(z + i) : S.Zero, va, vb), dst + i);
        for (; i < n; i++) dst[i] = O.Invoke(x[i], O.Inputs >= 2 ? y[i] : 0, O.Inputs >= 3 ? z[i] : 0, a, b);
    }
}

using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace KernelEngine.Kernels.Simd;

/// <summary>128-bit width: SSE4.1 + SSSE3 on x86 (what <c>DOTNET_EnableAVX2=0</c> leaves), AdvSimd (NEON) on ARM64, where
/// the int8 dots take <c>sdot</c> when the CPU has it (<see cref="Dp"/>) and widening multiplies otherwise.</summary>
internal readonly unsafe struct Simd128 : ISimd<Vector128<float>>
{
    public static bool IsSupported => Vector128.IsHardwareAccelerated && ((Sse41.IsSupported && Ssse3.IsSupported) || AdvSimd.Arm64.IsSupported);
    public static int Floats => 4;
    public static int Registers => AdvSimd.Arm64.IsSupported ? 32 : 16;

    public static Vector128<float> Zero { [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] get => Vector128<float>.Zero; }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> Load(float* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static void Store(Vector128<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> Broadcast(float f) => Vector128.Create(f);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> Mul(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> Sub(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c)
    {
        if (System.Runtime.Intrinsics.X86.Fma.IsSupported) return System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a, b, c);
        if (AdvSimd.IsSupported) return AdvSimd.FusedMultiplyAdd(c, a, b);
        return a * b + c;   // SSE4.1 without FMA: two instructions (Vector128.FusedMultiplyAdd would be a software fallback)
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Sum(Vector128<float> v)
    {
        v += Vector128.Shuffle(v, Vector128.Create(2, 3, 0, 1));
        v += Vector128.Shuffle(v, Vector128.Create(1, 0, 3, 2));
        return v.ToScalar();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> Sum4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
    {
        if (Sse3.IsSupported) return Sse3.HorizontalAdd(Sse3.HorizontalAdd(a, b), Sse3.HorizontalAdd(c, d));
        if (AdvSimd.Arm64.IsSupported) return AdvSimd.Arm64.AddPairwise(AdvSimd.Arm64.AddPairwise(a, b), AdvSimd.Arm64.AddPairwise(c, d));
        return Vector128.Create(Sum(a), Sum(b), Sum(c), Sum(d));
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> Exp(Vector128<float> v) => ExpPolynomial.Exp<Simd128, Vector128<float>>(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> Clamp(Vector128<float> x, Vector128<float> lo, Vector128<float> hi) => Sse.IsSupported ? Sse.Min(hi, Sse.Max(lo, x)) : Vector128.Min(Vector128.Max(x, lo), hi);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> Div(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> LoadS8(sbyte* p)
    {
        if (Sse41.IsSupported) return Vector128.ConvertToSingle(Sse41.ConvertToVector128Int32(p));
        if (AdvSimd.IsSupported)
            return Vector128.ConvertToSingle(AdvSimd.SignExtendWideningLower(AdvSimd.SignExtendWideningLower(Vector64.Create(*(int*)p, 0).AsSByte()).GetLower()));
        return Vector128.Create((float)p[0], p[1], p[2], p[3]);
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> RoundToI32(Vector128<float> v) => Sse2.IsSupported ? Sse2.ConvertToVector128Int32(v).AsSingle()   // cvtps2dq: nearest, ties to even
        : AdvSimd.IsSupported ? AdvSimd.ConvertToInt32RoundToEven(v).AsSingle() : Vector128.ConvertToInt32(Vector128.Round(v)).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> ShiftLeftI32(Vector128<float> v, int bits) => Vector128.ShiftLeft(v.AsInt32(), bits).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Max(Vector128<float> v)
    {
        v = Vector128.Max(v, Vector128.Shuffle(v, Vector128.Create(2, 3, 0, 1)));
        v = Vector128.Max(v, Vector128.Shuffle(v, Vector128.Create(1, 0, 3, 2)));
        return v.ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector128<int> Widen4(ushort* p) =>
        Sse41.IsSupported ? Sse41.ConvertToVector128Int32((short*)p) : AdvSimd.SignExtendWideningLower(Vector64.Load((short*)p));

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> LoadHalf(ushort* p)
    {
        // HalfVector's rule: sign-extend, shift into f32 position, clear the sign's copies, re-bias by 2^112
        var h = Widen4(p).AsUInt32();
        return (Vector128.ShiftLeft(h, 13) & Vector128.Create(0x8FFFE000u)).AsSingle() * Vector128.Create(0x77800000u).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> LoadBf16(ushort* p) => Vector128.ShiftLeft(Widen4(p).AsUInt32(), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static (Vector128<float> Even, Vector128<float> Odd) LoadHalfPairsUnscaled(ushort* p)
    {
        var v = Vector128.Load((int*)p);
        var mask = Vector128.Create(unchecked((int)0x8FFFE000));
        return ((Vector128.ShiftRightArithmetic(Vector128.ShiftLeft(v, 16), 3) & mask).AsSingle(), (Vector128.ShiftRightArithmetic(v, 3) & mask).AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static (Vector128<float> Even, Vector128<float> Odd) LoadBf16Pairs(ushort* p)
    {
        var v = Vector128.Load((uint*)p);
        return (Vector128.ShiftLeft(v, 16).AsSingle(), (v & Vector128.Create(0xFFFF0000u)).AsSingle());
    }
    public static void Deinterleave(float* x, int n, float* dst, float scale) => DeinterleaveScalar(x, n, dst, 4, scale);

    /// <summary>Per 2·<paramref name="lanes"/> elements: the evens, then the odds (once per product: not hot).</summary>
    internal static void DeinterleaveScalar(float* x, int n, float* dst, int lanes, float scale)
    {
        for (int i = 0; i < n; i += 2 * lanes)
            for (int k = 0; k < lanes; k++)
            {
                dst[i + k] = x[i + 2 * k] * scale;
                dst[i + lanes + k] = x[i + 2 * k + 1] * scale;
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> LoadBytes(void* p) => Vector128.Load((float*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> DotS8S8(Vector128<float> w, Vector128<float> x)
    {
        if (Ssse3.IsSupported)
            return Sse2.MultiplyAddAdjacent(Ssse3.MultiplyAddAdjacent(Ssse3.Abs(w.AsSByte()), Ssse3.Sign(x.AsSByte(), w.AsSByte())), Vector128.Create((short)1)).AsSingle();
        if (Dp.IsSupported) return Dp.DotProduct(Vector128<int>.Zero, w.AsSByte(), x.AsSByte()).AsSingle();
        // int16 products, pairwise to int32 twice
        var lo = AdvSimd.MultiplyWideningLower(w.AsSByte().GetLower(), x.AsSByte().GetLower());
        var hi = AdvSimd.MultiplyWideningUpper(w.AsSByte(), x.AsSByte());
        return AdvSimd.Arm64.AddPairwise(AdvSimd.AddPairwiseWidening(lo), AdvSimd.AddPairwiseWidening(hi)).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> MulAddU8S8To16(Vector128<float> u, Vector128<float> s)
    {
        if (Ssse3.IsSupported) return Ssse3.MultiplyAddAdjacent(u.AsByte(), s.AsSByte()).AsSingle();
        var lo = AdvSimd.MultiplyWideningLower(u.AsSByte().GetLower(), s.AsSByte().GetLower());
        var hi = AdvSimd.MultiplyWideningUpper(u.AsSByte(), s.AsSByte());
        return AdvSimd.Arm64.AddPairwise(lo, hi).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> MulAddI16(Vector128<float> a, Vector128<float> b)
    {
        if (Sse2.IsSupported) return Sse2.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16()).AsSingle();
        var lo = AdvSimd.MultiplyWideningLower(a.AsInt16().GetLower(), b.AsInt16().GetLower());
        var hi = AdvSimd.MultiplyWideningUpper(a.AsInt16(), b.AsInt16());
        return AdvSimd.Arm64.AddPairwise(lo, hi).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> AddI16(Vector128<float> a, Vector128<float> b) => (a.AsInt16() + b.AsInt16()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> DotAddI16(Vector128<float> acc, Vector128<float> a, Vector128<float> b) => AvxVnni.IsSupported
        ? AvxVnni.MultiplyWideningAndAdd(acc.AsInt32(), a.AsInt16(), b.AsInt16()).AsSingle()
        : AddI32(acc, MulAddI16(a, b));
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> Repeat4(Vector128<float> v, [ConstantExpected(Min = 0, Max = 3)] int g) => Vector128.Shuffle(v, Vector128.Create(g));
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> AddI32(Vector128<float> a, Vector128<float> b) => (a.AsInt32() + b.AsInt32()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> AndBytes(Vector128<float> a, Vector128<float> b) => (a.AsByte() & b.AsByte()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> OrBytes(Vector128<float> a, Vector128<float> b) => (a.AsByte() | b.AsByte()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> ShiftRight16(Vector128<float> v, int bits) => Vector128.ShiftRightLogical(v.AsUInt16(), bits).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> ShiftLeft16(Vector128<float> v, int bits) => Vector128.ShiftLeft(v.AsUInt16(), bits).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> BroadcastByte(byte b) => Vector128.Create(b).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> BroadcastI16(short s) => Vector128.Create(s).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> SpreadI16(Vector128<short> s8) => s8.AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> LaneI16Spread(Vector128<float> spread, int lane) => LaneI16(spread.AsInt16(), lane);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> LanePairI16Spread(Vector128<float> spread, int lane) => LanePairI16(spread.AsInt16(), lane);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> LaneI16(Vector128<short> s8, int lane)
    {
        var m = Vector128.Load(LaneMasks.I16 + 16 * lane);
        return (Ssse3.IsSupported ? Ssse3.Shuffle(s8.AsByte(), m) : AdvSimd.Arm64.VectorTableLookup(s8.AsByte(), m)).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> LanePairI16(Vector128<short> s8, int lane)
    {
        var m = Vector128.Load(LaneMasks.I16 + 16 * lane + 8);   // [lane × 4 | lane + 1 × 4]
        return (Ssse3.IsSupported ? Ssse3.Shuffle(s8.AsByte(), m) : AdvSimd.Arm64.VectorTableLookup(s8.AsByte(), m)).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector128<float> ConvertI32ToF32(Vector128<float> v) => Vector128.ConvertToSingle(v.AsInt32());
}

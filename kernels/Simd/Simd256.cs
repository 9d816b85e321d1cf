using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KernelEngine.Kernels.MatMul;

namespace KernelEngine.Kernels.Simd;

/// <summary>256-bit width: AVX2 + FMA (16 ymm registers), the path of CPUs without AVX-512.</summary>
internal readonly unsafe struct Simd256 : ISimd<Vector256<float>>
{
    public static bool IsSupported => Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported && Vector256.IsHardwareAccelerated;
    public static int Floats => 8;
    public static int Registers => 16;

    public static Vector256<float> Zero { [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] get => Vector256<float>.Zero; }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static void Store(Vector256<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Broadcast(float f) => Vector256.Create(f);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Mul(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Sub(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static float Sum(Vector256<float> v) => Simd128.Sum(v.GetLower() + v.GetUpper());
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d) =>
        Simd128.Sum4(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper(), c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper());
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static float Max(Vector256<float> v) => Simd128.Max(Vector128.Max(v.GetLower(), v.GetUpper()));
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Exp(Vector256<float> v) => ExpPolynomial.Exp<Simd256, Vector256<float>>(v);
    // vmaxps/vminps return the second operand when one is NaN: x second keeps a NaN
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Clamp(Vector256<float> x, Vector256<float> lo, Vector256<float> hi) => Avx.Min(hi, Avx.Max(lo, x));
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> Div(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> LoadS8(sbyte* p) => Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> RoundToI32(Vector256<float> v) => Avx.ConvertToVector256Int32(v).AsSingle();   // cvtps2dq: nearest, ties to even
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> ShiftLeftI32(Vector256<float> v, int bits) => Vector256.ShiftLeft(v.AsInt32(), bits).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> LoadHalf(ushort* p) => HalfVector.LoadHalf8(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector256<float> LoadBf16(ushort* p) => Vector256.ShiftLeft(Avx2.ConvertToVector256Int32(p).AsUInt32(), 16).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static (Vector256<float> Even, Vector256<float> Odd) LoadHalfPairsUnscaled(ushort* p)
    {
        // HalfVector.LoadHalf32PairedUnscaled's rule at this width
        var v = Vector256.Load((int*)p);
        var mask = Vector256.Create(unchecked((int)0x8FFFE000));
        return ((Vector256.ShiftRightArithmetic(Vector256.ShiftLeft(v, 16), 3) & mask).AsSingle(), (Vector256.ShiftRightArithmetic(v, 3) & mask).AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static (Vector256<float> Even, Vector256<float> Odd) LoadBf16Pairs(ushort* p)
    {
        var v = Vector256.Load((uint*)p);
        return (Vector256.ShiftLeft(v, 16).AsSingle(), (v & Vector256.Create(0xFFFF0000u)).AsSingle());
    }
    public static void Deinterleave(float* x, int n, float* dst, float scale) => Simd128.DeinterleaveScalar(x, n, dst, 8, scale);

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> LoadBytes(void* p) => Vector256.Load((float*)p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector256<float> DotS8S8(Vector256<float> w, Vector256<float> x) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w.AsSByte()), Avx2.Sign(x.AsSByte(), w.AsSByte())), Vector256.Create((short)1)).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector256<float> MulAddU8S8To16(Vector256<float> u, Vector256<float> s) => Avx2.MultiplyAddAdjacent(u.AsByte(), s.AsSByte()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector256<float> MulAddI16(Vector256<float> a, Vector256<float> b) => Avx2.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> AddI16(Vector256<float> a, Vector256<float> b) => (a.AsInt16() + b.AsInt16()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector256<float> DotAddI16(Vector256<float> acc, Vector256<float> a, Vector256<float> b) => AvxVnni.IsSupported
        ? AvxVnni.MultiplyWideningAndAdd(acc.AsInt32(), a.AsInt16(), b.AsInt16()).AsSingle()
        : (acc.AsInt32() + Avx2.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16())).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector256<float> Repeat4(Vector256<float> v, [ConstantExpected(Min = 0, Max = 3)] int g) => Avx2.PermuteVar8x32(v, Vector256.Create(2 * g, 2 * g, 2 * g, 2 * g, 2 * g + 1, 2 * g + 1, 2 * g + 1, 2 * g + 1));
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> AddI32(Vector256<float> a, Vector256<float> b) => (a.AsInt32() + b.AsInt32()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> AndBytes(Vector256<float> a, Vector256<float> b) => (a.AsByte() & b.AsByte()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> OrBytes(Vector256<float> a, Vector256<float> b) => (a.AsByte() | b.AsByte()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> ShiftRight16(Vector256<float> v, int bits) => Vector256.ShiftRightLogical(v.AsUInt16(), bits).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> ShiftLeft16(Vector256<float> v, int bits) => Vector256.ShiftLeft(v.AsUInt16(), bits).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> BroadcastByte(byte b) => Vector256.Create(b).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> BroadcastI16(short s) => Vector256.Create(s).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector256<float> SpreadI16(Vector128<short> s8) => Vector256.Create(s8, s8).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector256<float> LaneI16Spread(Vector256<float> spread, int lane) => Avx2.Shuffle(spread.AsByte(), Vector256.Load(LaneMasks.I16x2 + 32 * lane)).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector256<float> LanePairI16Spread(Vector256<float> spread, int lane) => Avx2.Shuffle(spread.AsByte(), Vector256.Load(LaneMasks.I16 + 16 * lane)).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector256<float> LaneI16(Vector128<short> s8, int lane)
    {
        var m = Vector128.Load(LaneMasks.I16 + 16 * lane);
        return Avx2.Shuffle(Vector256.Create(s8, s8).AsByte(), Vector256.Create(m, m)).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector256<float> ConvertI32ToF32(Vector256<float> v) => Vector256.ConvertToSingle(v.AsInt32());
}

using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KernelEngine.Kernels.MatMul;

namespace KernelEngine.Kernels.Simd;

/// <summary>512-bit width: AVX-512F/BW (32 zmm registers).</summary>
internal readonly unsafe struct Simd512 : ISimd<Vector512<float>>
{
    public static bool IsSupported => Avx512BW.IsSupported && Vector512.IsHardwareAccelerated;
    public static int Floats => 16;
    public static int Registers => 32;

    public static Vector512<float> Zero { [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] get => Vector512<float>.Zero; }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static void Store(Vector512<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Broadcast(float f) => Vector512.Create(f);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Mul(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Sub(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static float Sum(Vector512<float> v) => VectorMath.Sum(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d) =>
        Simd256.Sum4(a.GetLower() + a.GetUpper(), b.GetLower() + b.GetUpper(), c.GetLower() + c.GetUpper(), d.GetLower() + d.GetUpper());
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Max(Vector512<float> v) => Simd256.Max(Vector256.Max(v.GetLower(), v.GetUpper()));
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Exp(Vector512<float> v) => ExpPolynomial.Exp<Simd512, Vector512<float>>(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Clamp(Vector512<float> x, Vector512<float> lo, Vector512<float> hi) => Avx512F.Min(hi, Avx512F.Max(lo, x));
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> Div(Vector512<float> a, Vector512<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> LoadS8(sbyte* p) => Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load(p)));
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> RoundToI32(Vector512<float> v) => Avx512F.ConvertToVector512Int32(v).AsSingle();   // nearest, ties to even
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> ShiftLeftI32(Vector512<float> v, int bits) => Vector512.ShiftLeft(v.AsInt32(), bits).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> LoadHalf(ushort* p) => HalfVector.LoadHalf16(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> LoadBf16(ushort* p) => HalfVector.LoadBf16x16(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static (Vector512<float> Even, Vector512<float> Odd) LoadHalfPairsUnscaled(ushort* p) => HalfVector.LoadHalf32PairedUnscaled(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static (Vector512<float> Even, Vector512<float> Odd) LoadBf16Pairs(ushort* p) => HalfVector.LoadBf16x32Paired(p);
    public static void Deinterleave(float* x, int n, float* dst, float scale) => HalfVector.Deinterleave32(x, n, dst, scale);

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> LoadBytes(void* p) => Vector512.Load((float*)p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector512<float> DotS8S8(Vector512<float> w, Vector512<float> x)
    {
        // |w| · sign(w)x: AVX-512 has no vpsignb, the negation is a masked select
        var wb = w.AsSByte(); var xb = x.AsSByte();
        var sx = Vector512.ConditionalSelect(Vector512.LessThan(wb, Vector512<sbyte>.Zero), -xb, xb);
        return Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(Avx512BW.Abs(wb), sx), Vector512.Create((short)1)).AsSingle();
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector512<float> MulAddU8S8To16(Vector512<float> u, Vector512<float> s) => Avx512BW.MultiplyAddAdjacent(u.AsByte(), s.AsSByte()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector512<float> MulAddI16(Vector512<float> a, Vector512<float> b) => Avx512BW.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> AddI16(Vector512<float> a, Vector512<float> b) => (a.AsInt16() + b.AsInt16()).AsSingle();
    // .NET 10 exposes VNNI only at 256 and 128 bits (AvxVnni)
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector512<float> DotAddI16(Vector512<float> acc, Vector512<float> a, Vector512<float> b) => (acc.AsInt32() + Avx512BW.MultiplyAddAdjacent(a.AsInt16(), b.AsInt16())).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector512<float> Repeat4(Vector512<float> v, [ConstantExpected(Min = 0, Max = 3)] int g) => Avx512F.PermuteVar16x32(v, Vector512.Create(4 * g, 4 * g, 4 * g, 4 * g, 4 * g + 1, 4 * g + 1, 4 * g + 1, 4 * g + 1, 4 * g + 2, 4 * g + 2, 4 * g + 2, 4 * g + 2, 4 * g + 3, 4 * g + 3, 4 * g + 3, 4 * g + 3));
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> AddI32(Vector512<float> a, Vector512<float> b) => (a.AsInt32() + b.AsInt32()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> AndBytes(Vector512<float> a, Vector512<float> b) => (a.AsByte() & b.AsByte()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> OrBytes(Vector512<float> a, Vector512<float> b) => (a.AsByte() | b.AsByte()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> ShiftRight16(Vector512<float> v, int bits) => Vector512.ShiftRightLogical(v.AsUInt16(), bits).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> ShiftLeft16(Vector512<float> v, int bits) => Vector512.ShiftLeft(v.AsUInt16(), bits).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> BroadcastByte(byte b) => Vector512.Create(b).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> BroadcastI16(short s) => Vector512.Create(s).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector512<float> SpreadI16(Vector128<short> s8) => Vector512.Create(Vector256.Create(s8, s8), Vector256.Create(s8, s8)).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector512<float> LaneI16Spread(Vector512<float> spread, int lane) => LaneI16(spread.GetLower().GetLower().AsInt16(), lane);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector512<float> LanePairI16Spread(Vector512<float> spread, int lane) => LanePairI16(spread.GetLower().GetLower().AsInt16(), lane);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector512<float> LaneI16(Vector128<short> s8, int lane) => Vector512.Create(Simd256.LaneI16(s8, lane).AsInt16(), Simd256.LaneI16(s8, lane).AsInt16()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static Vector512<float> LanePairI16(Vector128<short> s8, int lane) => Vector512.Create(Simd256.LaneI16(s8, lane).AsInt16(), Simd256.LaneI16(s8, lane + 1).AsInt16()).AsSingle();
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static Vector512<float> ConvertI32ToF32(Vector512<float> v) => Vector512.ConvertToSingle(v.AsInt32());
}

using System.Diagnostics.CodeAnalysis;
using System.Runtime.Intrinsics;

namespace KernelEngine.Kernels.Simd;

/// <summary>
/// One SIMD width as an operator struct (TensorPrimitives' pattern): the kernels' loop templates are generic over
/// <typeparamref name="V"/> (that width's f32 vector) and this struct, and the JIT compiles one body per width with
/// every call inlined. Integer data travels in the same <typeparamref name="V"/> as raw bits (reinterpretation is free):
/// a vector holds <see cref="Floats"/> f32 or int32 lanes, or 4·<see cref="Floats"/> bytes.
/// Widths: <see cref="Simd512"/> (AVX-512BW), <see cref="Simd256"/> (AVX2 + FMA), <see cref="Simd128"/> (SSE4.1 + SSSE3
/// on x86, AdvSimd on ARM64); <see cref="SimdLevel"/> picks the widest the CPU runs.
/// </summary>
internal unsafe interface ISimd<V> where V : struct
{
    static abstract bool IsSupported { get; }
    /// <summary>f32 (or int32) lanes per vector.</summary>
    static abstract int Floats { get; }
    /// <summary>Architectural vector registers (16 on AVX2/SSE, 32 on AVX-512 and NEON): register blocking sizes follow.</summary>
    static abstract int Registers { get; }

    static abstract V Zero { get; }
    static abstract V Load(float* p);
    static abstract void Store(V v, float* p);
    static abstract V Broadcast(float f);
    static abstract V Add(V a, V b);
    static abstract V Mul(V a, V b);
    static abstract V Sub(V a, V b);
    /// <summary>Element-wise maximum.</summary>
    static abstract V Max(V a, V b);
    /// <summary>a · b + c, fused.</summary>
    static abstract V Fma(V a, V b, V c);
    static abstract float Sum(V v);
    /// <summary>The four vectors' sums as one vector (a transposing tree: fewer shuffles than four <see cref="Sum"/>s).</summary>
    static abstract Vector128<float> Sum4(V a, V b, V c, V d);
    static abstract float Max(V v);
    /// <summary>e^v per lane (<see cref="ExpPolynomial"/>: inlined, so it runs optimized wherever its caller does).</summary>
    static abstract V Exp(V v);
    /// <summary>Element-wise minimum.</summary>
    static abstract V Min(V a, V b);
    /// <summary>x limited to [lo, hi] (finite bounds) in two native min/max instructions; a NaN in x stays NaN.</summary>
    static abstract V Clamp(V x, V lo, V hi);
    static abstract V Div(V a, V b);
    /// <summary><see cref="Floats"/> int8 values widened to f32 (a Q8_0 block's quants).</summary>
    static abstract V LoadS8(sbyte* p);
    /// <summary>Rounds to the nearest integer (ties to even) and converts: int32 lanes as raw bits.</summary>
    static abstract V RoundToI32(V v);
    /// <summary>int32 lanes shifted left.</summary>
    static abstract V ShiftLeftI32(V v, int bits);

    /// <summary><see cref="Floats"/> fp16 values to f32, exact (subnormals included; weights are finite).</summary>
    static abstract V LoadHalf(ushort* p);
    /// <summary><see cref="Floats"/> bf16 values to f32.</summary>
    static abstract V LoadBf16(ushort* p);
    /// <summary>2·<see cref="Floats"/> fp16 as one load widened in place: the even and the odd elements, scaled by
    /// 2^-112 (undone once per product: <see cref="MatMul.DenseDot.XdScale"/>). x must be in <see cref="Deinterleave"/> order.</summary>
    static abstract (V Even, V Odd) LoadHalfPairsUnscaled(ushort* p);
    /// <summary>2·<see cref="Floats"/> bf16 as one load: (even, odd), exact.</summary>
    static abstract (V Even, V Odd) LoadBf16Pairs(ushort* p);
    /// <summary>x (n a multiple of 2·<see cref="Floats"/>) reordered per 2·<see cref="Floats"/> elements as
    /// [evens | odds], the order of the paired loads, times <paramref name="scale"/>.</summary>
    static abstract void Deinterleave(float* x, int n, float* dst, float scale);

    /// <summary>4·<see cref="Floats"/> bytes.</summary>
    static abstract V LoadBytes(void* p);
    /// <summary>int32 lanes, each Σ of its 4 bytes' products, both signed (−127..127).</summary>
    static abstract V DotS8S8(V w, V x);
    /// <summary>int16 lanes, each the sum of its 2 bytes' products, unsigned × signed (no overflow for 6-bit × 8-bit).</summary>
    static abstract V MulAddU8S8To16(V u, V s);
    /// <summary>int32 lanes, each the sum of its 2 int16 products.</summary>
    static abstract V MulAddI16(V a, V b);
    /// <summary>acc + <see cref="MulAddI16"/>(a, b): one vpdpwssd where the CPU has AVX-VNNI (256/128-bit).</summary>
    static abstract V DotAddI16(V acc, V a, V b);
    /// <summary>Lane i = v[g · Floats / 4 + i / 4]: the values of group <paramref name="g"/> (0-3) of Floats / 4 blocks, each
    /// spread over its block's 4 int32 lanes (a Q4_0 nibble load's lanes).</summary>
    static abstract V Repeat4(V v, [ConstantExpected(Min = 0, Max = 3)] int g);
    static abstract V AddI16(V a, V b);
    static abstract V AddI32(V a, V b);
    static abstract V AndBytes(V a, V b);
    static abstract V OrBytes(V a, V b);
    /// <summary>Each 16-bit lane shifted right (logical) by <paramref name="bits"/>; bytes then need masking.</summary>
    static abstract V ShiftRight16(V v, int bits);
    static abstract V ShiftLeft16(V v, int bits);
    static abstract V BroadcastByte(byte b);
    static abstract V BroadcastI16(short s);
    /// <summary>s8 in every 128-bit lane, for <see cref="LaneI16Spread"/> (one insert per set of scales, not per lane).</summary>
    static abstract V SpreadI16(Vector128<short> s8);
    /// <summary>int16 lanes all s8[lane] (s8 as <see cref="SpreadI16"/> spread it): one byte shuffle.</summary>
    static abstract V LaneI16Spread(V spread, int lane);
    /// <summary>int16 lanes: the first half s8[lane], the second half s8[lane + 1] (s8 as <see cref="SpreadI16"/> spread it): one byte shuffle.</summary>
    static abstract V LanePairI16Spread(V spread, int lane);
    static abstract V ConvertI32ToF32(V v);
}

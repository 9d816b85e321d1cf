using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KernelEngine.Kernels.Quant;

/// <summary>
/// ggml-compatible block quantization (Q8_0, Q4_0) of one row, and its inverse. The quantizer follows
/// ggml's reference: Q8_0 d = amax / 127, q = round(x / d); Q4_0 d = max / -8 (max = the value of largest
/// magnitude, sign kept), q = min(15, (int)(x / d + 8.5)). Scales are stored as IEEE fp16.
/// </summary>
internal static unsafe class BlockQuant
{
    public const int Block = WeightTypes.BlockElements;

    public static void QuantizeRowQ8_0(ReadOnlySpan<float> x, Span<byte> dst)
    {
        if (x.Length % Block != 0) throw new ArgumentException($"row length {x.Length} is not a multiple of {Block}");
        for (int b = 0; b < x.Length / Block; b++)
        {
            var src = x.Slice(b * Block, Block);
            float amax = 0;
            foreach (float v in src) amax = MathF.Max(amax, MathF.Abs(v));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            var blk = dst.Slice(b * WeightTypes.Q8_0BlockBytes, WeightTypes.Q8_0BlockBytes);
            Unsafe.WriteUnaligned(ref blk[0], (Half)d);
            for (int j = 0; j < Block; j++) blk[2 + j] = (byte)(sbyte)MathF.Round(src[j] * id, MidpointRounding.AwayFromZero);
        }
    }

    public static void QuantizeRowQ4_0(ReadOnlySpan<float> x, Span<byte> dst)
    {
        if (x.Length % Block != 0) throw new ArgumentException($"row length {x.Length} is not a multiple of {Block}");
        for (int b = 0; b < x.Length / Block; b++)
        {
            var src = x.Slice(b * Block, Block);
            float amax = 0, max = 0;
            foreach (float v in src)
                if (MathF.Abs(v) > amax) { amax = MathF.Abs(v); max = v; }
            float d = max / -8f;
            float id = d != 0 ? 1f / d : 0f;
            var blk = dst.Slice(b * WeightTypes.Q4_0BlockBytes, WeightTypes.Q4_0BlockBytes);
            Unsafe.WriteUnaligned(ref blk[0], (Half)d);
            for (int j = 0; j < Block / 2; j++)
            {
                int lo = Math.Min(15, (int)(src[j] * id + 8.5f));
                int hi = Math.Min(15, (int)(src[j + Block / 2] * id + 8.5f));
                blk[2 + j] = (byte)(lo | (hi << 4));
            }
        }
    }

    /// <summary>Dequantizes <paramref name="elements"/> values of a Q8_0 row into dst.</summary>
    public static void DequantizeRowQ8_0(byte* row, int elements, float* dst)
    {
        for (int b = 0; b < elements / Block; b++)
        {
            byte* blk = row + b * WeightTypes.Q8_0BlockBytes;
            DequantizeBlockQ8_0(MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk)), (sbyte*)(blk + 2), dst + b * Block);
        }
    }

    /// <summary>Dequantizes a Q4_0 row: low nibbles are elements 0-15, high nibbles 16-31, value = d · (q − 8).</summary>
    public static void DequantizeRowQ4_0(byte* row, int elements, float* dst)
    {
        for (int b = 0; b < elements / Block; b++)
        {
            byte* blk = row + b * WeightTypes.Q4_0BlockBytes;
            DequantizeBlockQ4_0(MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk)), blk + 2, dst + b * Block);
        }
    }

    /// <summary>32 values d · q[j] (AVX-512: 2 conversions).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static void DequantizeBlockQ8_0(float d, sbyte* q, float* o)
    {
        if (Avx512F.IsSupported)
        {
            var vd = Vector512.Create(d);
            (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load(q))) * vd).Store(o);
            (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load(q + 16))) * vd).Store(o + 16);
            return;
        }
        if (Vector128.IsHardwareAccelerated)
        {
            Widen16(Vector128.Load(q), d, o);
            Widen16(Vector128.Load(q + 16), d, o + 16);
            return;
        }
        for (int j = 0; j < Block; j++) o[j] = d * q[j];
    }

    /// <summary>16 int8 values times d to f32 (AVX2: two 8-lane conversions; else 128-bit widening, x86 and ARM64 alike).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Widen16(Vector128<sbyte> v, float d, float* o)
    {
        if (Avx2.IsSupported)
        {
            var vd = Vector256.Create(d);
            (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(v)) * vd).Store(o);
            (Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(v, 8))) * vd).Store(o + 8);
            return;
        }
        var d4 = Vector128.Create(d);
        var lo = Vector128.WidenLower(v); var hi = Vector128.WidenUpper(v);
        (Vector128.ConvertToSingle(Vector128.WidenLower(lo)) * d4).Store(o);
        (Vector128.ConvertToSingle(Vector128.WidenUpper(lo)) * d4).Store(o + 4);
        (Vector128.ConvertToSingle(Vector128.WidenLower(hi)) * d4).Store(o + 8);
        (Vector128.ConvertToSingle(Vector128.WidenUpper(hi)) * d4).Store(o + 12);
    }

    /// <summary>32 values d · (q − 8) from 16 bytes of nibbles (low: elements 0-15, high: 16-31).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static void DequantizeBlockQ4_0(float d, byte* q, float* o)
    {
        if (Avx512F.IsSupported)
        {
            DequantizeBlockQ4_0(d, Vector128.Load(q), o);
            return;
        }
        if (Vector128.IsHardwareAccelerated)
        {
            var raw = Vector128.Load(q);
            var m = Vector128.Create((byte)0x0F);
            var eight = Vector128.Create((sbyte)8);
            Widen16((raw & m).AsSByte() - eight, d, o);
            Widen16((Vector128.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & m).AsSByte() - eight, d, o + 16);
            return;
        }
        for (int j = 0; j < Block / 2; j++)
        {
            o[j] = d * ((q[j] & 0x0F) - 8);
            o[j + Block / 2] = d * ((q[j] >> 4) - 8);
        }
    }

    /// <summary><see cref="DequantizeBlockQ4_0(float, byte*, float*)"/> of a block's 16 bytes already in a register
    /// (AVX-512; the tiled Q4_0 layout gathers them from 4 lanes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static void DequantizeBlockQ4_0(float d, Vector128<byte> raw, float* o)
    {
        var lo = raw & Vector128.Create((byte)0x0F);
        var hi = Vector128.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & Vector128.Create((byte)0x0F);
        var vd = Vector512.Create(d);
        var eight = Vector512.Create(8);
        (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(lo) - eight) * vd).Store(o);
        (Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(hi) - eight) * vd).Store(o + 16);
    }
}

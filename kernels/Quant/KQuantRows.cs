using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KernelEngine.Kernels.Quant;

/// <summary>Widening of K-quant rows to F32 (prefill's weight blocks): 16 quants at a time as bytes, zero-extended and
/// scaled by one FMA at the widest width the CPU runs (<see cref="Store16"/>).</summary>
internal static unsafe class KQuantRows
{
    /// <summary>Whether a vector path exists (else the formats' scalar rows).</summary>
    public static bool IsSupported => Vector128.IsHardwareAccelerated;

    /// <summary>dst[i] = d · q[i] − m for 16 unsigned bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Store16(Vector128<byte> q, float d, float m, float* dst)
    {
        if (Avx512F.IsSupported)
        {
            Vector512.FusedMultiplyAdd(Vector512.Create(d), Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(q)), Vector512.Create(-m)).Store(dst);
            return;
        }
        if (Avx2.IsSupported && Fma.IsSupported)
        {
            var dv = Vector256.Create(d); var mv = Vector256.Create(-m);
            Fma.MultiplyAdd(dv, Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(q)), mv).Store(dst);
            Fma.MultiplyAdd(dv, Vector256.ConvertToSingle(Avx2.ConvertToVector256Int32(Sse2.ShiftRightLogical128BitLane(q, 8))), mv).Store(dst + 8);
            return;
        }
        var d4 = Vector128.Create(d); var m4 = Vector128.Create(m);
        var lo = Vector128.WidenLower(q); var hi = Vector128.WidenUpper(q);
        (Vector128.ConvertToSingle(Vector128.WidenLower(lo).AsInt32()) * d4 - m4).Store(dst);
        (Vector128.ConvertToSingle(Vector128.WidenUpper(lo).AsInt32()) * d4 - m4).Store(dst + 4);
        (Vector128.ConvertToSingle(Vector128.WidenLower(hi).AsInt32()) * d4 - m4).Store(dst + 8);
        (Vector128.ConvertToSingle(Vector128.WidenUpper(hi).AsInt32()) * d4 - m4).Store(dst + 12);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DequantizeQ4K(byte* src, int n, float* dst, bool fifthBits)
    {
        int blockBytes = fifthBits ? 176 : 144;
        for (int b = 0; b < n / 256; b++, src += blockBytes)
        {
            float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src)), dmin = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src + 2));
            var (sc, mn) = KQuants.ScalesMins(src + 4);
            byte* qh = src + 16, q = src + (fifthBits ? 48 : 16);
            for (int g = 0; g < 4; g++, q += 32)
            {
                // 32 low nibbles = sub-block 2g, 32 high nibbles = sub-block 2g + 1
                for (int part = 0; part < 2; part++)
                {
                    int j = 2 * g + part;
                    float dj = d * (byte)(sc >> (8 * j)), mj = dmin * (byte)(mn >> (8 * j));
                    for (int k = 0; k < 32; k += 16)
                    {
                        var bytes = Vector128.Load(q + k);
                        var nib = part == 0 ? bytes & Vector128.Create((byte)0x0F) : Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & Vector128.Create((byte)0x0F);
                        if (fifthBits) nib |= (Vector128.ShiftRightLogical(Vector128.Load(qh + k), j) & Vector128.Create((byte)1)) << 4;
                        Store16(nib, dj, mj, dst + 256 * b + 32 * j + k);
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DequantizeQ6K(byte* src, int n, float* dst)
    {
        for (int b = 0; b < n / 256; b++, src += 210, dst += 256)
        {
            float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src + 208));
            sbyte* sc = (sbyte*)(src + 192);
            for (int h = 0; h < 2; h++)
            {
                byte* ql = src + 64 * h, qh = src + 128 + 32 * h;
                for (int quarter = 0; quarter < 4; quarter++)
                    for (int k = 0; k < 32; k += 16)
                    {
                        var lowBytes = Vector128.Load(ql + (quarter % 2) * 32 + k);
                        var low = quarter < 2 ? lowBytes & Vector128.Create((byte)0x0F) : Vector128.ShiftRightLogical(lowBytes.AsUInt16(), 4).AsByte() & Vector128.Create((byte)0x0F);
                        var high = Vector128.ShiftRightLogical(Vector128.Load(qh + k), 2 * quarter) & Vector128.Create((byte)3);
                        int e = 128 * h + 32 * quarter + k;
                        float de = d * sc[e / 16];
                        Store16(low | (high << 4), de, 32 * de, dst + e);   // d·sc·(q − 32)
                    }
            }
        }
    }
}

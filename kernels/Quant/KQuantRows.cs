using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KernelEngine.Kernels.Quant;

/// <summary>AVX-512 widening of K-quant rows to F32 (prefill's weight blocks): 16 quants per zero-extension, one FMA each.</summary>
public static unsafe class KQuantRows
{
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
                    var dv = Vector512.Create(d * (byte)(sc >> (8 * j)));
                    var mv = Vector512.Create(dmin * (byte)(mn >> (8 * j)));
                    for (int k = 0; k < 32; k += 16)
                    {
                        var bytes = Vector128.Load(q + k);
                        var nib = part == 0 ? bytes & Vector128.Create((byte)0x0F) : Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & Vector128.Create((byte)0x0F);
                        var qi = Avx512F.ConvertToVector512Int32(nib);
                        if (fifthBits) qi += Avx512F.ConvertToVector512Int32((Vector128.ShiftRightLogical(Vector128.Load(qh + k), j) & Vector128.Create((byte)1)) << 4);
                        Vector512.FusedMultiplyAdd(dv, Vector512.ConvertToSingle(qi), -mv).Store(dst + 256 * b + 32 * j + k);
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
                        var qi = Avx512F.ConvertToVector512Int32(low | (high << 4)) - Vector512.Create(32);
                        int e = 128 * h + 32 * quarter + k;
                        (Vector512.ConvertToSingle(qi) * Vector512.Create(d * sc[e / 16])).Store(dst + e);
                    }
            }
        }
    }
}

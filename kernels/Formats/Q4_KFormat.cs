using System.Runtime.CompilerServices;
using KernelEngine.Kernels.Quant;

namespace KernelEngine.Kernels.Formats;

/// <summary>
/// ggml Q4_K: super-blocks of 256 = fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins for 8 sub-blocks of 32, then
/// 128 bytes of nibbles (each 64 elements: 32 bytes, low nibbles the first 32, high nibbles the next 32);
/// value = d·scale_j · q − dmin·min_j.
/// </summary>
public readonly struct Q4_KFormat : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.Q4_K;
    /// <inheritdoc/>
    public static string Name => "q4_k";
    /// <inheritdoc/>
    public static int BlockElements => 256;
    /// <inheritdoc/>
    public static int BlockBytes => 144;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.Q4_K;

    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst)
    {
        if (KQuantRows.IsSupported) { KQuantRows.DequantizeQ4K(src, n, dst, fifthBits: false); return; }
        for (int b = 0; b < n / 256; b++, src += 144)
        {
            float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src)), min = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src + 2));
            var sc = new ReadOnlySpan<byte>(src + 4, 12);
            byte* q = src + 16;
            for (int j = 0, s = 0; j < 256; j += 64, s += 2, q += 32)
            {
                KQuants.ScaleMinK4(s, sc, out byte s1, out byte m1);
                KQuants.ScaleMinK4(s + 1, sc, out byte s2, out byte m2);
                float d1 = d * s1, mm1 = min * m1, d2 = d * s2, mm2 = min * m2;
                for (int l = 0; l < 32; l++) *dst++ = d1 * (q[l] & 0xF) - mm1;
                for (int l = 0; l < 32; l++) *dst++ = d2 * (q[l] >> 4) - mm2;
            }
        }
    }

    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> dst)
    {
        Span<byte> L = stackalloc byte[256];
        for (int b = 0; b < x.Length / 256; b++)
        {
            var blk = dst.Slice(144 * b, 144);
            KQuants.QuantizeScaleMinSuperBlock(x.Slice(256 * b, 256), blk, L, 15, -1f, 20);
            var q = blk[16..];
            for (int j = 0; j < 256; j += 64)
                for (int l = 0; l < 32; l++) q[j / 2 + l] = (byte)(L[j + l] | (L[j + l + 32] << 4));
        }
    }
}

using System.Runtime.CompilerServices;
using KernelEngine.Kernels.Quant;

namespace KernelEngine.Kernels.Formats;

/// <summary>
/// ggml Q5_K: super-blocks of 256 = fp16 d, fp16 dmin, 12 bytes of 6-bit scales and mins, 32 bytes of fifth bits
/// (element 64k + l takes bit 2k of qh[l], element 64k + 32 + l bit 2k + 1), 128 bytes of nibbles as in Q4_K;
/// value = d·scale_j · q − dmin·min_j, q in [0, 31].
/// </summary>
public readonly struct Q5_KFormat : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.Q5_K;
    /// <inheritdoc/>
    public static string Name => "q5_k";
    /// <inheritdoc/>
    public static int BlockElements => 256;
    /// <inheritdoc/>
    public static int BlockBytes => 176;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.Q5_K;

    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst)
    {
        if (KQuantRows.IsSupported) { KQuantRows.DequantizeQ4K(src, n, dst, fifthBits: true); return; }
        for (int b = 0; b < n / 256; b++, src += 176)
        {
            float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src)), min = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src + 2));
            var sc = new ReadOnlySpan<byte>(src + 4, 12);
            byte* qh = src + 16, ql = src + 48;
            int u1 = 1, u2 = 2;
            for (int j = 0, s = 0; j < 256; j += 64, s += 2, ql += 32, u1 <<= 2, u2 <<= 2)
            {
                KQuants.ScaleMinK4(s, sc, out byte s1, out byte m1);
                KQuants.ScaleMinK4(s + 1, sc, out byte s2, out byte m2);
                float d1 = d * s1, mm1 = min * m1, d2 = d * s2, mm2 = min * m2;
                for (int l = 0; l < 32; l++) *dst++ = d1 * ((ql[l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - mm1;
                for (int l = 0; l < 32; l++) *dst++ = d2 * ((ql[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - mm2;
            }
        }
    }

    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> dst)
    {
        Span<byte> L = stackalloc byte[256];
        for (int b = 0; b < x.Length / 256; b++)
        {
            var blk = dst.Slice(176 * b, 176);
            KQuants.QuantizeScaleMinSuperBlock(x.Slice(256 * b, 256), blk, L, 31, -0.5f, 15);
            var qh = blk.Slice(16, 32);
            var ql = blk[48..];
            qh.Clear();
            byte m1 = 1, m2 = 2;
            for (int n0 = 0; n0 < 256; n0 += 64)
            {
                for (int j = 0; j < 32; j++)
                {
                    int l1 = L[n0 + j];
                    if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                    int l2 = L[n0 + j + 32];
                    if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                    ql[n0 / 2 + j] = (byte)(l1 | (l2 << 4));
                }
                m1 <<= 2; m2 <<= 2;
            }
        }
    }
}

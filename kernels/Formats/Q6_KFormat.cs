using System.Runtime.CompilerServices;
using KernelEngine.Kernels.Quant;

namespace KernelEngine.Kernels.Formats;

/// <summary>
/// ggml Q6_K: super-blocks of 256 = 128 bytes of low nibbles, 64 bytes of high 2-bit pairs, 16 int8 scales (one per 16
/// elements), fp16 d; value = d·scale_j · (q − 32), q in [0, 63].
/// </summary>
public readonly struct Q6_KFormat : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.Q6_K;
    /// <inheritdoc/>
    public static string Name => "q6_k";
    /// <inheritdoc/>
    public static int BlockElements => 256;
    /// <inheritdoc/>
    public static int BlockBytes => 210;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.Q6_K;

    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst)
    {
        if (KQuantRows.IsSupported) { KQuantRows.DequantizeQ6K(src, n, dst); return; }
        for (int b = 0; b < n / 256; b++, src += 210)
        {
            float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src + 208));
            byte* ql = src, qh = src + 128;
            sbyte* sc = (sbyte*)(src + 192);
            for (int n0 = 0; n0 < 256; n0 += 128, dst += 128, ql += 64, qh += 32, sc += 8)
            {
                for (int l = 0; l < 32; l++)
                {
                    int s = l / 16;
                    int q1 = (sbyte)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = (sbyte)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = (sbyte)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = (sbyte)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    dst[l] = d * sc[s] * q1;
                    dst[l + 32] = d * sc[s + 2] * q2;
                    dst[l + 64] = d * sc[s + 4] * q3;
                    dst[l + 96] = d * sc[s + 6] * q4;
                }
            }
        }
    }

    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> dst)
    {
        Span<sbyte> L = stackalloc sbyte[256];
        Span<float> scales = stackalloc float[16];
        for (int b = 0; b < x.Length / 256; b++)
        {
            var xs = x.Slice(256 * b, 256);
            var blk = dst.Slice(210 * b, 210);
            float maxScale = 0, maxAbsScale = 0;
            for (int ib = 0; ib < 16; ib++)
            {
                float scale = KQuants.MakeQxQuants(16, 32, xs.Slice(16 * ib, 16), L.Slice(16 * ib, 16), 1);
                scales[ib] = scale;
                float abs = MathF.Abs(scale);
                if (abs > maxAbsScale) { maxAbsScale = abs; maxScale = scale; }
            }
            if (maxAbsScale < 1e-15f)
            {
                blk.Clear();
                continue;
            }
            float iscale = -128f / maxScale;
            Half d = (Half)(1 / iscale);
            Unsafe.WriteUnaligned(ref blk[208], d);
            var sc = blk.Slice(192, 16);
            for (int ib = 0; ib < 16; ib++) sc[ib] = (byte)(sbyte)Math.Min(127, KQuants.NearestInt(iscale * scales[ib]));
            for (int j = 0; j < 16; j++)
            {
                float dd = (float)d * (sbyte)sc[j];
                if (dd == 0) continue;
                for (int ii = 0; ii < 16; ii++)
                {
                    int l = KQuants.NearestInt(xs[16 * j + ii] / dd);
                    L[16 * j + ii] = (sbyte)(Math.Max(-32, Math.Min(31, l)) + 32);
                }
            }
            var ql = blk[..128];
            var qh = blk.Slice(128, 64);
            for (int j = 0, o = 0, h = 0; j < 256; j += 128, o += 64, h += 32)
                for (int l = 0; l < 32; l++)
                {
                    int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                    ql[o + l] = (byte)(q1 | (q3 << 4));
                    ql[o + l + 32] = (byte)(q2 | (q4 << 4));
                    qh[h + l] = (byte)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
                }
        }
    }
}

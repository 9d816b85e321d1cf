using System.Runtime.CompilerServices;

namespace KernelEngine.Kernels.Formats;

/// <summary>ggml Q5_1: blocks of 32 = fp16 d, fp16 m + 4 bytes of fifth bits + 16 bytes of nibbles; value = d · q + m;
/// d = (max − min) / 31, q = (uint8)((x − min) / d + 0.5).</summary>
public readonly struct Q5_1Format : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.Q5_1;
    /// <inheritdoc/>
    public static string Name => "q5_1";
    /// <inheritdoc/>
    public static int BlockElements => 32;
    /// <inheritdoc/>
    public static int BlockBytes => 24;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.Q5_1;

    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst)
    {
        for (int b = 0; b < n / 32; b++, src += 24, dst += 32)
        {
            float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src)), m = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src + 2));
            uint qh = Unsafe.ReadUnaligned<uint>(src + 4);
            for (int j = 0; j < 16; j++)
            {
                int h0 = (int)((qh >> j) << 4) & 0x10, h1 = (int)(qh >> (j + 12)) & 0x10;
                dst[j] = ((src[8 + j] & 0x0F) | h0) * d + m;
                dst[j + 16] = ((src[8 + j] >> 4) | h1) * d + m;
            }
        }
    }

    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> dst)
    {
        for (int b = 0; b < x.Length / 32; b++)
        {
            var s = x.Slice(32 * b, 32);
            var blk = dst.Slice(24 * b, 24);
            var (min, id) = Quant.KQuants.MinMaxHeader(s, 31, blk);
            uint qh = 0;
            for (int j = 0; j < 16; j++)
            {
                float x0 = (s[j] - min) * id, x1 = (s[16 + j] - min) * id;
                uint q0 = (byte)(x0 + 0.5f), q1 = (byte)(x1 + 0.5f);
                blk[8 + j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                qh |= ((q0 & 0x10u) >> 4) << j;
                qh |= ((q1 & 0x10u) >> 4) << (j + 16);
            }
            Unsafe.WriteUnaligned(ref blk[4], qh);
        }
    }
}

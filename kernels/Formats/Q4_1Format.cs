using System.Runtime.CompilerServices;

namespace KernelEngine.Kernels.Formats;

/// <summary>ggml Q4_1: blocks of 32 = fp16 d, fp16 m + 16 bytes of nibbles (low: elements 0-15, high: 16-31); value = d · q + m;
/// d = (max − min) / 15, q = min(15, (int8)((x − min) / d + 0.5)).</summary>
public readonly struct Q4_1Format : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.Q4_1;
    /// <inheritdoc/>
    public static string Name => "q4_1";
    /// <inheritdoc/>
    public static int BlockElements => 32;
    /// <inheritdoc/>
    public static int BlockBytes => 20;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.Q4_1;

    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst)
    {
        for (int b = 0; b < n / 32; b++, src += 20, dst += 32)
        {
            float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src)), m = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src + 2));
            for (int j = 0; j < 16; j++)
            {
                dst[j] = (src[4 + j] & 0x0F) * d + m;
                dst[j + 16] = (src[4 + j] >> 4) * d + m;
            }
        }
    }

    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> dst)
    {
        for (int b = 0; b < x.Length / 32; b++)
        {
            var s = x.Slice(32 * b, 32);
            var blk = dst.Slice(20 * b, 20);
            var (min, id) = Quant.KQuants.MinMaxHeader(s, 15, blk);
            for (int j = 0; j < 16; j++)
            {
                float x0 = (s[j] - min) * id, x1 = (s[16 + j] - min) * id;
                byte q0 = (byte)Math.Min(15, (int)(sbyte)(x0 + 0.5f)), q1 = (byte)Math.Min(15, (int)(sbyte)(x1 + 0.5f));
                blk[4 + j] = (byte)(q0 | (q1 << 4));
            }
        }
    }
}

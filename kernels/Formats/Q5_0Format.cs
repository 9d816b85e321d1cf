using System.Runtime.CompilerServices;

namespace KernelEngine.Kernels.Formats;

/// <summary>ggml Q5_0: blocks of 32 = fp16 d + 4 bytes of fifth bits (bit j: element j) + 16 bytes of nibbles; value =
/// d · (q − 16); d = max / −16 (max: the value of largest magnitude), q = min(31, (int8)(x / d + 16.5)).</summary>
public readonly struct Q5_0Format : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.Q5_0;
    /// <inheritdoc/>
    public static string Name => "q5_0";
    /// <inheritdoc/>
    public static int BlockElements => 32;
    /// <inheritdoc/>
    public static int BlockBytes => 22;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.Q5_0;

    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst)
    {
        for (int b = 0; b < n / 32; b++, src += 22, dst += 32)
        {
            float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(src));
            uint qh = Unsafe.ReadUnaligned<uint>(src + 2);
            for (int j = 0; j < 16; j++)
            {
                int h0 = (int)((qh >> j) << 4) & 0x10, h1 = (int)(qh >> (j + 12)) & 0x10;
                dst[j] = (((src[6 + j] & 0x0F) | h0) - 16) * d;
                dst[j + 16] = (((src[6 + j] >> 4) | h1) - 16) * d;
            }
        }
    }

    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> x, Span<byte> dst)
    {
        for (int b = 0; b < x.Length / 32; b++)
        {
            var s = x.Slice(32 * b, 32);
            var blk = dst.Slice(22 * b, 22);
            float amax = 0, max = 0;
            foreach (float v in s) if (amax < MathF.Abs(v)) { amax = MathF.Abs(v); max = v; }
            float d = max / -16;
            float id = d != 0 ? 1.0f / d : 0.0f;
            Unsafe.WriteUnaligned(ref blk[0], (Half)d);
            uint qh = 0;
            for (int j = 0; j < 16; j++)
            {
                float x0 = s[j] * id, x1 = s[16 + j] * id;
                uint q0 = (uint)(byte)Math.Min(31, (int)(sbyte)(x0 + 16.5f)), q1 = (uint)(byte)Math.Min(31, (int)(sbyte)(x1 + 16.5f));
                blk[6 + j] = (byte)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
                qh |= ((q0 & 0x10u) >> 4) << j;
                qh |= ((q1 & 0x10u) >> 4) << (j + 16);
            }
            Unsafe.WriteUnaligned(ref blk[2], qh);
        }
    }
}

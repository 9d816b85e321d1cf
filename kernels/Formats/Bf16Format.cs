using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.Formats;

/// <summary>bfloat16, the upper half of an F32; F32 → BF16 rounds to nearest even, NaN kept quiet (ggml's <c>ggml_compute_fp32_to_bf16</c>).</summary>
public readonly struct Bf16Format : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.BF16;
    /// <inheritdoc/>
    public static string Name => "bf16";
    /// <inheritdoc/>
    public static int BlockElements => 1;
    /// <inheritdoc/>
    public static int BlockBytes => 2;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.BF16;
    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst) => MatMul.RowConvert.Bf16ToF32((ushort*)src, n, dst);

    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<byte> dst)
    {
        var u = MemoryMarshal.Cast<byte, ushort>(dst);
        for (int i = 0; i < src.Length; i++) u[i] = ToBf16(src[i]);
    }

    /// <inheritdoc/>
    public static ushort ToBf16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return (ushort)((u >> 16) | 0x40);
        return (ushort)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    }
}

namespace KernelEngine.Kernels.Formats;

/// <summary>ggml Q4_0: blocks of 32 = fp16 scale d + 16 bytes (low nibbles elements 0-15, high 16-31); value = d · (q − 8);
/// d = max / −8 with max the value of largest magnitude, q = min(15, (int)(x / d + 8.5)).</summary>
public readonly struct Q4_0Format : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.Q4_0;
    /// <inheritdoc/>
    public static string Name => "q4_0";
    /// <inheritdoc/>
    public static int BlockElements => 32;
    /// <inheritdoc/>
    public static int BlockBytes => 18;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.Q4_0;
    /// <inheritdoc/>
    public static bool PackedCpuDecode => true;
    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst) => Quant.BlockQuant.DequantizeRowQ4_0(src, n, dst);
    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<byte> dst) => Quant.BlockQuant.QuantizeRowQ4_0(src, dst);
}

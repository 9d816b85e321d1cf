namespace KernelEngine.Kernels.Formats;

/// <summary>ggml Q8_0: blocks of 32 = fp16 scale d + 32 int8 q; value = d · q; d = amax / 127, q = round(x / d).</summary>
public readonly struct Q8_0Format : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.Q8_0;
    /// <inheritdoc/>
    public static string Name => "q8_0";
    /// <inheritdoc/>
    public static int BlockElements => 32;
    /// <inheritdoc/>
    public static int BlockBytes => 34;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.Q8_0;
    /// <inheritdoc/>
    public static bool PackedCpuDecode => true;
    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst) => Quant.BlockQuant.DequantizeRowQ8_0(src, n, dst);
    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<byte> dst) => Quant.BlockQuant.QuantizeRowQ8_0(src, dst);
}

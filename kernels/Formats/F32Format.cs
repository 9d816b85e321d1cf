using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.Formats;

/// <summary>IEEE binary32, as stored.</summary>
public readonly struct F32Format : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.F32;
    /// <inheritdoc/>
    public static string Name => "f32";
    /// <inheritdoc/>
    public static int BlockElements => 1;
    /// <inheritdoc/>
    public static int BlockBytes => 4;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.F32;
    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst) => Buffer.MemoryCopy(src, dst, 4L * n, 4L * n);
    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<byte> dst) => MemoryMarshal.AsBytes(src).CopyTo(dst);
}

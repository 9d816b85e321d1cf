using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.Formats;

/// <summary>IEEE binary16; F32 → F16 rounds to nearest even (ggml's <c>GGML_FP32_TO_FP16</c>).</summary>
public readonly struct F16Format : IWeightFormat
{
    /// <inheritdoc/>
    public static WeightType Type => WeightType.F16;
    /// <inheritdoc/>
    public static string Name => "f16";
    /// <inheritdoc/>
    public static int BlockElements => 1;
    /// <inheritdoc/>
    public static int BlockBytes => 2;
    /// <inheritdoc/>
    public static GgmlType Ggml => GgmlType.F16;
    /// <inheritdoc/>
    public static unsafe void DequantizeRow(byte* src, int n, float* dst) => MatMul.RowConvert.F16ToF32((ushort*)src, n, dst);
    /// <inheritdoc/>
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<byte> dst) => TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<byte, Half>(dst));
}

using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.Formats;

/// <summary>IEEE binary32, as stored.</summary>
public readonly struct F32Format : IWeightFormat
{
    public static WeightType Type => WeightType.F32;
    public static string Name => "f32";
    public static int BlockElements => 1;
    public static int BlockBytes => 4;
    public static GgmlType Ggml => GgmlType.F32;
    public static unsafe void DequantizeRow(byte* src, int n, float* dst) => Buffer.MemoryCopy(src, dst, 4L * n, 4L * n);
    public static void QuantizeRow(ReadOnlySpan<float> src, Span<byte> dst) => MemoryMarshal.AsBytes(src).CopyTo(dst);
}

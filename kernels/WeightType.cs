using KernelEngine.Kernels.Formats;

namespace KernelEngine.Kernels;

/// <summary>
/// Storage type of a weight matrix as the kernels read it. Rows run along the input dimension. What each type is
/// (block shape, bytes, GGUF id, row conversion) lives in its <see cref="IWeightFormat"/> row of the
/// <see cref="WeightFormat"/> table (kernels/Formats), one file per format.
/// </summary>
public enum WeightType
{
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q4_K,
    Q5_K,
    Q6_K,
}

/// <summary>Shorthands over the <see cref="WeightFormat"/> table.</summary>
public static class WeightTypes
{
    /// <summary>Elements per block of the 32-element ggml formats (Q8_0, Q4_0).</summary>
    public const int BlockElements = 32;
    public const int Q8_0BlockBytes = 34;
    public const int Q4_0BlockBytes = 18;

    public static WeightFormat Format(this WeightType type) => WeightFormat.Of(type);

    /// <summary>Bytes one row of <paramref name="elements"/> takes in this type.</summary>
    public static long RowBytes(this WeightType type, int elements) => WeightFormat.Of(type).RowBytes(elements);

    /// <summary>Stored in blocks with shared scales (any quantized format).</summary>
    public static bool IsBlockQuantized(this WeightType type) => WeightFormat.Of(type).IsBlockQuantized;

    /// <summary>The CPU repacks the matrix at load and decodes it in integers (Q8_0, Q4_0: see MatMul/PackedQuant).</summary>
    public static bool HasPackedCpuDecode(this WeightType type) => WeightFormat.Of(type).PackedCpuDecode;

    public static string Name(this WeightType type) => WeightFormat.Of(type).Name;
}

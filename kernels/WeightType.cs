using KernelEngine.Kernels.Formats;

namespace KernelEngine.Kernels;

/// <summary>
/// Storage type of a weight matrix as the kernels read it. Rows run along the input dimension. What each type is
/// (block shape, bytes, GGUF id, row conversion) lives in its <see cref="IWeightFormat"/> row of the
/// <see cref="WeightFormat"/> table (kernels/Formats), one file per format.
/// </summary>
public enum WeightType
{
    /// <summary>32-bit floats.</summary>
    F32,
    /// <summary>IEEE half floats.</summary>
    F16,
    /// <summary>bfloat16 (the upper half of an F32).</summary>
    BF16,
    /// <summary>ggml Q8_0: blocks of 32 int8 with an fp16 scale.</summary>
    Q8_0,
    /// <summary>ggml Q4_0: blocks of 32 4-bit values with an fp16 scale, offset −8.</summary>
    Q4_0,
    /// <summary>ggml Q4_1: blocks of 32 4-bit values with an fp16 scale and minimum.</summary>
    Q4_1,
    /// <summary>ggml Q5_0: blocks of 32 5-bit values with an fp16 scale, offset −16.</summary>
    Q5_0,
    /// <summary>ggml Q5_1: blocks of 32 5-bit values with an fp16 scale and minimum.</summary>
    Q5_1,
    /// <summary>ggml Q4_K: 256-element super-blocks of 4-bit values with 6-bit sub-block scales and minimums.</summary>
    Q4_K,
    /// <summary>ggml Q5_K: 256-element super-blocks of 5-bit values with 6-bit sub-block scales and minimums.</summary>
    Q5_K,
    /// <summary>ggml Q6_K: 256-element super-blocks of 6-bit values with 8-bit sub-block scales.</summary>
    Q6_K,
}

/// <summary>Shorthands over the <see cref="WeightFormat"/> table.</summary>
public static class WeightTypes
{
    /// <summary>Elements per block of the 32-element ggml formats (Q8_0, Q4_0).</summary>
    public const int BlockElements = 32;
    /// <summary>Bytes of one Q8_0 block (fp16 scale + 32 int8).</summary>
    public const int Q8_0BlockBytes = 34;
    /// <summary>Bytes of one Q4_0 block (fp16 scale + 16 bytes of nibbles).</summary>
    public const int Q4_0BlockBytes = 18;

    /// <summary>The format table's row for <paramref name="type"/>.</summary>
    public static WeightFormat Format(this WeightType type) => WeightFormat.Of(type);

    /// <summary>Bytes one row of <paramref name="elements"/> takes in this type.</summary>
    public static long RowBytes(this WeightType type, int elements) => WeightFormat.Of(type).RowBytes(elements);

    /// <summary>Stored in blocks with shared scales (any quantized format).</summary>
    public static bool IsBlockQuantized(this WeightType type) => WeightFormat.Of(type).IsBlockQuantized;

    /// <summary>The CPU repacks the matrix at load and decodes it in integers (Q8_0, Q4_0: see MatMul/PackedQuant).</summary>
    public static bool HasPackedCpuDecode(this WeightType type) => WeightFormat.Of(type).PackedCpuDecode;

    /// <summary>llama.cpp's lower-case name of the type ("q4_k").</summary>
    public static string Name(this WeightType type) => WeightFormat.Of(type).Name;
}

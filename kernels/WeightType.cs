namespace KernelEngine.Kernels;

/// <summary>Storage type of a weight matrix as the kernels read it. Rows run along the input dimension.</summary>
public enum WeightType
{
    F32,
    F16,
    BF16,
    /// <summary>ggml Q8_0: blocks of 32 elements = fp16 scale d + 32 int8 q; value = d * q.</summary>
    Q8_0,
    /// <summary>ggml Q4_0: blocks of 32 = fp16 scale d + 16 bytes; low nibbles are elements 0-15, high 16-31; value = d * (q - 8).</summary>
    Q4_0,
}

public static class WeightTypes
{
    public const int BlockElements = 32;
    public const int Q8_0BlockBytes = 34;
    public const int Q4_0BlockBytes = 18;

    /// <summary>Bytes one row of <paramref name="elements"/> takes in this type.</summary>
    public static long RowBytes(this WeightType type, int elements) => type switch
    {
        WeightType.F32 => 4L * elements,
        WeightType.F16 or WeightType.BF16 => 2L * elements,
        WeightType.Q8_0 => (long)(elements / BlockElements) * Q8_0BlockBytes,
        WeightType.Q4_0 => (long)(elements / BlockElements) * Q4_0BlockBytes,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown weight type"),
    };

    public static bool IsBlockQuantized(this WeightType type) => type is WeightType.Q8_0 or WeightType.Q4_0;

    public static string Name(this WeightType type) => type switch
    {
        WeightType.F32 => "f32", WeightType.F16 => "f16", WeightType.BF16 => "bf16",
        WeightType.Q8_0 => "q8_0", WeightType.Q4_0 => "q4_0", _ => type.ToString(),
    };
}

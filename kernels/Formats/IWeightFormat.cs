namespace KernelEngine.Kernels.Formats;

/// <summary>
/// One weight format, as one row of ggml's <c>type_traits</c>: its block shape, its GGUF type id, and a scalar reference
/// of its row quantizer (bit-exact with ggml's <c>quantize_row_*_ref</c>) and dequantizer. A format is one struct
/// implementing this; <see cref="WeightFormat"/> finds every implementation, so adding a format is adding a file (and
/// its <see cref="WeightType"/> value). Fast kernels for a format are optional: without one, the CPU widens rows with
/// <see cref="DequantizeRow"/> and the generic dot product runs.
/// </summary>
public interface IWeightFormat
{
    /// <summary>The <see cref="WeightType"/> value this format stores.</summary>
    static abstract WeightType Type { get; }
    /// <summary>Lower-case name as llama.cpp spells it ("q4_k", "f16").</summary>
    static abstract string Name { get; }
    /// <summary>Elements per block (1 for plain floats, 32 for Q8_0/Q4_0, 256 for the K-quant super-blocks).</summary>
    static abstract int BlockElements { get; }
    /// <summary>Bytes one block takes on disk and in memory (scales included).</summary>
    static abstract int BlockBytes { get; }
    /// <summary>The format's type id in GGUF files.</summary>
    static abstract GgmlType Ggml { get; }
    /// <summary>n values (a multiple of <see cref="BlockElements"/>) of a stored row, widened to F32.</summary>
    static abstract unsafe void DequantizeRow(byte* src, int n, float* dst);
    /// <summary>ggml's reference quantizer of one row (src.Length a multiple of <see cref="BlockElements"/>).</summary>
    static abstract void QuantizeRow(ReadOnlySpan<float> src, Span<byte> dst);
    /// <summary>True when the CPU backend repacks the format at load and decodes it in integers (see MatMul/PackedQuant).</summary>
    static virtual bool PackedCpuDecode => false;
    /// <summary>True when the ILGPU kernels read the format (DeviceMath.ReadWeight).</summary>
    static virtual bool DeviceReadable => true;
}

/// <summary>ggml's type ids (ggml.h <c>enum ggml_type</c>), as GGUF stores them; names and values are ggml's.</summary>
#pragma warning disable CS1591 // each member is the ggml type of the same name
public enum GgmlType : uint
{
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
}
#pragma warning restore CS1591

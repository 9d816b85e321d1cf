using KernelEngine.Kernels.Formats;

namespace KernelEngine.Kernels.Quant;

/// <summary>Stores a (rows, cols) F32 matrix in a <see cref="WeightType"/>: raw bytes as the kernels read them (each
/// row through its format's reference quantizer).</summary>
internal static class WeightEncoding
{
    public static byte[] Encode(ReadOnlySpan<float> w, WeightType type, int rows, int cols)
    {
        var f = WeightFormat.Of(type);
        if (!f.FitsRow(cols)) throw new ArgumentException($"row length {cols} is not a multiple of {f.Name}'s block of {f.BlockElements}");
        long rowBytes = f.RowBytes(cols);
        var data = new byte[checked(rows * rowBytes)];
        for (int r = 0; r < rows; r++)
            f.QuantizeRow(w.Slice(r * cols, cols), data.AsSpan((int)(r * rowBytes), (int)rowBytes));
        return data;
    }

    /// <summary>f32 to bf16, round to nearest even, NaN kept quiet.</summary>
    public static ushort ToBf16(float f) => Bf16Format.ToBf16(f);
}

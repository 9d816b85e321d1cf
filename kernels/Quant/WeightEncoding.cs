using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.Quant;

/// <summary>Stores a (rows, cols) F32 matrix in a <see cref="WeightType"/>: raw bytes as the kernels read them.</summary>
public static class WeightEncoding
{
    public static byte[] Encode(ReadOnlySpan<float> w, WeightType type, int rows, int cols)
    {
        long rowBytes = type.RowBytes(cols);
        var data = new byte[rows * rowBytes];
        for (int r = 0; r < rows; r++)
        {
            var src = w.Slice(r * cols, cols);
            var dst = data.AsSpan((int)(r * rowBytes), (int)rowBytes);
            switch (type)
            {
                case WeightType.F32: MemoryMarshal.AsBytes(src).CopyTo(dst); break;
                case WeightType.F16: for (int c = 0; c < cols; c++) BitConverter.TryWriteBytes(dst[(2 * c)..], (Half)src[c]); break;
                case WeightType.BF16: for (int c = 0; c < cols; c++) BitConverter.TryWriteBytes(dst[(2 * c)..], ToBf16(src[c])); break;
                case WeightType.Q8_0: BlockQuant.QuantizeRowQ8_0(src, dst); break;
                case WeightType.Q4_0: BlockQuant.QuantizeRowQ4_0(src, dst); break;
                default: throw new ArgumentOutOfRangeException(nameof(type), type, null);
            }
        }
        return data;
    }

    /// <summary>f32 to bf16, round to nearest even, NaN kept quiet.</summary>
    public static ushort ToBf16(float f)
    {
        uint u = BitConverter.SingleToUInt32Bits(f);
        if (float.IsNaN(f)) return (ushort)((u >> 16) | 0x40);
        return (ushort)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
    }
}

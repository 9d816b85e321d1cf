using KernelEngine.Kernels;
using KernelEngine.Kernels.Quant;

namespace KernelEngine.Tests.Kernels;

/// <summary>Seeded random test inputs and weight encodings.</summary>
public static class TestData
{
    public static float[] Random(int n, int seed, float scale = 1f)
    {
        var r = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(r.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Stores a (rows, cols) F32 matrix in the given weight type.</summary>
    public static byte[] Encode(float[] w, WeightType type, int rows, int cols)
    {
        long rowBytes = type.RowBytes(cols);
        var data = new byte[rows * rowBytes];
        for (int r = 0; r < rows; r++)
        {
            var src = w.AsSpan(r * cols, cols);
            var dst = data.AsSpan((int)(r * rowBytes), (int)rowBytes);
            switch (type)
            {
                case WeightType.F32: System.Runtime.InteropServices.MemoryMarshal.AsBytes(src).CopyTo(dst); break;
                case WeightType.F16: for (int c = 0; c < cols; c++) BitConverter.TryWriteBytes(dst[(2 * c)..], (Half)src[c]); break;
                case WeightType.BF16: for (int c = 0; c < cols; c++) BitConverter.TryWriteBytes(dst[(2 * c)..], (ushort)(BitConverter.SingleToInt32Bits(src[c]) >>> 16)); break;
                case WeightType.Q8_0: BlockQuant.QuantizeRowQ8_0(src, dst); break;
                case WeightType.Q4_0: BlockQuant.QuantizeRowQ4_0(src, dst); break;
            }
        }
        return data;
    }

    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"lengths {a.Length} != {b.Length}");
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        return m;
    }
}

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
    public static byte[] Encode(float[] w, WeightType type, int rows, int cols) => WeightEncoding.Encode(w, type, rows, cols);

    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"lengths {a.Length} != {b.Length}");
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        return m;
    }
}

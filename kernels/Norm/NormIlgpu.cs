using ILGPU;
using ILGPU.Algorithms;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Kernels.Norm;

internal struct NormArgs
{
    public ArrayView<float> X, W, B, Y;
    public int Dim;
    public float Eps;
}

/// <summary>ILGPU twin of the Norm family: one group of 128 threads per row, shared-memory reductions.</summary>
internal static class NormIlgpu
{
    /// <summary>v0 one thread per row (the CPU accelerator's path, no barriers).</summary>
    public static void RmsNormPerRow(Index1D r, NormArgs a)
    {
        long row = (long)(int)r * a.Dim;
        float ss = 0;
        for (int i = 0; i < a.Dim; i++) { float v = a.X[row + i]; ss += v * v; }
        float scale = XMath.Rsqrt(ss / a.Dim + a.Eps);
        for (int i = 0; i < a.Dim; i++) a.Y[row + i] = a.X[row + i] * scale * a.W[i];
    }

    /// <summary>v0 one thread per row (the CPU accelerator's path, no barriers).</summary>
    public static void LayerNormPerRow(Index1D r, NormArgs a)
    {
        long row = (long)(int)r * a.Dim;
        float s = 0;
        for (int i = 0; i < a.Dim; i++) s += a.X[row + i];
        float mean = s / a.Dim, v = 0;
        for (int i = 0; i < a.Dim; i++) { float d = a.X[row + i] - mean; v += d * d; }
        float scale = XMath.Rsqrt(v / a.Dim + a.Eps);
        for (int i = 0; i < a.Dim; i++) a.Y[row + i] = (a.X[row + i] - mean) * scale * a.W[i] + a.B[i];
    }

    public static void RmsNorm(NormArgs a)
    {
        var shared = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        long row = (long)Grid.IdxX * a.Dim;
        float ss = 0;
        for (int i = Group.IdxX; i < a.Dim; i += Group.DimX) { float v = a.X[row + i]; ss += v * v; }
        float scale = XMath.Rsqrt(DeviceMath.GroupSum(ss, shared) / a.Dim + a.Eps);
        for (int i = Group.IdxX; i < a.Dim; i += Group.DimX) a.Y[row + i] = a.X[row + i] * scale * a.W[i];
    }

    public static void LayerNorm(NormArgs a)
    {
        var shared = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        long row = (long)Grid.IdxX * a.Dim;
        float s = 0;
        for (int i = Group.IdxX; i < a.Dim; i += Group.DimX) s += a.X[row + i];
        float mean = DeviceMath.GroupSum(s, shared) / a.Dim;
        float v = 0;
        for (int i = Group.IdxX; i < a.Dim; i += Group.DimX) { float d = a.X[row + i] - mean; v += d * d; }
        float scale = XMath.Rsqrt(DeviceMath.GroupSum(v, shared) / a.Dim + a.Eps);
        for (int i = Group.IdxX; i < a.Dim; i += Group.DimX) a.Y[row + i] = (a.X[row + i] - mean) * scale * a.W[i] + a.B[i];
    }
}

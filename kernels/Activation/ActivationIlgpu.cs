using ILGPU;
using ILGPU.Algorithms;

namespace KernelEngine.Kernels.Activation;

/// <summary>ILGPU twin of the Activation family: one thread per element.</summary>
internal static class ActivationIlgpu
{
    public static void SiluMul(Index1D i, ArrayView<float> gate, ArrayView<float> up)
    {
        float g = gate[i];
        gate[i] = g / (1f + XMath.Exp(-g)) * up[i];
    }

    public static void GeluTanh(Index1D i, ArrayView<float> x)
    {
        float v = x[i];
        x[i] = 0.5f * v * (1f + XMath.Tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }

    public static void GeluMul(Index1D i, ArrayView<float> gate, ArrayView<float> up)
    {
        float v = gate[i];
        gate[i] = 0.5f * v * (1f + XMath.Tanh(0.7978845608028654f * (v + 0.044715f * v * v * v))) * up[i];
    }

    public static void Add(Index1D i, ArrayView<float> x, ArrayView<float> y) => x[i] += y[i];

    public static void Scale(Index1D i, ArrayView<float> x, float factor) => x[i] *= factor;

    public static void SoftCap(Index1D i, ArrayView<float> x, float cap) => x[i] = cap * XMath.Tanh(x[i] / cap);
}

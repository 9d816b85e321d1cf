using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace KernelEngine.Kernels.Activation;

/// <summary>
/// CPU twin of the Activation family (elementwise, vectorized through TensorPrimitives / Vector512):
/// SiLU-gated MLP (gate = silu(gate) * up), GELU tanh approximation ("gelu_new"), residual add.
/// </summary>
public static unsafe class ActivationCpu
{
    /// <summary>gate[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up.</summary>
    public static void SiluMul(float* gate, float* up, long n)
    {
        var g = new Span<float>(gate, checked((int)n));
        var u = new ReadOnlySpan<float>(up, (int)n);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= g.Length; i += 16)
            {
                var v = Vector512.Load(gate + i);
                var s = v / (Vector512<float>.One + Vector512.Exp(-v));
                (s * Vector512.Load(up + i)).Store(gate + i);
            }
        }
        for (; i < g.Length; i++) g[i] = g[i] / (1f + MathF.Exp(-g[i])) * u[i];
    }

    /// <summary>x = 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³))), GPT-2's gelu_new.</summary>
    public static void GeluTanh(float* x, long n)
    {
        const float k = 0.7978845608028654f; // sqrt(2/pi)
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i + 16 <= n; i += 16)
            {
                var v = Vector512.Load(x + i);
                var inner = Vector512.Create(k) * (v + Vector512.Create(0.044715f) * v * v * v);
                // tanh(u) = 1 - 2 / (exp(2u) + 1), stable for both signs
                var t = Vector512<float>.One - Vector512.Create(2f) / (Vector512.Exp(inner + inner) + Vector512<float>.One);
                (Vector512.Create(0.5f) * v * (Vector512<float>.One + t)).Store(x + i);
            }
        }
        for (; i < n; i++)
        {
            float v = x[i];
            x[i] = 0.5f * v * (1f + MathF.Tanh(k * (v + 0.044715f * v * v * v)));
        }
    }

    /// <summary>x += y.</summary>
    public static void Add(float* x, float* y, long n) =>
        TensorPrimitives.Add(new ReadOnlySpan<float>(x, checked((int)n)), new ReadOnlySpan<float>(y, (int)n), new Span<float>(x, (int)n));
}

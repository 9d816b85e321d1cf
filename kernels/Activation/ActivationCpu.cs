using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace KernelEngine.Kernels.Activation;

/// <summary>
/// CPU twin of the Activation family (elementwise, vectorized through TensorPrimitives / Vector512):
/// SiLU-gated MLP (gate = silu(gate) * up), GELU tanh approximation ("gelu_new"), residual add.
/// </summary>
public static unsafe class ActivationCpu
{
    /// <summary>gate[i] = silu(gate[i]) * up[i] = gate · sigmoid(gate) · up. (TensorPrimitives' vectorized exp:
    /// Vector512.Exp measured ~60 ns per element here, 20x slower.)</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SiluMul(float* gate, float* up, long n)
    {
        if (!Vector256.IsHardwareAccelerated && Vector128.IsHardwareAccelerated)
        {
            // 128-bit only (SSE without FMA, where TensorPrimitives' exp falls back to a software FMA per lane; NEON)
            long i = 0;
            for (; i + 4 <= n; i += 4)
            {
                var g = Vector128.Load(gate + i);
                (g * Vector128.Load(up + i) / (Vector128<float>.One + Exp(-g))).Store(gate + i);
            }
            for (; i < n; i++) gate[i] = gate[i] * up[i] / (1f + MathF.Exp(-gate[i]));
            return;
        }
        Span<float> s = stackalloc float[Chunk];   // chunks: no allocation per prefill batch
        for (long i = 0; i < n; i += Chunk)
        {
            int len = (int)Math.Min(Chunk, n - i);
            var g = new Span<float>(gate + i, len);
            TensorPrimitives.Sigmoid(g, s[..len]);
            TensorPrimitives.Multiply(g, s[..len], g);
            TensorPrimitives.Multiply(g, new ReadOnlySpan<float>(up + i, len), g);
        }
    }

    private const int Chunk = 2048;

    /// <summary>e^x: 2^n · 2^f with n = round(x·log2 e), |f| ≤ 1/2, 2^f by its degree-6 Taylor polynomial (relative
    /// error ~1e-7); x clamped to the finite range. Separate multiplies and adds: no FMA is assumed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector128<float> Exp(Vector128<float> x)
    {
        x = Vector128.Min(Vector128.Max(x, Vector128.Create(-87.3f)), Vector128.Create(88.7f));
        var t = x * Vector128.Create(1.44269504f);
        var k = Vector128.Round(t);
        var f = t - k;
        var p = Vector128.Create(1.5403530e-4f);
        p = p * f + Vector128.Create(1.3333558e-3f);
        p = p * f + Vector128.Create(9.6181291e-3f);
        p = p * f + Vector128.Create(5.5504109e-2f);
        p = p * f + Vector128.Create(2.4022651e-1f);
        p = p * f + Vector128.Create(6.9314718e-1f);
        p = p * f + Vector128<float>.One;
        var scale = Vector128.ShiftLeft(Vector128.ConvertToInt32(k) + Vector128.Create(127), 23).AsSingle();
        return p * scale;
    }

    /// <summary>x = 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³))), GPT-2's gelu_new.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void GeluTanh(float* x, long n)
    {
        Span<float> buf = stackalloc float[Chunk];
        for (long i = 0; i < n; i += Chunk)
        {
            int len = (int)Math.Min(Chunk, n - i);
            GeluChunk(new Span<float>(x + i, len), buf[..len]);
        }
    }

    private static void GeluChunk(Span<float> v, Span<float> t)
    {
        const float k = 0.7978845608028654f; // sqrt(2/pi)
        TensorPrimitives.Multiply(v, v, t);                 // x²
        TensorPrimitives.Multiply(t, 0.044715f, t);
        TensorPrimitives.Add(t, 1f, t);                     // 1 + 0.044715 x²
        TensorPrimitives.Multiply(t, v, t);                 // x + 0.044715 x³
        TensorPrimitives.Multiply(t, k, t);
        TensorPrimitives.Tanh(t, t);
        TensorPrimitives.Add(t, 1f, t);
        TensorPrimitives.Multiply(t, v, t);
        TensorPrimitives.Multiply(t, 0.5f, v);
    }

    /// <summary>x += y.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Add(float* x, float* y, long n) =>
        TensorPrimitives.Add(new ReadOnlySpan<float>(x, checked((int)n)), new ReadOnlySpan<float>(y, (int)n), new Span<float>(x, (int)n));
}

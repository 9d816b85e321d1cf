using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Simd;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Kernels.Activation;

/// <summary>
/// CPU twin of the Activation family (elementwise, width-generic ISimd loops with the inlined ExpPolynomial):
/// SiLU-gated MLP (gate = silu(gate) * up), GELU tanh approximation ("gelu_new") plain and gated (GeGLU), residual add,
/// scaling and logit soft-capping.
/// </summary>
internal static unsafe class ActivationCpu
{
    /// <summary>gate[i] = silu(gate[i]) · up[i] = gate · up / (1 + e^-gate), with <see cref="ExpPolynomial"/> inlined.</summary>
    public static void SiluMul(float* gate, float* up, long n) => Sigmoided<Silu>(gate, up, n);

    /// <summary>x = 0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³))), GPT-2's gelu_new, computed as x / (1 + e^-2t)
    /// (0.5 (1 + tanh t) is the logistic function of 2t).</summary>
    public static void GeluTanh(float* x, long n) => Sigmoided<Gelu>(x, null, n);

    /// <summary>gate = gelu_tanh(gate) · up (GeGLU: Gemma's MLP).</summary>
    public static void GeluMul(float* gate, float* up, long n) => Sigmoided<Gelu>(gate, up, n);

    /// <summary><see cref="SiluMul(float*, float*, long)"/> split over the pool (a batch's rows; one row stays inline).</summary>
    public static void SiluMul(WorkerPool pool, float* gate, float* up, long n) => Split(pool, &SiluMul, gate, up, n);

    /// <summary><see cref="GeluMul(float*, float*, long)"/> split over the pool.</summary>
    public static void GeluMul(WorkerPool pool, float* gate, float* up, long n) => Split(pool, &GeluMul, gate, up, n);

    private struct SplitJob { public delegate*<float*, float*, long, void> Op; public float* X, Y; public long N, PerTask; }

    /// <summary>op(x, y, n) in one part per thread, below the pool's inline size on the calling thread. The parts start on
    /// multiples of 16 floats, so every element takes the same vector or tail path as in one call.</summary>
    private static void Split(WorkerPool pool, delegate*<float*, float*, long, void> op, float* x, float* y, long n)
    {
        int tasks = pool.Threads;
        var job = new SplitJob { Op = op, X = x, Y = y, N = n, PerTask = ((n + tasks - 1) / tasks + 15) & ~15L };
        pool.For(tasks, &SplitTask, &job, 8 * n);
    }

    private static void SplitTask(void* ctx, int t)
    {
        ref var j = ref Unsafe.AsRef<SplitJob>(ctx);
        long o = t * j.PerTask;
        if (o < j.N) j.Op(j.X + o, j.Y == null ? null : j.Y + o, Math.Min(j.PerTask, j.N - o));
    }

    /// <summary>GeGLU as ggml's CPU backend computes it (GGML_GELU_FP16): the input rounded to fp16, GELU looked up in
    /// a table of fp16 results, passed through unchanged from 10 up and 0 from −10 down. Only for comparisons with
    /// llama.cpp (it differs from the exact form by up to an fp16 step); never on the default path.</summary>
    public static void GeluMulLikeGgml(float* gate, float* up, long n)
    {
        for (long i = 0; i < n; i++)
        {
            float x = gate[i];
            float g = x <= -10f ? 0f : x >= 10f ? x : (float)(Half)GeluTanhScalar((float)(Half)x);
            gate[i] = g * up[i];
        }
    }

    private static float GeluTanhScalar(float x) => 0.5f * x * (1f + MathF.Tanh(0.7978845608028654f * x * (1f + 0.044715f * x * x)));

    /// <summary>The width the machine runs, for <see cref="Sigmoided{S, V, A}"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Sigmoided<A>(float* x, float* y, long n) where A : IArgument
    {
        switch (SimdLevel.Current)
        {
            case SimdLevel.Width.V512: Sigmoided<Simd512, Vector512<float>, A>(x, y, n); break;
            case SimdLevel.Width.V256: Sigmoided<Simd256, Vector256<float>, A>(x, y, n); break;
            case SimdLevel.Width.V128: Sigmoided<Simd128, Vector128<float>, A>(x, y, n); break;
            default: for (long i = 0; i < n; i++) x[i] = y != null ? A.Scalar(x[i]) * y[i] : A.Scalar(x[i]); break;
        }
    }

    /// <summary>x = cap · tanh(x / cap): logit soft-capping (Gemma 2's final logits).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SoftCap(float* x, long n, float cap)
    {
        for (long i = 0; i < n; i++) x[i] = cap * MathF.Tanh(x[i] / cap);
    }

    /// <summary>x *= factor.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Scale(float* x, long n, float factor)
    {
        var span = new Span<float>(x, checked((int)n));
        SpanMath.ScaleShift(span, factor, 0f, span);
    }

    /// <summary>What an activation feeds the logistic function: SiLU its input, GELU (tanh form) 2·sqrt(2/π)·(x + 0.044715 x³).</summary>
    private interface IArgument
    {
        static abstract V Of<S, V>(V x) where S : ISimd<V> where V : struct;
        static abstract float Scalar(float x);
    }

    private readonly struct Silu : IArgument
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
        public static V Of<S, V>(V x) where S : ISimd<V> where V : struct => x;
        public static float Scalar(float x) => x / (1f + MathF.Exp(-x));
    }

    private readonly struct Gelu : IArgument
    {
        private const float K2 = 2 * 0.7978845608028654f;   // 2·sqrt(2/π)
        [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
        public static V Of<S, V>(V x) where S : ISimd<V> where V : struct =>
            S.Mul(S.Mul(x, S.Broadcast(K2)), S.Fma(S.Mul(x, x), S.Broadcast(0.044715f), S.Broadcast(1f)));
        public static float Scalar(float x) => x / (1f + MathF.Exp(-K2 * x * (1f + 0.044715f * x * x)));
    }

    /// <summary>x[i] = x[i] · σ(A(x[i])) (· y[i] when y is given).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Sigmoided<S, V, A>(float* x, float* y, long n) where S : ISimd<V> where V : struct where A : IArgument
    {
        int F = S.Floats;
        long i = 0;
        V one = S.Broadcast(1f);
        for (; i + F <= n; i += F)
        {
            V v = S.Load(x + i);
            V e = ExpPolynomial.Exp<S, V>(S.Sub(S.Zero, A.Of<S, V>(v)));
            V num = y != null ? S.Mul(v, S.Load(y + i)) : v;
            S.Store(S.Div(num, S.Add(one, e)), x + i);
        }
        for (; i < n; i++)
        {
            float s = A.Scalar(x[i]);
            x[i] = y != null ? s * y[i] : s;
        }
    }

    /// <summary>x += y.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Add(float* x, float* y, long n) =>
        SpanMath.MultiplyAdd(new ReadOnlySpan<float>(y, checked((int)n)), 1f, new ReadOnlySpan<float>(x, (int)n), new Span<float>(x, (int)n));
}

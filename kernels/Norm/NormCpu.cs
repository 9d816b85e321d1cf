using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using KernelEngine.Kernels.Simd;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Kernels.Norm;

/// <summary>
/// CPU twin of the Norm family, one row (a token's hidden state) per task.
/// RMSNorm: y = x / sqrt(mean(x²) + eps) * w.  LayerNorm: y = (x - mean) / sqrt(var + eps) * w + b.
/// Sums run in F32 through TensorPrimitives (vectorized, pairwise-ish accumulation).
/// </summary>
internal static unsafe class NormCpu
{
    private struct Job
    {
        public float* X, W, B, Y;
        public int Dim;
        public float Eps;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm(WorkerPool pool, float* x, float* w, float* y, int rows, int dim, float eps)
    {
        var job = new Job { X = x, W = w, Y = y, Dim = dim, Eps = eps };
        if (rows == 1) RmsTask(&job, 0); else pool.For(rows, &RmsTask, &job);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void LayerNorm(WorkerPool pool, float* x, float* w, float* b, float* y, int rows, int dim, float eps)
    {
        var job = new Job { X = x, W = w, B = b, Y = y, Dim = dim, Eps = eps };
        if (rows == 1) LayerTask(&job, 0); else pool.For(rows, &LayerTask, &job);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RmsTask(void* ctx, int row)
    {
        ref Job j = ref Unsafe.AsRef<Job>(ctx);
        RmsRow(j.X + (long)row * j.Dim, j.W, j.Y + (long)row * j.Dim, j.Dim, j.Eps);
    }

    /// <summary>One row of <see cref="RmsNorm"/> (what a fused prologue runs, bit for bit the same).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsRow(float* x, float* w, float* y, int dim, float eps)
    {
        var xs = new ReadOnlySpan<float>(x, dim);
        float ss = SpanMath.SumOfSquares(xs);
        float scale = 1f / MathF.Sqrt(ss / dim + eps);
        SpanMath.MultiplyScaled(xs, new ReadOnlySpan<float>(w, dim), scale, new Span<float>(y, dim));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LayerTask(void* ctx, int row)
    {
        ref Job j = ref Unsafe.AsRef<Job>(ctx);
        var x = new ReadOnlySpan<float>(j.X + (long)row * j.Dim, j.Dim);
        var y = new Span<float>(j.Y + (long)row * j.Dim, j.Dim);
        float mean = SpanMath.Sum(x) / j.Dim;
        SpanMath.ScaleShift(x, 1f, -mean, y);
        float var = SpanMath.SumOfSquares(y) / j.Dim;
        float scale = 1f / MathF.Sqrt(var + j.Eps);
        SpanMath.ScaleShift(y, scale, 0f, y);
        SpanMath.FusedMultiplyAdd(y, new ReadOnlySpan<float>(j.W, j.Dim), new ReadOnlySpan<float>(j.B, j.Dim), y);
    }
}

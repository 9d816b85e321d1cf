using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels;
using KernelEngine.Kernels.MatMul;
using KernelEngine.Kernels.Memory;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Benchmarking;

/// <summary>
/// The machine's measured limits: DRAM read bandwidth (the better of a read-only sum and a 256 MiB F32 matrix-vector
/// product, the access pattern of decode), STREAM triad, and the FP32 GEMM peak of our kernel; all cores. Arrays sit in
/// huge pages where the OS gives them, as the CPU backend's weights do.
/// </summary>
public sealed record RooflineResult(double ReadGBps, double TriadGBps, double GemmGflops, int Threads, double SumGBps = 0, double MatVecGBps = 0);

/// <summary>Measures the roofline with the same worker pool the kernels use. Arrays are 8x the largest cache.</summary>
public static unsafe class Roofline
{
    private const long Floats = 64L << 20; // 256 MiB per array

    private struct Job { public float* A, B, C; public long PerTask; public float* Partial; }

    /// <summary>Measures the machine's read bandwidth (best of <paramref name="reps"/> passes over a buffer larger than the caches) with <paramref name="pool"/>'s threads.</summary>
    public static RooflineResult Measure(WorkerPool? pool = null, int reps = 5)
    {
        pool ??= WorkerPool.Shared;
        float* a = (float*)HugePages.Alloc(Floats * 4);
        float* b = (float*)HugePages.Alloc(Floats * 4);
        float* c = (float*)HugePages.Alloc(Floats * 4);
        float* partial = stackalloc float[256];
        try
        {
            int tasks = pool.Threads * 4;
            var job = new Job { A = a, B = b, C = c, PerTask = Floats / tasks, Partial = partial };
            pool.For(tasks, &Init, &job);
            double bestRead = 0, bestTriad = 0;
            for (int r = 0; r < reps; r++)
            {
                var sw = Stopwatch.StartNew();
                pool.For(tasks, &Sum, &job);
                bestRead = Math.Max(bestRead, Floats * 4 / sw.Elapsed.TotalSeconds / 1e9);
                sw.Restart();
                pool.For(tasks, &Triad, &job);
                bestTriad = Math.Max(bestTriad, Floats * 12 / sw.Elapsed.TotalSeconds / 1e9);
            }
            double matvec = 0;
            const int cols = 4096;
            int rows = (int)(Floats / cols);
            var x = new float[cols]; var y = new float[rows];
            fixed (float* px = x) fixed (float* py = y)
                for (int r = 0; r < reps; r++)
                {
                    var sw = Stopwatch.StartNew();
                    MatMulCpu.MatMul(pool, px, 1, cols, (byte*)a, WeightType.F32, rows, null, py);
                    matvec = Math.Max(matvec, Floats * 4 / sw.Elapsed.TotalSeconds / 1e9);
                }
            return new RooflineResult(Math.Max(bestRead, matvec), bestTriad, GemmGflops(pool), pool.Threads, bestRead, matvec);
        }
        finally
        {
            HugePages.Free((byte*)a); HugePages.Free((byte*)b); HugePages.Free((byte*)c);
        }
    }

    private static void Init(void* ctx, int t)
    {
        ref Job j = ref *(Job*)ctx;
        long o = t * j.PerTask;
        new Span<float>(j.A + o, (int)j.PerTask).Fill(1f);
        new Span<float>(j.B + o, (int)j.PerTask).Fill(2f);
        new Span<float>(j.C + o, (int)j.PerTask).Fill(0.5f);
    }

    private static void Sum(void* ctx, int t)
    {
        ref Job j = ref *(Job*)ctx;
        j.Partial[t] = ReadProbe.SumFloats(j.A + t * j.PerTask, j.PerTask);
    }

    private static void Triad(void* ctx, int t)
    {
        ref Job j = ref *(Job*)ctx;
        long o = t * j.PerTask;
        var s = Vector512.Create(3f);
        for (long i = 0; i + 16 <= j.PerTask; i += 16)
            Vector512.FusedMultiplyAdd(s, Vector512.Load(j.C + o + i), Vector512.Load(j.B + o + i)).Store(j.A + o + i);
    }

    /// <summary>Our prefill GEMM (512 x 768) · (3072 x 768)ᵀ in F32: GFLOP/s.</summary>
    public static double GemmGflops(WorkerPool pool)
    {
        const int m = 512, k = 768, n = 3072;
        var x = new float[m * k]; var w = new float[n * k]; var y = new float[m * n];
        new Random(1).NextBytes(MemoryMarshal.AsBytes(x.AsSpan()));
        for (int i = 0; i < x.Length; i++) x[i] = (i % 7) * 0.1f;
        for (int i = 0; i < w.Length; i++) w[i] = (i % 5) * 0.1f;
        double best = 0;
        fixed (float* px = x) fixed (float* pw = w) fixed (float* py = y)
            for (int r = 0; r < 4; r++)
            {
                var sw = Stopwatch.StartNew();
                MatMulCpu.MatMul(pool, px, m, k, (byte*)pw, WeightType.F32, n, null, py);
                best = Math.Max(best, 2.0 * m * n * k / sw.Elapsed.TotalSeconds / 1e9);
            }
        return best;
    }
}

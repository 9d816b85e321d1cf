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
/// product, the access pattern of decode), STREAM triad, the FP32 GEMM peak of our kernel, and the compute ceiling of
/// batched quantized decode (<see cref="Q4_0BatchGflops"/>: our Q4_0 product of 8 activation rows on a matrix that stays
/// in cache), each on all cores and on one (<see cref="GemmGflops1"/>, <see cref="Q4_0BatchGflops1"/>): the ratios say
/// how far compute scales over the cores (on a VM's cores, not always as far as their count). Arrays sit in huge pages where the OS gives them, as the CPU backend's weights do.
/// </summary>
public sealed record RooflineResult(double ReadGBps, double TriadGBps, double GemmGflops, int Threads, double SumGBps = 0, double MatVecGBps = 0,
    double Q4_0BatchGflops = 0, double Q4_0BatchGflops1 = 0, double GemmGflops1 = 0);

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
            using var one = new WorkerPool(1);
            return new RooflineResult(Math.Max(bestRead, matvec), bestTriad, GemmGflops(pool), pool.Threads, bestRead, matvec,
                Q4_0BatchGflops(pool), Q4_0BatchGflops(one), GemmGflops(one));
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

    /// <summary>
    /// Batched decode's compute ceiling: our Q4_0 matrix-vector product of 8 activation rows (<c>MatVecCpu</c>, as a
    /// decode step of 8 sequences runs it: activations quantized to Q8_0, each weight row unpacked once for 4 rows at a
    /// time) against a (1536 x 768) Q4_0 matrix, 0.66 MiB, that stays in the caches: GFLOP/s, 2 per multiply-add, best
    /// of 10 passes of 40 products. One sequence's decode is bound by DRAM; 8 sequences' by this.
    /// </summary>
    public static double Q4_0BatchGflops(WorkerPool pool)
    {
        const int rows = 8, outDim = 1536, inDim = 768;
        var rng = new Random(1);
        long rowBytes = WeightType.Q4_0.RowBytes(inDim);
        var raw = new byte[rowBytes * outDim];
        var w = new float[inDim];
        for (int o = 0; o < outDim; o++)
        {
            for (int i = 0; i < inDim; i++) w[i] = (float)(rng.NextDouble() * 2 - 1);
            Kernels.Quant.BlockQuant.QuantizeRowQ4_0(w, raw.AsSpan((int)(o * rowBytes), (int)rowBytes));
        }
        var x = new float[rows * inDim];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var y = new float[rows * outDim];
        byte* packed;
        fixed (byte* r = raw) packed = PackedQuant.Pack(r, WeightType.Q4_0, outDim, inDim);
        try
        {
            double best = 0;
            fixed (float* px = x) fixed (float* py = y)
            {
                var part = new MatVecPart { W = null, Packed = packed, Type = WeightType.Q4_0, OutDim = outDim, Y = py };
                ReadOnlySpan<MatVecPart> parts = [part];
                MatVecCpu.MatVec(pool, px, inDim, parts, rows);   // warm-up: JIT, caches
                for (int r = 0; r < 10; r++)
                {
                    var sw = Stopwatch.StartNew();
                    for (int i = 0; i < 40; i++) MatVecCpu.MatVec(pool, px, inDim, parts, rows);
                    best = Math.Max(best, 40 * 2.0 * rows * outDim * inDim / sw.Elapsed.TotalSeconds / 1e9);
                }
            }
            return best;
        }
        finally
        {
            PackedQuant.Free(packed);
        }
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

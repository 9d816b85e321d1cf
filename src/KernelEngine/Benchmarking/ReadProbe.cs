using System.Diagnostics;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Memory;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Benchmarking;

/// <summary>
/// A quick DRAM read-bandwidth sample (one all-core pass over 256 MiB, ~5-10 ms) to take between benchmark reps:
/// on a shared VM the bandwidth drifts by 2x over minutes, so a throughput is scaled by the bandwidth measured
/// around it, not by one measured earlier.
/// </summary>
internal sealed unsafe class ReadProbe : IDisposable
{
    private const long Floats = 64L << 20;
    private readonly WorkerPool _pool;
    private float* _data;
    private readonly List<double> _samples = [];

    private struct Job { public float* A; public long PerTask; }

    public ReadProbe(WorkerPool? pool = null)
    {
        _pool = pool ?? WorkerPool.Shared;
        _data = (float*)HugePages.Alloc(Floats * 4);   // as the weights: huge pages where the OS gives them
        new Span<float>(_data, (int)Floats).Fill(1f);
    }

    /// <summary>The samples taken so far (GB/s).</summary>
    public IReadOnlyList<double> Samples => _samples;

    /// <summary>Mean of the samples (GB/s).</summary>
    public double Mean => _samples.Count > 0 ? _samples.Average() : 0;

    /// <summary>Takes one sample: the better of two passes (the first may still be waking the workers).</summary>
    public double Sample()
    {
        ObjectDisposedException.ThrowIf(_data == null, this);
        int tasks = _pool.Threads * 4;
        var job = new Job { A = _data, PerTask = Floats / tasks };
        double best = 0;
        for (int r = 0; r < 2; r++)
        {
            var sw = Stopwatch.StartNew();
            _pool.For(tasks, &Sum, &job);
            best = Math.Max(best, Floats * 4 / sw.Elapsed.TotalSeconds / 1e9);
        }
        _samples.Add(best);
        return best;
    }

    private static void Sum(void* ctx, int t)
    {
        ref Job j = ref *(Job*)ctx;
        // Keeps the loads alive: the JIT must not drop an unused sum.
        if (SumFloats(j.A + t * j.PerTask, j.PerTask) == float.NegativeInfinity) throw new InvalidOperationException();
    }

    /// <summary>Σ p[0..count) with 4 independent Vector512 accumulators (count a multiple of 64): a pure read stream.</summary>
    internal static float SumFloats(float* p, long count)
    {
        var s0 = Vector512<float>.Zero; var s1 = Vector512<float>.Zero; var s2 = Vector512<float>.Zero; var s3 = Vector512<float>.Zero;
        for (long i = 0; i + 64 <= count; i += 64)
        {
            s0 += Vector512.Load(p + i); s1 += Vector512.Load(p + i + 16);
            s2 += Vector512.Load(p + i + 32); s3 += Vector512.Load(p + i + 48);
        }
        return Vector512.Sum(s0 + s1 + s2 + s3);
    }

    public void Dispose()
    {
        if (_data != null) { HugePages.Free((byte*)_data); _data = null; }
    }
}

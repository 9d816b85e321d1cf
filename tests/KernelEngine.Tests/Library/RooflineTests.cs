using KernelEngine.Benchmarking;
using KernelEngine.Kernels.Threading;
using NUnit.Framework;

namespace KernelEngine.Tests.Library;

/// <summary>The roofline's batched-decode compute ceiling runs on the kernel width this machine takes and on any pool
/// size (its speed is measured in bench/ and `ke roofline`, never asserted).</summary>
public sealed class RooflineTests
{
    [TestCase(1)]
    [TestCase(2)]
    public void Q4_0BatchCeiling_IsAPositiveRate(int threads)
    {
        using var pool = new WorkerPool(threads);
        double gflops = Roofline.Q4_0BatchGflops(pool);
        Assert.That(double.IsFinite(gflops) && gflops > 0, Is.True, $"{gflops} GFLOP/s");
    }
}

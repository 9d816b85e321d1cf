using KernelEngine.Benchmarking;
using NUnit.Framework;

namespace KernelEngine.Tests.Library;

/// <summary>
/// The profiler's cost model: FLOPs per kernel against the counts a model's shape gives (not the code's own sums), and
/// predicted times that follow max(bytes / bandwidth, FLOPs / peak) per call.
/// </summary>
public sealed class ProfilerTests
{
    [TestCase("cpu")]
    [TestCase("ilgpu-cpu")]
    public void DecodeStep_MatvecFlops_AreTheModelShapes_AndPredictionsFollowTheCostModel(string device)
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { Device = device, Profile = true });
        var peak = new DevicePeak(GBps: 10, Gflops: 2, "test");
        var r = Profiler.Run(model, promptTokens: 8, decodeSteps: 2, peak);
        var c = model.Config;
        // per layer q, k, v, o and the gated MLP's three; then the LM head: 2 FLOPs per weight
        long perLayer = (long)c.HiddenSize * (c.Heads * c.HeadDim + 2 * c.KvDim) + (long)c.Heads * c.HeadDim * c.HiddenSize + 3L * c.HiddenSize * c.IntermediateSize;
        long expected = 2 * (c.Layers * perLayer + (long)c.HiddenSize * c.VocabSize);
        long matvec = r.DecodeStep.Where(k => k.Kernel.StartsWith("matvec", StringComparison.Ordinal)).Sum(k => k.Flops);
        Assert.That(matvec, Is.EqualTo(expected), "FLOPs of one decode step's matrix-vector products");
        Assert.That(r.DecodeStep.Single(k => k.Kernel == "attention").Flops, Is.GreaterThan(0));
        foreach (var k in r.DecodeStep.Concat(r.Prefill))
        {
            // a sum of per-call maxima lies between the max of the sums and the sum of both terms
            double bytesUs = k.Bytes / (peak.GBps * 1e3), flopsUs = k.Flops / (peak.Gflops * 1e3);
            Assert.That(k.PredictedMicroseconds, Is.GreaterThanOrEqualTo(Math.Max(bytesUs, flopsUs) * (1 - 1e-9)).And.LessThanOrEqualTo((bytesUs + flopsUs) * (1 + 1e-9)), k.Kernel);
        }
        Assert.That(new DevicePeak(100, 50, "x").Microseconds(2_000_000, 1_000_000), Is.EqualTo(20).Within(1e-9), "memory-bound: 2 MB at 100 GB/s");
        Assert.That(new DevicePeak(100, 50, "x").Microseconds(1_000, 5_000_000), Is.EqualTo(100).Within(1e-9), "compute-bound: 5 MFLOP at 50 GFLOP/s");
    }
}

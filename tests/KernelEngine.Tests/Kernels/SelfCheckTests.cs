using KernelEngine.Diagnostics;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary><c>ke check</c>'s self-check: every kernel of a device against the CPU backend, each within its stated
/// tolerance (here the ILGPU CPU accelerator, the device every machine has besides the CPU).</summary>
public sealed class SelfCheckTests
{
    [Test]
    public void IlgpuCpu_PassesEveryKernelCheck()
    {
        var results = SelfCheck.Run("ilgpu-cpu", null);
        Assert.That(results, Has.Count.GreaterThan(30));
        Assert.That(results.Where(r => !r.Passed).Select(r => $"{r.Name}: {r.MaxError:E2} > {r.Tolerance:E0} {r.Note}"), Is.Empty);
        Assert.That(results.Select(r => r.Name), Has.Some.Contains("window").And.Some.Contains("rmsnorm-heads"));
    }
}

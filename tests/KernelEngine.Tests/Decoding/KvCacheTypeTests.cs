using KernelEngine.Backends;
using NUnit.Framework;

namespace KernelEngine.Tests.Decoding;

/// <summary>
/// Choosing the KV cache type (ModelOptions.KvCacheType, ke --kv-type): names as llama.cpp spells them, typed errors for
/// unknown names, contradictions and head sizes a block format cannot hold. The kernels' accuracy per type is in
/// FlashAttentionTests and BackendKernelTests; the Q8_0 cache against llama.cpp's in LlamaCppGgufTests.
/// </summary>
public sealed class KvCacheTypeTests
{
    [Test]
    public void Names_AreLlamaCppsCacheTypes()
    {
        Assert.That(KvCacheTypes.All, Is.SupersetOf(new[] { "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1" }));
        Assert.That(KvCacheTypes.All, Has.None.EqualTo("q4_k"), "256-element blocks never fit a head");
        Assert.That(KvCacheTypes.Parse("Q8_0"), Is.EqualTo(KernelEngine.Kernels.WeightType.Q8_0));
    }

    [Test]
    public void UnknownOrContradictoryTypes_AreInvalidRequests()
    {
        var e = Assert.Throws<InvalidRequestException>(() => Model.Load(SharedData.Stories, new ModelOptions { KvCacheType = "q9_0" }).Dispose());
        Assert.That(e!.Message, Does.Contain("q9_0").And.Contain("q8_0"));
        Assert.Throws<InvalidRequestException>(() => new ModelOptions { KvCacheType = "q8_0", F16KvCache = true }.Validate());
        Assert.DoesNotThrow(() => new ModelOptions { KvCacheType = "f16", F16KvCache = true }.Validate());
    }

    /// <summary>stories260K's heads are 8 wide: a Q8_0 block (32) cannot hold one, so a session says so instead of running.</summary>
    [Test]
    public void BlockFormat_WiderThanAHead_IsAnInvalidRequest()
    {
        using var m = Model.Load(SharedData.Stories, new ModelOptions { KvCacheType = "q8_0" });
        var e = Assert.Throws<InvalidRequestException>(() => m.CreateSession().Dispose());
        Assert.That(e!.Message, Does.Contain("q8_0").And.Contain("heads of 8").And.Contain("f16"));
    }
}

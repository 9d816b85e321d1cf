using KernelEngine.Kernels.SoftmaxEntropy;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>The fused softmax-entropy kernel against a float64 reference on 150,000-logit rows.</summary>
public sealed class SoftmaxEntropyTests
{
    [TestCase(150_000, 1.0f, 1)]
    [TestCase(150_000, 0.7f, 2)]
    [TestCase(151_936, 1.3f, 3)]
    [TestCase(17, 1.0f, 4)]
    public void MatchesFloat64Within1e5(int vocab, float temperature, int seed)
    {
        var logits = TestData.Random(vocab, seed, 12f);
        int token = vocab / 3;
        var got = SoftmaxEntropyCpu.Compute(logits, temperature, token);
        var (lse, h, lp) = ScalarReference.SoftmaxEntropy(logits, temperature, token);
        Assert.That(got.LogSumExp, Is.EqualTo(lse).Within(1e-5));
        Assert.That(got.Entropy, Is.EqualTo(h).Within(1e-5));
        Assert.That(got.TokenLogProb, Is.EqualTo(lp).Within(1e-5));
        Assert.That(got.EntropyBits, Is.EqualTo(h / Math.Log(2)).Within(1e-5));
        Assert.That(logits[got.ArgMax], Is.EqualTo(logits.Max()));
    }

    [Test]
    public void PeakedDistribution_HasNearZeroEntropy()
    {
        var logits = new float[1001];
        logits[500] = 100;
        var s = SoftmaxEntropyCpu.Compute(logits, 1, 500);
        Assert.That(s.Entropy, Is.EqualTo(0).Within(1e-6)); // F32 exp(0) may round to 1 + 2^-23
        Assert.That(s.TokenLogProb, Is.EqualTo(0).Within(1e-6));
    }
}

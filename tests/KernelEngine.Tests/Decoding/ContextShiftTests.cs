using KernelEngine.Decoding;
using NUnit.Framework;

namespace KernelEngine.Tests.Decoding;

/// <summary>
/// Context shift in generation (llama.cpp's context shift with --keep): a generation of three times the context length
/// keeps running, the kept prefix stays, the output up to the first shift is the unshifted output, and runs repeat.
/// Where the moved keys land is checked per backend in BackendKernelTests.ContextShift_ReRotatesKeysToTheirNewPositions.
/// </summary>
public sealed class ContextShiftTests
{
    private const int Context = 40;
    private static readonly int[] Prompt = [1, 403, 407, 261, 378];

    private static (List<GeneratedToken> Tokens, GenerationStats Stats, IReadOnlyList<int> Cached) Run(GenerationSettings settings, bool f16Kv)
    {
        using var m = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = Context, F16KvCache = f16Kv });
        using var s = m.CreateSession();
        var tokens = s.Generate(Prompt, settings).ToList();
        return (tokens, s.LastStats!, s.Tokens.ToArray());
    }

    [TestCase(false)]
    [TestCase(true)]
    public void ThreeTimesTheContext_KeepsRunning(bool f16Kv)
    {
        var settings = new GenerationSettings { MaxTokens = 3 * Context, Sampling = SamplingSettings.Greedy, StopAtEos = false, ContextShift = true, KeepTokens = Prompt.Length };
        var (tokens, stats, cached) = Run(settings, f16Kv);
        Assert.That(tokens, Has.Count.EqualTo(3 * Context));
        Assert.That(stats.StopReason, Is.EqualTo(StopReason.MaxTokens));
        Assert.That(cached.Count, Is.LessThanOrEqualTo(Context));
        Assert.That(cached.Take(Prompt.Length), Is.EqualTo(Prompt), "the kept prefix");
        // after the prefix the cache holds the latest generated tokens in order (all but the last, never fed)
        var ids = tokens.Select(t => t.Id).ToArray();
        int window = cached.Count - Prompt.Length;
        Assert.That(cached.Skip(Prompt.Length), Is.EqualTo(ids[^(window + 1)..^1]));
        Assert.That(tokens.All(t => double.IsFinite(t.LogProb) && t.Position < Context + 1), Is.True);

        // before the first shift the output is the unshifted one; the whole run repeats token for token
        var plain = Run(settings with { ContextShift = false }, f16Kv).Tokens;
        Assert.That(plain, Has.Count.EqualTo(Context + 1 - Prompt.Length));
        Assert.That(tokens.Take(plain.Count).Select(t => t.Id), Is.EqualTo(plain.Select(t => t.Id)));
        Assert.That(Run(settings, f16Kv).Tokens.Select(t => t.Id), Is.EqualTo(tokens.Select(t => t.Id)));
    }

    [Test]
    public void SessionShift_DropsTheTokensAndChecksItsArguments()
    {
        using var m = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = Context });
        using var s = m.CreateSession();
        int[] fed = [1, 403, 407, 261, 378, 300, 301, 302, 303, 304];
        s.Feed(fed);
        s.ShiftContext(2, 5);
        Assert.That(s.Tokens, Is.EqualTo(new[] { 1, 403, 302, 303, 304 }));
        Assert.That(s.Position, Is.EqualTo(5));
        Assert.That(float.IsFinite(s.Feed([305])[0]), Is.True);
        Assert.Throws<InvalidRequestException>(() => s.ShiftContext(-1, 1));
        Assert.Throws<InvalidRequestException>(() => s.ShiftContext(0, 0));
        Assert.Throws<InvalidRequestException>(() => s.ShiftContext(3, 4));
        Assert.Throws<InvalidRequestException>(() => new GenerationSettings { KeepTokens = -1 }.Validate());
    }
}

using KernelEngine.Benchmarking;
using KernelEngine.Decoding;
using KernelEngine.Formats;
using KernelEngine.Kernels;
using NUnit.Framework;

namespace KernelEngine.Tests.Decoding;

/// <summary>Greedy speculative, multi-draft, prompt-lookup and entropy-adaptive decoding against plain greedy decoding.</summary>
[TestFixture("cpu")]
[TestFixture("ilgpu-cpu")]
public sealed class SpeculativeDecodingTests(string device)
{
    private static readonly Dictionary<string, string> Folders = new();

    /// <summary>Draft folders: stories260K quantized (cheap, high acceptance) and a random-weight model of the same shape (rejects often).</summary>
    private static string Draft(string kind)
    {
        lock (Folders)
        {
            if (Folders.TryGetValue(kind, out var dir)) return dir;
            dir = kind switch
            {
                "q8_0" or "q4_0" => TestScratch.Path($"draft-{kind}"),
                _ => Presets.Materialize("llama-tiny", WeightType.F32, TestScratch.Path("presets")),
            };
            if (kind is "q8_0" or "q4_0" && !Directory.Exists(dir))
                ModelQuantizer.Quantize(SharedData.Stories, dir, new QuantizeOptions { Type = kind == "q8_0" ? WeightType.Q8_0 : WeightType.Q4_0 });
            return Folders[kind] = dir;
        }
    }

    private ModelOptions Options => new() { Device = device };
    /// <summary>The ILGPU CPU accelerator simulates every GPU thread: fewer tokens there.</summary>
    private int Tokens => device == "cpu" ? 120 : 40;

    private static int[] Plain(Model m, int[] prompt, int n) => PlainTokens(m, prompt, n).Select(t => t.Id).ToArray();

    private static GeneratedToken[] PlainTokens(Model m, int[] prompt, int n)
    {
        using var s = m.CreateSession();
        return s.Generate(prompt, new GenerationSettings { MaxTokens = n, Sampling = SamplingSettings.Greedy }).ToArray();
    }

    private static readonly int[] Prompt = [1, 403, 407, 261, 378];

    [TestCase("q4_0", 4, 1, false, 0)]
    [TestCase("q8_0", 5, 1, true, 0)]
    [TestCase("q4_0", 3, 3, false, 0)]
    [TestCase("random", 4, 1, false, 0)]
    [TestCase("random", 2, 4, false, 0)]
    [TestCase(null, 4, 1, false, 3)]
    [TestCase(null, 6, 1, true, 2)]
    public void Greedy_EqualsPlainGreedyOfTheTarget(string? draftKind, int gamma, int drafts, bool adaptive, int lookup)
    {
        using var target = Model.Load(SharedData.Stories, Options);
        int n = Tokens;
        var plain = PlainTokens(target, Prompt, n);
        var expected = plain.Select(t => t.Id).ToArray();
        using var draftModel = draftKind == null ? null : Model.Load(Draft(draftKind), Options);
        using var ts = target.CreateSession();
        using var ds = draftModel?.CreateSession();
        var dec = new SpeculativeDecoder(ts, ds, new SpeculativeSettings { Gamma = gamma, Drafts = drafts, AdaptiveGamma = adaptive, LookupNgram = lookup });
        var tokens = dec.Generate(Prompt, new GenerationSettings { MaxTokens = n, Sampling = SamplingSettings.Greedy }).ToArray();
        var got = tokens.Select(t => t.Id).ToArray();
        Assert.That(got, Is.EqualTo(expected));
        // the emitted tokens' log-probabilities and entropies (from the backend's softmax-entropy on a single-branch greedy
        // step, from the host's copy of the logits otherwise) are plain decoding's
        Assert.That(tokens.Zip(plain).Max(t => Math.Abs(t.First.LogProb - t.Second.LogProb)), Is.LessThanOrEqualTo(1e-4), "log p");
        Assert.That(tokens.Zip(plain).Max(t => Math.Abs(t.First.EntropyBits - t.Second.EntropyBits)), Is.LessThanOrEqualTo(1e-4), "entropy");
        var st = dec.Stats!;
        TestContext.Out.WriteLine($"{draftKind ?? "lookup"} gamma {gamma} drafts {drafts}: {st.TokensPerTargetPass:F2} tokens/pass, acceptance {st.AcceptanceRate:P1} [{string.Join(" ", st.AcceptanceByPosition.Select(a => a.ToString("F2")))}]");
        Assert.That(st.GeneratedTokens, Is.EqualTo(n));
        Assert.That(st.TargetPasses, Is.LessThanOrEqualTo(n));
        if (draftKind is "q8_0" or "q4_0") Assert.That(st.TokensPerTargetPass, Is.GreaterThan(1.5), "a good draft saves target passes");
        // single-branch greedy steps verify on the backend (a step without drafts too: the backend's argmax is the token)
        if (drafts == 1) Assert.That(st.BackendVerifications, Is.EqualTo(st.TargetPasses), "verified by the backend");
    }

    [Test]
    public void Sampling_SameSeedSameTokens_AndStatsAreReported()
    {
        using var target = Model.Load(SharedData.Stories, Options);
        using var draftModel = Model.Load(Draft("q4_0"), Options);
        int[] Run()
        {
            using var ts = target.CreateSession();
            using var ds = draftModel.CreateSession();
            var dec = new SpeculativeDecoder(ts, ds, new SpeculativeSettings { Gamma = 4, Drafts = 2 });
            return dec.Generate(Prompt, new GenerationSettings { MaxTokens = Tokens / 2, Sampling = new SamplingSettings { Temperature = 1, TopK = 0, TopP = 1, MinP = 0, Seed = 9 } })
                .Select(t => t.Id).ToArray();
        }
        var a = Run();
        Assert.That(a, Has.Length.EqualTo(Tokens / 2));
        Assert.That(Run(), Is.EqualTo(a));
    }

    [Test]
    public void EntropyAdaptive_ThresholdZeroIsLarge_InfiniteIsSmall_BetweenMixes()
    {
        using var large = Model.Load(SharedData.Stories, Options);
        using var small = Model.Load(Draft("random"), Options);
        int n = Tokens / 2;
        var expectLarge = Plain(large, Prompt, n);
        var expectSmall = Plain(small, Prompt, n);
        (int[] Ids, DecodingStats Stats) Run(double tau)
        {
            using var ls = large.CreateSession();
            using var ss = small.CreateSession();
            var ead = new EntropyAdaptiveDecoder(ls, ss, new EntropyAdaptiveSettings { ThresholdBits = tau, Window = 2, MinStay = 2 });
            var ids = ead.Generate(Prompt, new GenerationSettings { MaxTokens = n, Sampling = SamplingSettings.Greedy }).Select(t => t.Id).ToArray();
            return (ids, ead.Stats!);
        }
        var zero = Run(0);
        Assert.That(zero.Ids, Is.EqualTo(expectLarge));
        Assert.That(zero.Stats.LargeModelFraction, Is.EqualTo(1));
        var inf = Run(double.PositiveInfinity);
        Assert.That(inf.Ids, Is.EqualTo(expectSmall));
        Assert.That(inf.Stats.LargeModelFraction, Is.EqualTo(0));
        Assert.That(inf.Stats.Switches, Is.EqualTo(0));
        // The random small model's entropy sits near log2(512) = 9 bits; a threshold inside its range mixes.
        var entropies = new List<double>();
        using (var ss = small.CreateSession())
            foreach (var t in ss.Generate(Prompt, new GenerationSettings { MaxTokens = n, Sampling = SamplingSettings.Greedy })) entropies.Add(t.EntropyBits);
        double median = entropies.Order().ElementAt(entropies.Count / 2);
        var mid = Run(median);
        TestContext.Out.WriteLine($"threshold {median:F4} bits: large fraction {mid.Stats.LargeModelFraction:P0}, switches {mid.Stats.Switches}");
        Assert.That(mid.Stats.LargeModelFraction, Is.GreaterThan(0).And.LessThan(1));
        Assert.That(mid.Stats.Switches, Is.GreaterThan(0));
        Assert.That(mid.Ids, Has.Length.EqualTo(n));
    }

    [Test]
    public void PromptLookup_FindsTheLatestEarlierMatch()
    {
        var drafts = new int[1, 4];
        int n = SpeculativeDecoder.Lookup([5, 6, 7, 8, 9, 5, 6, 7, 1, 2, 5, 6], 2, 4, drafts);
        Assert.That(n, Is.EqualTo(4));
        Assert.That(Enumerable.Range(0, 4).Select(i => drafts[0, i]), Is.EqualTo(new[] { 7, 1, 2, 5 }));
        Assert.That(SpeculativeDecoder.Lookup([1, 2, 3], 3, 4, drafts), Is.EqualTo(0));
    }
}

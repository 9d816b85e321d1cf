using KernelEngine.Decoding;
using NUnit.Framework;

namespace KernelEngine.Tests.Hardening;

/// <summary>
/// Every decoding loop runs under one generator, so they stop and report the same way: context full, stop strings
/// that span tokens, end tokens, prefill stats. (Speculative, lookup and entropy-adaptive loops used to report
/// "maxtokens" at a full context, catch stop strings only inside one token and show prefill 0 tok/s.)
/// </summary>
public sealed class LoopConsistencyTests
{
    private static Model Stories(int ctx) => Model.Load(SharedData.Stories, new ModelOptions { ContextLength = ctx });

    /// <summary>Runs a loop: "plain", "lookup" (prompt lookup), "speculative" (a second stories260K as the draft), "ead".</summary>
    private static (List<GeneratedToken> Tokens, GenerationStats Stats) Run(string loop, int ctx, int[] prompt, GenerationSettings settings)
    {
        using var m = Stories(ctx);
        using var s = m.CreateSession();
        using var m2 = loop is "speculative" or "ead" ? Stories(ctx) : null;
        using var s2 = m2?.CreateSession();
        IEnumerable<GeneratedToken> stream = loop switch
        {
            "plain" => s.Generate(prompt, settings),
            "lookup" => new SpeculativeDecoder(s, null, new SpeculativeSettings { LookupNgram = 3, Gamma = 4 }).Generate(prompt, settings),
            "speculative" => new SpeculativeDecoder(s, s2, new SpeculativeSettings { Gamma = 3 }).Generate(prompt, settings),
            _ => new EntropyAdaptiveDecoder(s, s2!, new EntropyAdaptiveSettings { ThresholdBits = 1.0 }).Generate(prompt, settings),
        };
        var tokens = stream.ToList();
        return (tokens, s.LastStats!);
    }

    private static readonly string[] Loops = ["plain", "lookup", "speculative", "ead"];
    private static readonly GenerationSettings Greedy = new() { MaxTokens = 1000, Sampling = SamplingSettings.Greedy, StopAtEos = false };

    [TestCaseSource(nameof(Loops))]
    public void ContextFull_IsReportedTheSameByEveryLoop(string loop)
    {
        int[] prompt = [1, 403, 407, 261, 378];
        var (tokens, stats) = Run(loop, 40, prompt, Greedy);
        Assert.That(stats.StopReason, Is.EqualTo(StopReason.ContextFull));
        // The context holds 40 tokens; the last generated one never needs to be fed.
        Assert.That(prompt.Length + tokens.Count, Is.EqualTo(41));
        Assert.That(stats.GeneratedTokens, Is.EqualTo(tokens.Count));
        Assert.That(tokens.Select(t => t.Id), Is.EqualTo(Run("plain", 40, prompt, Greedy).Tokens.Select(t => t.Id)), "greedy output is the same in every loop");
        Assert.That(stats.PrefillSeconds, Is.GreaterThan(0));
        Assert.That(stats.PrefillTokensPerSecond, Is.GreaterThan(0));
        if (loop != "plain") Assert.That(stats.Loop, Is.Not.Null);
    }

    [TestCaseSource(nameof(Loops))]
    public void StopStringAcrossTokens_StopsEveryLoop(string loop)
    {
        int[] prompt = [1];
        var full = Run("plain", 200, prompt, Greedy with { MaxTokens = 60 }).Tokens;
        string text = string.Concat(full.Select(t => t.Text));
        // A stop string that starts inside one token's text and ends inside a later one.
        int k = Enumerable.Range(10, full.Count - 12).First(i => full[i].Text.Length >= 2 && full[i + 1].Text.Length >= 1);
        int start = string.Concat(full.Take(k).Select(t => t.Text)).Length + full[k].Text.Length - 1;
        string stop = text.Substring(start, 2);
        Assume.That(full.Take(k).Sum(t => t.Text.Length) + full[k].Text.Length - 1, Is.EqualTo(text.IndexOf(stop, StringComparison.Ordinal)), "the stop string first occurs there");
        var (tokens, stats) = Run(loop, 200, prompt, Greedy with { MaxTokens = 60, StopStrings = [stop] });
        Assert.That(stats.StopReason, Is.EqualTo(StopReason.StopString), loop);
        Assert.That(tokens.Count, Is.EqualTo(k + 2), $"{loop}: stops at the token that completes '{stop}'");
    }

    [TestCaseSource(nameof(Loops))]
    public void EndToken_EndsEveryLoopAndIsCountedNotEmitted(string loop)
    {
        int[] prompt = [1];
        var full = Run("plain", 200, prompt, Greedy with { MaxTokens = 40 }).Tokens;
        int eosAt = 12, eos = full[eosAt].Id;
        if (full.Take(eosAt).Any(t => t.Id == eos)) Assert.Ignore("the chosen token occurs earlier");
        // Make that token an end token by giving the model a generation_config.json that lists it.
        using var m = new TempModel(SharedData.Stories);
        File.WriteAllText(Path.Combine(m.Dir, "generation_config.json"), $"{{\"eos_token_id\": [2, {eos}]}}");
        using var model = Model.Load(m.Dir, new ModelOptions { ContextLength = 200 });
        using var s = model.CreateSession();
        using var m2 = loop is "speculative" or "ead" ? Model.Load(m.Dir, new ModelOptions { ContextLength = 200 }) : null;
        using var s2 = m2?.CreateSession();
        var settings = new GenerationSettings { MaxTokens = 40, Sampling = SamplingSettings.Greedy };
        IEnumerable<GeneratedToken> stream = loop switch
        {
            "plain" => s.Generate(prompt, settings),
            "lookup" => new SpeculativeDecoder(s, null, new SpeculativeSettings { LookupNgram = 3 }).Generate(prompt, settings),
            "speculative" => new SpeculativeDecoder(s, s2, new SpeculativeSettings { Gamma = 3 }).Generate(prompt, settings),
            _ => new EntropyAdaptiveDecoder(s, s2!, new EntropyAdaptiveSettings()).Generate(prompt, settings),
        };
        var tokens = stream.ToList();
        Assert.That(s.LastStats!.StopReason, Is.EqualTo(StopReason.Eos));
        Assert.That(tokens.Select(t => t.Id), Is.EqualTo(full.Take(eosAt).Select(t => t.Id)));
        Assert.That(s.LastStats.GeneratedTokens, Is.EqualTo(eosAt + 1));
    }
}

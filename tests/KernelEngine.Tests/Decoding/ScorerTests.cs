using System.Text;
using KernelEngine.Decoding;
using KernelEngine.Tests.Cli;
using NUnit.Framework;

namespace KernelEngine.Tests.Decoding;

public sealed class ScorerTests
{
    private static string StoryFile()
    {
        string path = TestScratch.Path("story.txt");
        File.WriteAllBytes(path, Encoding.UTF8.GetBytes(Reference.Stories().BosGreedyText));
        return path;
    }

    [Test]
    public void Stories260K_ReferenceText_NllAndBitsPerByte()
    {
        using var model = Model.Load(SharedData.Stories);
        string text = Scorer.ReadText(StoryFile());
        Assert.That(Encoding.UTF8.GetByteCount(text), Is.EqualTo(565));
        Assert.That(Scorer.TokensOf(model, text), Is.EqualTo(Reference.Stories().BosGreedyIds), "re-encodes to the same 257 ids");
        var r = Scorer.Score(model, text);
        Assert.That(r.TokenCount, Is.EqualTo(256));
        Assert.That(r.MeanNll, Is.EqualTo(0.45735).Within(1e-4), "float64 reference");
        Assert.That(r.BitsPerByte, Is.EqualTo(0.2990).Within(1e-4));
        Assert.That(r.Windows, Is.EqualTo(1));
    }

    [Test]
    public void SlidingWindow_EqualsOneWindowWhenTextFits()
    {
        using var model = Model.Load(SharedData.Stories);
        string text = Reference.Stories().BosGreedyText;
        var one = Scorer.Score(model, text);
        var slid = Scorer.Score(model, text, new ScoreOptions { Context = 300, Stride = 7 });
        Assert.That(slid.Windows, Is.EqualTo(1));
        Assert.That(slid.Tokens.Select(t => t.LogProb), Is.EqualTo(one.Tokens.Select(t => t.LogProb)));
    }

    [Test]
    public void SlidingWindow_ScoresEachTokenOnceWithTheContextOfItsWindow()
    {
        using var model = Model.Load(SharedData.Stories);
        var tokens = Reference.Stories().BosGreedyIds;
        int ctx = 64, stride = 24;
        var r = Scorer.ScoreTokens(model, tokens, 565, new ScoreOptions { Context = ctx, Stride = stride });
        Assert.That(r.Tokens.Select(t => t.Position), Is.EqualTo(Enumerable.Range(1, 256)), "each target exactly once, in order");
        Assert.That(r.Windows, Is.GreaterThan(1));
        // Independent check: the window a target falls in is the first whose end passes it; recompute its log-prob
        // from scratch with exactly that window's tokens before it.
        using var s = model.CreateSession();
        foreach (int target in new[] { 1, 63, 64, 65, 100, 150, 255, 256 })
        {
            int begin = 0;
            while (Math.Min(begin + ctx, tokens.Length) <= target) begin += stride;
            s.Reset();
            var logits = s.Feed(tokens.AsSpan(begin, target - begin)).ToArray();
            double lse = Math.Log(logits.Sum(v => Math.Exp(v - logits.Max()))) + logits.Max();
            Assert.That(r.Tokens[target - 1].LogProb, Is.EqualTo(logits[tokens[target]] - lse).Within(1e-4), $"target {target}");
            Assert.That(r.Tokens[target - 1].ContextTokens, Is.EqualTo(target - begin));
            Assert.That(target - begin, Is.LessThanOrEqualTo(ctx - 1));
        }
    }

    [Test]
    public void KlAgainstItself_IsZero_AndSavedBaseGivesTheSameReport()
    {
        using var model = Model.Load(SharedData.Stories);
        var tokens = Reference.Stories().BosGreedyIds;
        var r = Scorer.ScoreTokens(model, tokens, 565, baseModel: model);
        Assert.That(r.MeanKl, Is.EqualTo(0).Within(1e-6));
        Assert.That(r.Top1Agreement, Is.EqualTo(1));
        Assert.That(r.PerplexityRatio, Is.EqualTo(1).Within(1e-6));
        string path = TestScratch.Path("base.safetensors");
        Scorer.ComputeBase(model, tokens).Save(path);
        var again = Scorer.ScoreTokens(model, tokens, 565, baseLogProbs: BaseLogProbs.Load(path));
        Assert.That(again.MeanKl, Is.EqualTo(r.MeanKl).Within(1e-9));
        File.Delete(path);
    }

    /// <summary>The streamed forms give the in-memory numbers: a base model scored in lockstep with the model, and base
    /// log-probs written row by row (SaveBase) and read back a row at a time (Load).</summary>
    [Test]
    public void StreamedBase_EqualsInMemoryBase()
    {
        string q8 = TestScratch.Path("stories-q8");
        string path = TestScratch.Path("base-streamed.safetensors");
        try
        {
            KernelEngine.Formats.ModelQuantizer.Quantize(SharedData.Stories, q8, new KernelEngine.Formats.QuantizeOptions { Type = KernelEngine.Kernels.WeightType.Q4_0, QuantizeEmbeddings = true });
            using var model = Model.Load(SharedData.Stories);
            using var baseModel = Model.Load(q8);
            var tokens = Reference.Stories().BosGreedyIds;
            var options = new ScoreOptions { Context = 64, Stride = 32 };
            var inMemory = Scorer.ScoreTokens(model, tokens, 565, options, baseLogProbs: Scorer.ComputeBase(baseModel, tokens, options));
            var lockstep = Scorer.ScoreTokens(model, tokens, 565, options, baseModel: baseModel);
            Scorer.SaveBase(baseModel, tokens, path, options);
            ScoreResult fromFile;
            using (var loaded = BaseLogProbs.Load(path))
            {
                Assert.That(loaded.LogProbs, Is.Null, "rows are read from the file");
                fromFile = Scorer.ScoreTokens(model, tokens, 565, options, baseLogProbs: loaded);
            }
            Assert.That(inMemory.MeanKl, Is.GreaterThan(1e-4), "the Q4_0 base differs");
            foreach (var other in new[] { lockstep, fromFile })
                for (int i = 0; i < inMemory.Tokens.Count; i++)
                {
                    Assert.That(other.Tokens[i].KlDivergence, Is.EqualTo(inMemory.Tokens[i].KlDivergence).Within(1e-6), $"token {i}");
                    Assert.That(other.Tokens[i].BaseLogProb, Is.EqualTo(inMemory.Tokens[i].BaseLogProb).Within(1e-6), $"token {i}");
                }
        }
        finally
        {
            File.Delete(path);
            if (Directory.Exists(q8)) Directory.Delete(q8, true);
        }
    }

    [Test]
    public void KlBetweenDifferentModels_IsPositive()
    {
        using var model = Model.Load(SharedData.Stories);
        var tokens = Reference.Stories().BosGreedyIds;
        // A base that is the same model at a shorter window is a different predictor for later tokens.
        var baseLp = Scorer.ComputeBase(model, tokens, new ScoreOptions { Context = 8, Stride = 4 });
        var r = Scorer.ScoreTokens(model, tokens, 565, baseLogProbs: baseLp);
        Assert.That(r.MeanKl, Is.GreaterThan(1e-3));
        Assert.That(r.KlPercentile(99), Is.GreaterThanOrEqualTo(r.KlPercentile(50)));
    }

    [Test]
    public void Cli_Score_JsonAndTrace_AndBadInputs()
    {
        string story = StoryFile();
        string trace = TestScratch.Path("trace.csv");
        var r = CliRunner.Run("score", "--model", SharedData.Stories, "--file", story, "--json", "--trace", trace);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        using var doc = System.Text.Json.JsonDocument.Parse(r.Stdout);
        Assert.That(doc.RootElement.GetProperty("tokens").GetInt32(), Is.EqualTo(256));
        Assert.That(doc.RootElement.GetProperty("mean_nll").GetDouble(), Is.EqualTo(0.45735).Within(1e-4));
        Assert.That(File.ReadAllLines(trace), Has.Length.EqualTo(257));

        string empty = TestScratch.Path("empty.txt");
        File.WriteAllBytes(empty, []);
        var e = CliRunner.Run("score", "--model", SharedData.Stories, "--file", empty);
        Assert.That(e.ExitCode, Is.Not.EqualTo(0));
        Assert.That(e.Stderr, Does.Contain("empty"));
        string bad = TestScratch.Path("bad.txt");
        File.WriteAllBytes(bad, [0x48, 0x69, 0xFF, 0xFE, 0x21]);
        var u = CliRunner.Run("score", "--model", SharedData.Stories, "--file", bad);
        Assert.That(u.ExitCode, Is.Not.EqualTo(0));
        Assert.That(u.Stderr, Does.Contain("not valid UTF-8"));
        var c = CliRunner.Run("score", "--model", SharedData.Stories, "--file", story, "--context", "4096");
        Assert.That(c.ExitCode, Is.Not.EqualTo(0));
        Assert.That(c.Stderr, Does.Contain("context 4096 is larger than the model's context length 512"));
    }
}

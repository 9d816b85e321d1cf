using NUnit.Framework;

namespace KernelEngine.Tests.Models;

/// <summary>tiny-random-gpt2 against ONNX Runtime GenAI's expected outputs and a float64 forward.</summary>
[TestFixture("cpu")]
[TestFixture("ilgpu-cpu")]
public sealed class Gpt2ReferenceTests(string device)
{
    [Test]
    public void GreedyContinuations_MatchOnnxRuntimeGenAi()
    {
        var reference = Gpt2Reference.Load();
        using var model = Model.Load(SharedData.Gpt2Tiny, new ModelOptions { Device = device });
        foreach (var (prompt, next) in reference.Cases)
        {
            using var session = model.CreateSession();
            var ids = session.Generate(prompt, new GenerationSettings { MaxTokens = next.Length, Sampling = KernelEngine.Decoding.SamplingSettings.Greedy, StopAtEos = false })
                .Select(t => t.Id).ToArray();
            Assert.That(ids, Is.EqualTo(next), $"prompt [{string.Join(",", prompt)}]");
        }
    }

    [Test]
    public void Logits_MatchFloat64Within1e4()
    {
        var reference = Gpt2Reference.Load();
        using var model = Model.Load(SharedData.Gpt2Tiny, new ModelOptions { Device = device });
        using var session = model.CreateSession();
        int vocab = model.Config.VocabSize, n = reference.LogitIds.Length;
        var all = new float[n * vocab];
        session.FeedAll(reference.LogitIds, all);
        double maxDiff = 0;
        for (int p = 0; p < n; p++)
            for (int v = 0; v < vocab; v++) maxDiff = Math.Max(maxDiff, Math.Abs(all[p * vocab + v] - reference.Logits[p][v]));
        Assert.That(maxDiff, Is.LessThanOrEqualTo(1e-4));
    }

    [Test]
    public void TokenIdsBeyondTheModelVocabulary_AreRefused()
    {
        using var model = Model.Load(SharedData.Gpt2Tiny, new ModelOptions { Device = device });
        using var session = model.CreateSession();
        var ids = session.EncodePrompt("Hello world");   // the full GPT-2 tokenizer gives ids >= 1000
        var e = Assert.Throws<InvalidRequestException>(() => session.Generate(ids, new GenerationSettings()).ToList());
        Assert.That(e!.Message, Does.Contain("outside the model's vocabulary"));
    }
}

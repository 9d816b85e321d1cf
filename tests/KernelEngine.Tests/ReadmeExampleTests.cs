using KernelEngine.Decoding;
using NUnit.Framework;

namespace KernelEngine.Tests;

/// <summary>The library example of README.md, compiled and run here so it cannot rot.</summary>
public sealed class ReadmeExampleTests
{
    [Test]
    public async Task ReadmeLibraryExample_Runs()
    {
        string modelDir = SharedData.Stories;
        var output = new System.Text.StringBuilder();
        // --- README example begins ---
        using var model = Model.Load(modelDir, new ModelOptions { Device = "auto" });
        using var session = model.CreateSession();
        var settings = new GenerationSettings
        {
            MaxTokens = 64,
            Sampling = new SamplingSettings { Temperature = 0.8f, TopK = 40, TopP = 0.95f, Seed = 1 },
            StopStrings = ["\n"],
        };
        await foreach (var token in session.GenerateAsync("Once upon a time", settings))
            output.Append(token.Text);             // token.Id, token.LogProb, token.EntropyBits too
        var stats = session.LastStats!;            // prompt/generated tokens, prefill and decode tok/s
        // --- README example ends ---
        Assert.That(output.Length, Is.GreaterThan(0));
        Assert.That(stats.GeneratedTokens, Is.InRange(1, 64));
    }
}

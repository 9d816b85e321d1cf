using KernelEngine.Chat;
using KernelEngine.Decoding;
using Microsoft.Extensions.AI;
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

    [Test]
    public async Task ReadmeBatchedExample_Runs()
    {
        using var model = Model.Load(SharedData.Stories);
        var output = new System.Text.StringBuilder();
        string[] prompts = ["Once upon a time", "Lily", "The sun"];
        var settings = new GenerationSettings { MaxTokens = 16, Sampling = SamplingSettings.Greedy };
        // --- README batched example begins ---
        await using var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = 8 });
        var requests = prompts.Select(p => batch.Submit(model.EncodePrompt(p), settings)).ToList();   // thread-safe; or GenerateAsync(text)
        foreach (var request in requests)
            await foreach (var t in request.Tokens) output.Append(t.Text);    // each sequence streams as it is decoded
        var stats = await requests[0].Completion;                            // GenerationStats, as Session.LastStats
        // --- README batched example ends ---
        Assert.That(output.Length, Is.GreaterThan(0));
        Assert.That(stats.GeneratedTokens, Is.InRange(1, 16));
    }

    [Test]
    public async Task ReadmeChatExample_Runs()
    {
        using var model = Model.Load(SharedData.Stories);
        var output = new System.Text.StringBuilder();
        // --- README chat example begins ---
        using var chat = model.CreateChat(new ChatSettings { SystemPrompt = "You are a storyteller." });
        await foreach (var text in chat.SendAsync("Tell me a story", new GenerationSettings { MaxTokens = 64 }))
            output.Append(text);
        var reply = chat.LastReply!;                // Text, FinishReason, Usage (prompt / completion / reused tokens), ToolCalls

        using IChatClient client = model.AsChatClient();   // Microsoft.Extensions.AI; services.AddChatClient(client) registers it
        var response = await client.GetResponseAsync("Hello!", new ChatOptions { MaxOutputTokens = 32, Temperature = 0 });
        // --- README chat example ends ---
        Assert.That(reply.Text, Is.EqualTo(output.ToString()));
        Assert.That(reply.Usage.CompletionTokens, Is.InRange(1, 64));
        Assert.That(response.Usage!.OutputTokenCount, Is.InRange(1, 32));
    }
}

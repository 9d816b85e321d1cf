using KernelEngine.Decoding;
using NUnit.Framework;

namespace KernelEngine.Tests.Models;

public sealed class ConcurrencyTests
{
    [Test]
    public async Task TwoSessionsConcurrently_SameTokensAsEachAlone()
    {
        using var model = Model.Load(SharedData.Stories);
        var a = new GenerationSettings { MaxTokens = 120, Sampling = new SamplingSettings { Temperature = 1, Seed = 1 } };
        var b = new GenerationSettings { MaxTokens = 120, Sampling = new SamplingSettings { Temperature = 0.7f, Seed = 2 } };
        async Task<int[]> Run(string prompt, GenerationSettings s)
        {
            using var session = model.CreateSession();
            var ids = new List<int>();
            await foreach (var t in session.GenerateAsync(prompt, s)) ids.Add(t.Id);
            return ids.ToArray();
        }
        var aloneA = await Run("Lily", a);
        var aloneB = await Run("Tom went", b);
        var both = await Task.WhenAll(Task.Run(() => Run("Lily", a)), Task.Run(() => Run("Tom went", b)));
        Assert.That(both[0], Is.EqualTo(aloneA));
        Assert.That(both[1], Is.EqualTo(aloneB));
        Assert.That(aloneA, Is.Not.EqualTo(aloneB));
    }

    [Test]
    public async Task Cancellation_StopsTheStream_WithOperationCanceledException()
    {
        using var model = Model.Load(SharedData.Stories);
        using var session = model.CreateSession();
        using var cts = new CancellationTokenSource();
        int n = 0;
        Exception? caught = null;
        try
        {
            await foreach (var t in session.GenerateAsync("", new GenerationSettings { MaxTokens = 200 }, cts.Token))
                if (++n == 5) cts.Cancel();
        }
        catch (Exception e) { caught = e; }
        Assert.That(caught, Is.InstanceOf<OperationCanceledException>());
        Assert.That(n, Is.EqualTo(5));
        Assert.That(session.LastStats!.StopReason, Is.EqualTo(StopReason.Cancelled));
        // The synchronous loop reports the cancellation instead of throwing.
        using var cts2 = new CancellationTokenSource();
        int m = 0;
        foreach (var t in session.Generate(session.EncodePrompt(""), new GenerationSettings { MaxTokens = 200 }, cancellationToken: cts2.Token))
            if (++m == 3) cts2.Cancel();
        Assert.That(m, Is.EqualTo(3));
        Assert.That(session.LastStats!.StopReason, Is.EqualTo(StopReason.Cancelled));
    }
}

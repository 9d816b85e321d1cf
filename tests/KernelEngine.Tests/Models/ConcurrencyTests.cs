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
    public async Task Cancellation_StopsTheStream()
    {
        using var model = Model.Load(SharedData.Stories);
        using var session = model.CreateSession();
        using var cts = new CancellationTokenSource();
        int n = 0;
        await foreach (var t in session.GenerateAsync("", new GenerationSettings { MaxTokens = 200 }, cts.Token))
            if (++n == 5) cts.Cancel();
        Assert.That(n, Is.EqualTo(5));
        Assert.That(session.LastStats!.StopReason, Is.EqualTo(StopReason.Cancelled));
    }
}

using KernelEngine.Decoding;
using NUnit.Framework;

namespace KernelEngine.Tests.Hardening;

/// <summary>
/// Lifetimes and misuse: a session after its model is disposed, a disposed session, one session used from two threads.
/// Each used to end in an access violation (exit 134), a NullReferenceException or silently wrong tokens.
/// </summary>
public sealed class LifetimeTests
{
    private static readonly GenerationSettings Greedy8 = new() { MaxTokens = 8, Sampling = SamplingSettings.Greedy };

    [TestCase("cpu")]
    [TestCase("ilgpu-cpu")]
    public void SessionAfterModelDispose_ThrowsObjectDisposed(string device)
    {
        var model = Model.Load(SharedData.Stories, new ModelOptions { Device = device, ContextLength = 64 });
        var session = model.CreateSession();
        var prompt = session.EncodePrompt("Once");
        session.Generate(prompt, Greedy8).ToList();
        model.Dispose();
        Assert.Throws<ObjectDisposedException>(() => session.Generate(prompt, Greedy8).ToList());
        Assert.Throws<ObjectDisposedException>(() => session.Feed([1, 2]));
        Assert.Throws<ObjectDisposedException>(() => _ = session.Position);
        Assert.Throws<ObjectDisposedException>(() => model.CreateSession());
        Assert.Throws<ObjectDisposedException>(() => _ = model.Config);
        Assert.Throws<ObjectDisposedException>(() => _ = model.Tokenizer);
        Assert.That(model.IsDisposed);
        session.Dispose();   // after the model: a no-op, not a crash
        model.Dispose();     // twice: a no-op
    }

    [Test]
    public void DisposedSession_EveryMemberThrowsObjectDisposed()
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 64 });
        var session = model.CreateSession();
        session.Dispose();
        var calls = new (string, Action)[]
        {
            ("Generate", () => session.Generate([1], Greedy8).ToList()),
            ("GenerateAsync", () => session.GenerateAsync("Once", Greedy8).ToBlockingEnumerable().ToList()),
            ("Feed", () => session.Feed([1])),
            ("FeedAll", () => session.FeedAll([1], new float[512])),
            ("FeedBranches", () => session.FeedBranches([1], 1, new float[512])),
            ("CommitBranch", () => session.CommitBranch(0, 1, [1])),
            ("NextTokenStats", () => session.NextTokenStats()),
            ("Rewind", () => session.Rewind(0)),
            ("Reset", () => session.Reset()),
            ("EncodePrompt", () => session.EncodePrompt("x")),
            ("Tokens", () => _ = session.Tokens),
            ("Position", () => _ = session.Position),
            ("Logits", () => _ = session.Logits.Length),
            ("LastStats", () => _ = session.LastStats),
            ("ContextLength", () => _ = session.ContextLength),
            ("BatchCapacity", () => _ = session.BatchCapacity),
        };
        foreach (var (name, call) in calls) Assert.Throws<ObjectDisposedException>(() => call(), name);
        session.Dispose();
        // The model is unaffected.
        using var other = model.CreateSession();
        Assert.That(other.Generate(other.EncodePrompt(""), Greedy8).Count(), Is.EqualTo(8));
    }

    [Test]
    public void ModelDisposedDuringAGeneration_KeepsItAliveUntilTheGenerationEnds()
    {
        var model = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 64 });
        using var session = model.CreateSession();
        var ids = new List<int>();
        foreach (var t in session.Generate(session.EncodePrompt(""), new GenerationSettings { MaxTokens = 32, Sampling = SamplingSettings.Greedy }))
        {
            ids.Add(t.Id);
            if (ids.Count == 4) model.Dispose();
        }
        Assert.That(ids, Is.EqualTo(Reference.Stories().BosGreedyIds.Skip(1).Take(32).ToArray()));
        Assert.Throws<ObjectDisposedException>(() => session.Feed([1]));
    }

    [TestCase("cpu")]
    [TestCase("ilgpu-cpu")]
    public void OneSessionFromTwoThreads_IsDetected(string device)
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { Device = device, ContextLength = 64 });
        using var session = model.CreateSession();
        // A generation being enumerated holds the session: any other call fails fast instead of corrupting its cache.
        using var e = session.Generate(session.EncodePrompt(""), Greedy8).GetEnumerator();
        Assert.That(e.MoveNext());
        var other = Task.Run(() => session.Feed([1]));
        var ex = Assert.Throws<AggregateException>(() => other.Wait())!.InnerException;
        Assert.That(ex, Is.InstanceOf<InvalidOperationException>());
        Assert.That(ex!.Message, Does.Contain("already in use"));
        Assert.Throws<InvalidOperationException>(() => session.Generate([1], Greedy8).ToList());
        while (e.MoveNext()) { }
        e.Dispose();
        // Finished: the session is free again.
        Assert.That(session.Generate(session.EncodePrompt(""), Greedy8).Count(), Is.EqualTo(8));
    }

    [Test]
    public void OneSessionHammeredByThreads_NeverGivesWrongTokens()
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 128 });
        using var session = model.CreateSession();
        var expected = Reference.Stories().BosGreedyIds.Skip(1).Take(24).ToArray();
        int ok = 0, refused = 0;
        Parallel.For(0, 16, new ParallelOptions { MaxDegreeOfParallelism = 4 }, _ =>
        {
            try
            {
                var ids = session.Generate([1], new GenerationSettings { MaxTokens = 24, Sampling = SamplingSettings.Greedy }).Select(t => t.Id).ToArray();
                Assert.That(ids, Is.EqualTo(expected));
                Interlocked.Increment(ref ok);
            }
            catch (InvalidOperationException) { Interlocked.Increment(ref refused); }
        });
        Assert.That(ok + refused, Is.EqualTo(16));
        Assert.That(ok, Is.GreaterThan(0));
    }

    [Test]
    public async Task CancelledPrefill_StopsWithinOneBatch()
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { PrefillBatch = 4 });
        using var session = model.CreateSession();
        var prompt = Enumerable.Range(0, 400).Select(i => 3 + i % 500).ToArray();
        using var cts = new CancellationTokenSource();
        // A watcher cancels once a batch is committed and notes where the prefill was at that moment.
        int atCancel = -1;
        var watcher = new Thread(() =>
        {
            var spin = new SpinWait();
            while (session.Position == 0) spin.SpinOnce(-1);
            atCancel = session.Position;
            cts.Cancel();
        }) { Priority = ThreadPriority.Highest };
        watcher.Start();
        var tokens = session.Generate(prompt, new GenerationSettings { MaxTokens = 4 }, cancellationToken: cts.Token).ToList();
        watcher.Join();
        Assert.That(tokens, Is.Empty);
        Assert.That(session.LastStats!.StopReason, Is.EqualTo(StopReason.Cancelled));
        Assert.That(session.Position, Is.LessThan(prompt.Length));
        Assert.That(session.Position, Is.LessThanOrEqualTo(atCancel + 8), "the prefill stops within a batch of the cancellation (one may finish between the read and the cancel)");
        Assert.That(session.Position % 4, Is.EqualTo(0), "only whole batches are committed");
        // Async: an already-cancelled token throws OperationCanceledException before any work.
        await Assert.ThrowsAsync<OperationCanceledException>(async () =>
        {
            await foreach (var _ in session.GenerateAsync(prompt, new GenerationSettings { MaxTokens = 4 }, cts.Token)) { }
        });
    }
}

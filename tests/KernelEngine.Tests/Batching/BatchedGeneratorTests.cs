using KernelEngine.Benchmarking;
using KernelEngine.Decoding;
using KernelEngine.Kernels;
using NUnit.Framework;

namespace KernelEngine.Tests.Batching;

/// <summary>
/// Continuous batching against the independent reference of each request run alone in a session: the same ids (greedy
/// and seeded sampling), stop reasons and text, with requests queued behind a full batch, long prompts prefilled in
/// chunks between decode steps, and KV pages returned when a sequence ends, is cancelled or its reader leaves.
/// </summary>
public sealed class BatchedGeneratorTests
{
    private static readonly string[] Prompts =
        ["Once upon a time", "Lily", "Tom went to the park and saw a big red ball. He", "The sun", "A big dog", "One day", "Sam and Mia", "The little bird"];

    private static GenerationSettings Settings(int i, int tokens) => new()
    {
        MaxTokens = tokens + i % 3,
        Sampling = i % 2 == 0 ? SamplingSettings.Greedy : new SamplingSettings { Temperature = 0.9f, TopK = 40, Seed = (ulong)i + 7 },
        StopStrings = i == 5 ? ["."] : [],
    };

    private static (int[] Ids, string Text, StopReason Reason) Alone(Model model, int i, int tokens, int[] prompt)
    {
        using var s = model.CreateSession();
        var t = s.Generate(prompt, Settings(i, tokens)).ToList();
        return (t.Select(x => x.Id).ToArray(), string.Concat(t.Select(x => x.Text)), s.LastStats!.StopReason);
    }

    private static async Task<(int[] Ids, string Text, StopReason Reason)> Batched(BatchedRequest r)
    {
        var t = new List<GeneratedToken>();
        await foreach (var x in r.Tokens) t.Add(x);
        return (t.Select(x => x.Id).ToArray(), string.Concat(t.Select(x => x.Text)), (await r.Completion).StopReason);
    }

    /// <param name="maxBatch">3: five of the eight requests wait in the queue at first</param>
    [TestCase("stories260K", 8, "cpu")]
    [TestCase("stories260K", 3, "cpu")]
    [TestCase("llama-tiny", 8, "cpu")]
    [TestCase("gemma2-tiny", 8, "cpu")]
    [TestCase("stories260K", 4, "ilgpu-cpu")]
    public async Task ConcurrentRequests_GiveWhatEachGetsAlone(string source, int maxBatch, string device)
    {
        // A prefill batch of 4: the longer prompts take several chunks, interleaved with the others' decode steps.
        string folder = source == "stories260K" ? SharedData.Stories : Presets.Materialize(source, WeightType.F32, TestScratch.Path("batching"));
        using var model = Model.Load(folder, new ModelOptions { Device = device, ContextLength = 96, PrefillBatch = 4 });
        int tokens = device == "cpu" ? 40 : 10;
        using var s0 = model.CreateSession();
        var prompts = Prompts.Select(p => source == "stories260K" ? s0.EncodePrompt(p) : TokensOf(p, model.Config.VocabSize)).ToArray();
        var alone = Enumerable.Range(0, Prompts.Length).Select(i => Alone(model, i, tokens, prompts[i])).ToArray();
        Assert.That(alone.Select(a => string.Join(",", a.Ids)).Distinct().Count(), Is.GreaterThan(Prompts.Length / 2), "the requests do different work");

        await using var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = maxBatch });
        var requests = Enumerable.Range(0, Prompts.Length).Select(i => batch.Submit(prompts[i], Settings(i, tokens))).ToArray();
        var results = await Task.WhenAll(requests.Select(Batched));
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.That(results[i].Ids, Is.EqualTo(alone[i].Ids), $"request {i} ids");
            Assert.That(results[i].Text, Is.EqualTo(alone[i].Text), $"request {i} text");
            Assert.That(results[i].Reason, Is.EqualTo(alone[i].Reason), $"request {i} stop reason");
        }
        var stats = batch.Stats;
        Assert.That((stats.Active, stats.Queued, stats.KvPagesInUse), Is.EqualTo((0, 0, 0)), "everything released");
        Assert.That(stats.Steps, Is.LessThan(Prompts.Length * (tokens + 2)), "decode steps were shared");
    }

    private static int[] TokensOf(string text, int vocab) => [1, .. text.Select(c => 3 + c % (vocab - 3))];

    /// <summary>stories260K on ILGPU's CPU accelerator (a simulator: tens of ms per token), for the cases that must act
    /// while a generation still runs, however fast the machine.</summary>
    private static Model Slow() => Model.Load(SharedData.Stories, new ModelOptions { Device = "ilgpu-cpu", ContextLength = 256 });

    /// <summary>The steady-state counters `ke bench --parallel` reports from: only iterations that decode a full batch and
    /// prefill nothing count. Sequences join one prefill per iteration (a prompt's first token comes from its prefill, its
    /// second from the same iteration's decode step), so of sequence 0's tg − 1 iterations the first 3 are not full:
    /// at most tg − 4 count; a batch that never fills counts none.</summary>
    [Test]
    public async Task FullBatchSteps_CountOnlyIterationsThatDecodeAFullBatchAndPrefillNothing()
    {
        using var model = Slow();   // every request is queued long before the first prefill ends, however fast the machine
        const int tg = 12;
        var settings = new GenerationSettings { MaxTokens = tg, StopAtEos = false, Sampling = SamplingSettings.Greedy };
        foreach (int maxBatch in new[] { 3, 4 })
        {
            await using var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = maxBatch, KvPageSize = 16 });
            var sw = System.Diagnostics.Stopwatch.StartNew();
            var requests = Enumerable.Range(0, 3).Select(i => batch.Submit([1 + i], settings)).ToArray();
            foreach (var r in requests) Assert.That((await r.Completion).GeneratedTokens, Is.EqualTo(tg));
            double wall = sw.Elapsed.TotalSeconds;
            var stats = batch.Stats;
            while (stats.Active > 0) { await Task.Delay(1); stats = batch.Stats; }
            if (maxBatch == 4)
            {
                Assert.That(stats.FullBatchSteps, Is.Zero, "3 sequences never fill a batch of 4");
                Assert.That(stats.FullBatchSeconds, Is.Zero);
                continue;
            }
            Assert.That(stats.FullBatchSteps, Is.InRange(1, tg - 4), "3 prefills (one per iteration) before all 3 decode together");
            Assert.That(stats.FullBatchSeconds, Is.GreaterThan(0).And.LessThan(wall));
            Assert.That(stats.Steps, Is.GreaterThanOrEqualTo(stats.FullBatchSteps + 3 + 2), "prefills and the ramp are counted in Steps only");
        }
    }

    [Test]
    public async Task ReaderThatLeaves_FreesItsPagesAndTheOthersGoOn()
    {
        using var model = Slow();
        await using var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = 4, KvPageSize = 16 });
        var settings = new GenerationSettings { MaxTokens = 40, StopAtEos = false, Sampling = SamplingSettings.Greedy };
        var leaver = batch.Submit(model.EncodePrompt("Once upon a time", true), settings);
        var stayer = batch.Submit(model.EncodePrompt("Lily", true), settings);
        int read = 0;
        await foreach (var _ in leaver.Tokens) if (++read == 3) break;
        Assert.That((await leaver.Completion).StopReason, Is.EqualTo(StopReason.Cancelled));
        var rest = await Batched(stayer);
        Assert.That(rest.Ids, Has.Length.EqualTo(40), "the other sequence ran to its budget");
        Assert.That(batch.Stats.KvPagesInUse, Is.EqualTo(0));
    }

    [Test]
    public async Task CancelledToken_EndsTheStreamWithOperationCanceled_AndFreesPages()
    {
        using var model = Slow();
        await using var batch = new BatchedGenerator(model);
        using var cts = new CancellationTokenSource();
        var r = batch.Submit(model.EncodePrompt("Once", true), new GenerationSettings { MaxTokens = 250, StopAtEos = false }, cts.Token);
        var ex = Assert.ThrowsAsync<OperationCanceledException>(async () =>
        {
            int n = 0;
            await foreach (var _ in r.Tokens) if (++n == 2) cts.Cancel();
        });
        Assert.That(ex, Is.Not.Null);
        Assert.That((await r.Completion).StopReason, Is.EqualTo(StopReason.Cancelled));
        for (int i = 0; i < 200 && batch.Stats.KvPagesInUse > 0; i++) await Task.Delay(10);
        Assert.That(batch.Stats.KvPagesInUse, Is.EqualTo(0));
    }

    /// <summary>On ILGPU's CPU accelerator (tens of ms per token), so the running request is still running when the
    /// queue is tested, however loaded the machine.</summary>
    [Test]
    public void FullQueue_BadRequests_AreTypedErrors()
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { Device = "ilgpu-cpu", ContextLength = 64 });
        using var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = 1, MaxQueue = 1 });
        var long_ = new GenerationSettings { MaxTokens = 60, StopAtEos = false };
        var first = batch.Submit([1, 2, 3], long_);
        var second = batch.Submit([1, 2, 3], long_);
        // one running (or about to), one queued: a third is refused until one ends
        var full = Assert.Throws<QueueFullException>(() => batch.Submit([1, 2, 3], long_));
        Assert.That(full!.Message, Does.Contain("MaxQueue 1"));
        Assert.That(Assert.Throws<InvalidRequestException>(() => batch.Submit(new int[64], long_))!.Message, Does.Contain("context length 64"));
        Assert.That(Assert.Throws<InvalidRequestException>(() => batch.Submit([1, 999_999], long_))!.Message, Does.Contain("999999"));
        Assert.That(Assert.Throws<InvalidRequestException>(() => batch.Submit([], long_))!.Message, Does.Contain("empty prompt"));
        first.Cancel(); second.Cancel();
        Assert.That(Task.WaitAll([first.Completion, second.Completion], TimeSpan.FromSeconds(30)), Is.True);
        Assert.Throws<InvalidRequestException>(() => new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = 17 }));
    }

    [Test]
    public async Task Dispose_WithRequestsRunningAndQueued_CancelsThemAndReturns()
    {
        using var model = Slow();
        var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = 1 });
        var settings = new GenerationSettings { MaxTokens = 250, StopAtEos = false };
        var running = batch.Submit([1, 2, 3], settings);
        var queued = batch.Submit([1, 4, 5], settings);
        await foreach (var _ in running.Tokens) break;
        var dispose = Task.Run(batch.Dispose);
        Assert.That(dispose.Wait(TimeSpan.FromSeconds(30)), Is.True, "Dispose returned");
        Assert.That((await queued.Completion).StopReason, Is.EqualTo(StopReason.Cancelled));
        Assert.That((await running.Completion).StopReason, Is.EqualTo(StopReason.Cancelled));
        Assert.Throws<ObjectDisposedException>(() => batch.Submit([1], settings));
    }

    /// <summary>
    /// A request whose prompt starts with whole prefill chunks a running sequence already holds copies those positions
    /// from its cache (prefix sharing in flight); one that comes after the sequence ended takes its kept cache. Both get
    /// exactly what they get alone.
    /// </summary>
    [TestCase("cpu")]
    [TestCase("ilgpu-cpu")]
    public async Task SharedPromptPrefix_IsCopiedFromARunningSequence_OrTakenFromAKeptCache_WithTheSameTokens(string device)
    {
        // the first request's budget (490 steps) outlasts the second's (about 14) whatever the machine's speed
        using var model = Model.Load(SharedData.Stories, new ModelOptions { Device = device, ContextLength = 512, PrefillBatch = 4 });
        using var s0 = model.CreateSession();
        int[] system = s0.EncodePrompt("Tom went to the park and saw a big red ball. He");
        int[] first = [.. system, .. s0.EncodePrompt(" ran", addBos: false)];
        int[] second = [.. system, .. s0.EncodePrompt(" was happy", addBos: false)];
        int[] third = [.. system, .. s0.EncodePrompt(" Lily", addBos: false)];
        int sharedChunks = system.Length / 4 * 4;
        Assert.That(sharedChunks, Is.GreaterThanOrEqualTo(8), "the prompts share whole chunks");
        var greedy = new GenerationSettings { MaxTokens = 12, Sampling = SamplingSettings.Greedy, StopAtEos = false };
        int[] Alone(int[] prompt)
        {
            using var s = model.CreateSession();
            return s.Generate(prompt, greedy).Select(t => t.Id).ToArray();
        }
        var expectSecond = Alone(second);
        var expectThird = Alone(third);

        await using var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = 4 });
        using var stopFirst = new CancellationTokenSource();
        var running = batch.Submit(first, new GenerationSettings { MaxTokens = 490, StopAtEos = false }, stopFirst.Token);
        // the first token: its prompt is in its cache now; it goes on decoding (the reader stays: leaving would cancel it)
        var reader = running.Tokens.GetAsyncEnumerator();
        Assert.That(await reader.MoveNextAsync(), Is.True);
        var r2 = batch.Submit(second, greedy);
        var (ids2, _, _) = await Batched(r2);
        var stats2 = await r2.Completion;
        Assert.That(ids2, Is.EqualTo(expectSecond), "tokens with a prefix copied from the running sequence");
        Assert.That(stats2.ReusedPromptTokens, Is.EqualTo(sharedChunks), "whole chunks copied, the rest prefilled");
        Assert.That(batch.Stats.SharedPrefixPositions, Is.EqualTo(sharedChunks));
        Assert.That(running.Completion.IsCompleted, Is.False, "the first request is still running");

        stopFirst.Cancel();
        Assert.That((await running.Completion).StopReason, Is.EqualTo(StopReason.Cancelled));
        await reader.DisposeAsync();
        var r3 = batch.Submit(third, greedy);
        var (ids3, _, _) = await Batched(r3);
        Assert.That(ids3, Is.EqualTo(expectThird), "tokens with a prefix from a kept cache");
        Assert.That((await r3.Completion).ReusedPromptTokens, Is.EqualTo(sharedChunks));
        Assert.That(batch.Stats.SharedPrefixPositions, Is.EqualTo(sharedChunks), "nothing running to copy from: the kept cache served");
    }
    /// <summary>
    /// Copy-on-write prefix sharing: requests whose prompts start with a long system prompt a running sequence holds map
    /// its pages (no copy, no pages of their own for it: <see cref="BatchedGeneratorStats.KvPagesShared"/>), get exactly
    /// the tokens they get alone, and give the pages back when they end; the caches kept afterwards serve later requests.
    /// </summary>
    [Test]
    public async Task LongSharedPrefix_IsMappedFromARunningSequence_WithTheSameTokens_AndNoPagesOfItsOwn()
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 512, PrefillBatch = 4 });
        if (model.Backend.KvShareGranuleBytes == 0) Assert.Ignore("this OS cannot share pages between buffers (Linux memfd): prefixes are copied (the test above)");
        using var s0 = model.CreateSession();
        int rowBytes = model.Config.KvDim * 4, granule = model.Backend.KvShareGranuleBytes / (int)System.Numerics.BigInteger.GreatestCommonDivisor(rowBytes, model.Backend.KvShareGranuleBytes);
        string text = "Tom went to the park and saw a big red ball. He was very happy and wanted to play with it.";
        while (s0.EncodePrompt(text).Length < 3 * granule + 8) text += " Lily came to play with Tom and they had fun in the sun.";
        int[] system = s0.EncodePrompt(text);
        int[] Prompt(string tail) => [.. system, .. s0.EncodePrompt(tail, addBos: false)];
        string[] tails = [" ran", " was happy", " Lily", " saw a dog", " said hi"];
        // positions request i shares with the first: whole prefill chunks of their common prefix (the tails may share a token)
        int Shared(int i) => Prompt(tails[0]).Zip(Prompt(tails[i])).TakeWhile(p => p.First == p.Second).Count() / 4 * 4;
        int mapped = Shared(1) / granule * granule;
        Assert.That(mapped, Is.GreaterThanOrEqualTo(3 * granule));
        const int page = 16;
        var greedy = new GenerationSettings { MaxTokens = 12, Sampling = SamplingSettings.Greedy, StopAtEos = false };
        int[] Alone(int[] prompt)
        {
            using var s = model.CreateSession();
            return s.Generate(prompt, greedy).Select(t => t.Id).ToArray();
        }
        var expected = tails.Select(t => Alone(Prompt(t))).ToArray();

        await using var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = 4, KvPageSize = page });
        var long_ = new GenerationSettings { MaxTokens = 300, StopAtEos = false };
        using var stop = new CancellationTokenSource();
        var first = batch.Submit(Prompt(tails[0]), long_, stop.Token);
        var firstReader = first.Tokens.GetAsyncEnumerator();
        Assert.That(await firstReader.MoveNextAsync(), Is.True);
        int firstPages = batch.Stats.KvPagesInUse;
        var second = batch.Submit(Prompt(tails[1]), long_, stop.Token);
        var secondReader = second.Tokens.GetAsyncEnumerator();
        Assert.That(await secondReader.MoveNextAsync(), Is.True);
        var both = batch.Stats;
        Assert.That(both.KvPagesShared, Is.EqualTo(mapped / page), "the second maps the first's pages of the system prompt");
        Assert.That(both.KvPagesInUse, Is.EqualTo(2 * firstPages - mapped / page), "and holds only the rest");

        var third = batch.Submit(Prompt(tails[2]), greedy);   // maps them too (through the second or the first)
        Assert.That((await Batched(third)).Ids, Is.EqualTo(expected[2]), "tokens after a mapped prefix");
        Assert.That((await third.Completion).ReusedPromptTokens, Is.EqualTo(Shared(2)));
        Assert.That(batch.Stats.SharedPrefixPositions, Is.EqualTo(Shared(1) + Shared(2)));

        stop.Cancel();
        await firstReader.DisposeAsync();
        await secondReader.DisposeAsync();
        await first.Completion; await second.Completion;
        while (batch.Stats.Active > 0) await Task.Delay(5);
        Assert.That(batch.Stats.KvPagesInUse, Is.Zero);
        Assert.That(batch.Stats.KvPagesShared, Is.Zero);

        // later requests: the first's kept cache (with its prompt) and the others' (given back, no prefix) serve them
        var later = new[] { 3, 4, 1 }.Select(i => (i, batch.Submit(Prompt(tails[i]), greedy))).ToList();
        foreach (var (i, r) in later) Assert.That((await Batched(r)).Ids, Is.EqualTo(expected[i]), $"later request {i}");
    }

    /// <summary>KV memory files (the pages other caches can map) back only caches whose prompt can lend or map a prefix: at
    /// least one whole prefill chunk, with <see cref="BatchedGeneratorOptions.ShareKvPages"/> on; other caches take
    /// transparent huge pages (<c>ZeroPages</c>). Counted as this process's open "ke-kv" memory files, two per cache.</summary>
    [Test]
    public async Task OnlyPromptsThatCanShareAPrefix_GetShareableKvMemory()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("reads /proc/self/fd");
        using var model = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 256, PrefillBatch = 4 });
        if (model.Backend.KvShareGranuleBytes == 0) Assert.Ignore("this OS cannot share pages between buffers (Linux memfd)");
        static int KvFiles() => Directory.GetFileSystemEntries("/proc/self/fd")
            .Count(f => { try { return new FileInfo(f).LinkTarget?.Contains("memfd:ke-kv", StringComparison.Ordinal) == true; } catch (IOException) { return false; } });
        int[] shortPrompt = [1, 400, 401], longPrompt = [1, 400, 401, 402, 403, 404, 405];   // below and above one chunk of 4
        var settings = new GenerationSettings { MaxTokens = 3, Sampling = SamplingSettings.Greedy, StopAtEos = false };
        int before = KvFiles();
        await using (var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = 2, KvPageSize = 16 }))
        {
            await batch.Submit(shortPrompt, settings).Completion;
            Assert.That(KvFiles() - before, Is.Zero, "a prompt shorter than a prefill chunk can neither lend nor map a prefix");
            await batch.Submit(longPrompt, settings).Completion;   // not the short one's kept cache: it holds no prefix to reuse
            Assert.That(KvFiles() - before, Is.EqualTo(2), "a prompt of whole chunks gets a shareable K and V");
            await batch.Submit(shortPrompt, settings).Completion;   // the kept huge-page cache serves it
            Assert.That(KvFiles() - before, Is.EqualTo(2));
        }
        Assert.That(KvFiles() - before, Is.Zero, "disposed with the generator");
        await using (var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = 2, KvPageSize = 16, ShareKvPages = false }))
        {
            await batch.Submit(longPrompt, settings).Completion;
            Assert.That(KvFiles() - before, Is.Zero, "ShareKvPages off: prefixes are copied, no cache needs shareable memory");
        }
    }
}

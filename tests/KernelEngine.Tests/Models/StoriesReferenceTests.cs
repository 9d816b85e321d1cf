using NUnit.Framework;

namespace KernelEngine.Tests.Models;

/// <summary>stories260K (a real pretrained Llama) against its independent float64 reference.</summary>
[TestFixture("cpu", false)]
[TestFixture("cpu", true)]
[TestFixture("ilgpu-cpu", false)]
[TestFixture("ilgpu-cpu", true)]
public sealed class StoriesReferenceTests(string device, bool f16Kv)
{
    private Model Load() => Model.Load(SharedData.Stories, new ModelOptions { Device = device, F16KvCache = f16Kv });

    [Test]
    public void GreedyFromBos_Reproduces256ReferenceIds()
    {
        var reference = Reference.Stories();
        using var model = Load();
        using var session = model.CreateSession();
        var tokens = session.Generate([1], new GenerationSettings { MaxTokens = 256, Sampling = KernelEngine.Decoding.SamplingSettings.Greedy }, atStartOfText: true).ToList();
        var ids = tokens.Select(t => t.Id).ToArray();
        Assert.That(ids, Is.EqualTo(reference.BosGreedyIds.Skip(1).ToArray()));
        Assert.That(string.Concat(tokens.Select(t => t.Text)), Is.EqualTo(reference.BosGreedyText));
    }

    /// <summary>The kernels a GPU runs (warp-per-row matvec, tiled GEMM, group reductions), simulated on ILGPU's CPU
    /// accelerator — which by default runs their per-element twins — keep the reference ids (the first few: the
    /// simulator pays an OS context switch per barrier and per simulated thread, seconds per token), in at most 4 launches
    /// per layer and 2 per decode step.</summary>
    [Test]
    public void GpuGroupKernels_OnTheCpuAccelerator_ReproduceTheFirstReferenceIds()
    {
        if (device != "ilgpu-cpu" || f16Kv) Assert.Ignore("the ILGPU group kernels, once");
        var reference = Reference.Stories();
        using var model = Load();
        ((KernelEngine.Backends.IlgpuBackend)model.Backend).GroupKernels = true;
        using var session = model.CreateSession();
        const int n = 4;
        var ids = session.Generate([1], new GenerationSettings { MaxTokens = n, Sampling = KernelEngine.Decoding.SamplingSettings.Greedy }, atStartOfText: true)
            .Select(t => t.Id).ToArray();
        Assert.That(ids, Is.EqualTo(reference.BosGreedyIds.Skip(1).Take(n).ToArray()));
        // a decode step is 4 launches per layer (norm+q/k/v+RoPE+KV store+attention, Wo+residual, norm+gate/up, down+residual)
        // and 2 (the embedding, the final norm with the LM head)
        long before = model.Backend.Launches;
        session.FeedOnDevice([ids[^1]]);
        Assert.That(model.Backend.Launches - before, Is.LessThanOrEqualTo(4 * model.Config.Layers + 2), "launches per decode step");
    }

    [Test]
    public void LogitsAtPositions012_MatchReferenceWithin1e4()
    {
        if (f16Kv) Assert.Ignore("F16 KV cache is checked by the greedy ids; logits to 1e-4 are an F32 claim");
        var reference = Reference.Stories();
        using var model = Load();
        using var session = model.CreateSession();
        var vocab = model.Config.VocabSize;
        var all = new float[3 * vocab];
        session.FeedAll(reference.BosGreedyIds.AsSpan(0, 3), all);
        for (int p = 0; p < 3; p++)
        {
            double maxDiff = 0;
            for (int i = 0; i < vocab; i++) maxDiff = Math.Max(maxDiff, Math.Abs(all[p * vocab + i] - reference.LogitsAtPos[p][i]));
            Assert.That(maxDiff, Is.LessThanOrEqualTo(1e-4), $"position {p}");
        }
    }

    [Test]
    public void BatchedPrefill_EqualsTokenByToken()
    {
        var reference = Reference.Stories();
        using var model = Load();
        var prompt = reference.BosGreedyIds.AsSpan(0, 40).ToArray();
        using var batched = model.CreateSession();
        using var single = model.CreateSession();
        int vocab = model.Config.VocabSize;
        var all = new float[prompt.Length * vocab];
        batched.FeedAll(prompt, all);
        double maxDiff = 0;
        for (int i = 0; i < prompt.Length; i++)
        {
            var logits = single.Feed(prompt.AsSpan(i, 1));
            for (int v = 0; v < vocab; v++) maxDiff = Math.Max(maxDiff, Math.Abs(logits[v] - all[i * vocab + v]));
        }
        // F16 cache: K/V from differently ordered F32 sums (prefill tiles vs one-row dots, whose order depends on the
        // SIMD width) round to neighbouring halves where the F32 values differ in the last bit, 1 ulp = 2^-11 relative;
        // through 5 layers that moves logits of magnitude ~5 by up to ~1e-2. The F32-cache case holds the 1e-4 claim.
        double tolerance = f16Kv ? 1.5e-2 : 1e-4;
        Assert.That(maxDiff, Is.LessThanOrEqualTo(tolerance));
        // and Feed (last row only, batched) agrees with the last row of FeedAll
        using var last = model.CreateSession();
        var l = last.Feed(prompt).ToArray();
        Assert.That(l.Zip(all.AsSpan((prompt.Length - 1) * vocab, vocab).ToArray(), (a, b) => Math.Abs(a - b)).Max(), Is.LessThanOrEqualTo(tolerance));
    }
}

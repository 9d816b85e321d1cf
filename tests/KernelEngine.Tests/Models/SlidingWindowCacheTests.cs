using KernelEngine.Benchmarking;
using KernelEngine.Decoding;
using KernelEngine.Kernels;
using NUnit.Framework;

namespace KernelEngine.Tests.Models;

/// <summary>
/// Sliding-window layers hold only their window plus one batch (KvCache.WindowRows): with a prefill batch of 8 and
/// Gemma's window of 16 that is 23 rows instead of the context's 160. Every case runs the same tokens through a
/// session whose batch covers the context (so nothing is ever dropped: the reference) and compares logits (1e-4: the
/// two take different prefill tilings) or greedy ids (equal). Gemma 2 mixes full and windowed layers 1:1, Gemma 3 5:1
/// with a RoPE base of their own for the windowed ones.
/// </summary>
public sealed class SlidingWindowCacheTests
{
    private const int Context = 160;

    private static Model Load(string preset, int batch, string device = "cpu") =>
        Model.Load(Presets.Materialize(preset, WeightType.F32, TestScratch.Path("families-unit")),
            new ModelOptions { Device = device, ContextLength = Context, PrefillBatch = batch });

    /// <summary>The same preset twice: a prefill batch of 8 (window-only cache) and one that covers the context (the
    /// reference), a session on each.</summary>
    private sealed class Pair : IDisposable
    {
        private readonly Model _windowed, _full;
        public Pair(string preset, string device = "cpu")
        {
            _windowed = Load(preset, 8, device);
            _full = Load(preset, Context, device);
            Windowed = _windowed.CreateSession();
            Full = _full.CreateSession();
        }
        public Session Windowed { get; }
        public Session Full { get; }
        public int Vocab => _windowed.Config.VocabSize;
        public void Dispose() { Windowed.Dispose(); Full.Dispose(); _windowed.Dispose(); _full.Dispose(); }
    }

    private static int[] Tokens(int n, int seed)
    {
        var rng = new Random(seed);
        return [1, .. Enumerable.Range(0, n - 1).Select(_ => rng.Next(3, 512))];
    }

    private static double MaxDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double d = 0;
        for (int i = 0; i < a.Length; i++) d = Math.Max(d, Math.Abs(a[i] - b[i]));
        return d;
    }

    [TestCase("gemma2-tiny", "cpu")]
    [TestCase("gemma3-tiny", "cpu")]
    [TestCase("gemma3-tiny", "ilgpu-cpu")]
    public void WindowOnlyCache_GivesTheFullCachesLogitsAndTokens(string preset, string device)
    {
        using var pair = new Pair(preset, device);
        var (sw, sf, vocab) = (pair.Windowed, pair.Full, pair.Vocab);
        var tokens = Tokens(150, 1);
        var a = new float[tokens.Length * vocab];
        var b = new float[tokens.Length * vocab];
        sw.FeedAll(tokens, a);
        sf.FeedAll(tokens, b);
        Assert.That(sw.Cache.WindowRows, Is.EqualTo(16 + 8 - 1));
        Assert.That(sw.Cache.Dropped, Is.GreaterThan(100), "the windowed layers dropped what is out of their window");
        Assert.That(sf.Cache.Dropped, Is.Zero);
        Assert.That(sw.Cache.Bytes, Is.LessThan(sf.Cache.Bytes * 0.75));
        Assert.That(MaxDiff(a, b), Is.LessThanOrEqualTo(1e-4));

        var settings = new GenerationSettings { MaxTokens = 40, Sampling = SamplingSettings.Greedy, StopAtEos = false };
        sw.Reset(); sf.Reset();
        var ids = sw.Generate(tokens[..100], settings).Select(t => t.Id).ToArray();
        var expected = sf.Generate(tokens[..100], settings).Select(t => t.Id).ToArray();
        Assert.That(ids, Is.EqualTo(expected));
        Assert.That(sw.Cache.Dropped, Is.GreaterThan(0));
    }

    /// <summary>A rewind to before what the windowed layers still hold runs the kept tokens again (prompt edits, a new
    /// prompt sharing a short prefix); one that stays inside the window keeps the cache.</summary>
    [Test]
    public void RewindPastTheWindow_RunsTheKeptTokensAgain()
    {
        using var pair = new Pair("gemma2-tiny");
        var (sw, sf, vocab) = (pair.Windowed, pair.Full, pair.Vocab);
        var tokens = Tokens(150, 2);
        var all = new float[150 * vocab];
        sf.FeedAll(tokens, all);
        var scratch = new float[150 * vocab];
        foreach (int rewind in new[] { 140, 40 })
        {
            sw.Reset();
            sw.FeedAll(tokens, scratch);
            int dropped = sw.Cache.Dropped;
            sw.Rewind(rewind);
            Assert.That(sw.Cache.Dropped, rewind >= dropped + 15 ? Is.EqualTo(dropped) : Is.Zero.Or.LessThan(dropped), $"rewind to {rewind}");
            var again = new float[(150 - rewind) * vocab];
            sw.FeedAll(tokens[rewind..], again);
            Assert.That(MaxDiff(again, all.AsSpan(rewind * vocab)), Is.LessThanOrEqualTo(1e-4), $"rewind to {rewind}");
        }
    }

    /// <summary>Context shift on a cache whose windowed layers dropped positions: they keep the last window − 1 positions
    /// after the shift (moved to the front, keys re-rotated with their own RoPE table on Gemma 3); the logits that
    /// follow are the full cache's after the same shift. A shift that would need kept positions the layers no longer
    /// hold is a request error.</summary>
    [TestCase("gemma2-tiny")]
    [TestCase("gemma3-tiny")]
    public void ContextShift_OnAWindowOnlyCache_MatchesTheFullCache(string preset)
    {
        using var pair = new Pair(preset);
        var (sw, sf, vocab) = (pair.Windowed, pair.Full, pair.Vocab);
        var tokens = Tokens(150, 3);
        var scratch = new float[150 * vocab];
        sw.FeedAll(tokens, scratch);
        sf.FeedAll(tokens, scratch);
        sw.ShiftContext(4, 60);
        sf.ShiftContext(4, 60);
        var more = Tokens(10, 4);
        var a = new float[10 * vocab];
        var b = new float[10 * vocab];
        sw.FeedAll(more, a);
        sf.FeedAll(more, b);
        Assert.That(sw.Cache.Dropped, Is.GreaterThan(0));
        Assert.That(MaxDiff(a, b), Is.LessThanOrEqualTo(1e-4));

        sw.Reset();
        sw.FeedAll(tokens, scratch);
        var e = Assert.Throws<InvalidRequestException>(() => sw.ShiftContext(4, 140));
        Assert.That(e!.Message, Does.Contain("sliding-window"));
    }

    /// <summary>Gemma 3's context shift re-rotates each layer's keys with its own RoPE table. Layer 0's keys depend only on
    /// the tokens, so after dropping tokens they must equal the keys of the kept tokens fed afresh: checked with layer 0
    /// local (base 10000, the default pattern) and, through layer_types, global (base 1e6).</summary>
    [TestCase(false)]
    [TestCase(true)]
    public void Gemma3_ContextShift_RotatesEachLayerKindWithItsOwnBase(bool layerZeroGlobal)
    {
        string folder = layerZeroGlobal
            ? ModelFamilyTests.ConfigVariant("gemma3-tiny", c => c["layer_types"] = new System.Text.Json.Nodes.JsonArray(
                "full_attention", "sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention", "full_attention"))
            : Presets.Materialize("gemma3-tiny", WeightType.F32, TestScratch.Path("families-unit"));
        using var model = Model.Load(folder, new ModelOptions { Device = "cpu", ContextLength = Context });
        Assert.That(model.Config.SlidingLayers![0], Is.EqualTo(!layerZeroGlobal));
        var tokens = Tokens(40, 5);
        int[] kept = [.. tokens[..2], .. tokens[12..]];
        var scratch = new float[40 * model.Config.VocabSize];
        using var shifted = model.CreateSession();
        using var fresh = model.CreateSession();
        shifted.FeedAll(tokens, scratch);
        shifted.ShiftContext(2, 10);
        fresh.FeedAll(kept, scratch);
        int kvDim = model.Config.KvDim;
        var a = new float[kept.Length * kvDim];
        var b = new float[kept.Length * kvDim];
        model.Backend.Read(shifted.Cache.K, (int)shifted.Cache.PositionRow(0), kept.Length, a);
        model.Backend.Read(fresh.Cache.K, (int)fresh.Cache.PositionRow(0), kept.Length, b);
        Assert.That(MaxDiff(a, b), Is.LessThanOrEqualTo(1e-5));
        Assert.That(b.Max(Math.Abs), Is.GreaterThan(0.1f), "the keys are not empty");
    }
}

using KernelEngine.Backends;
using KernelEngine.Kernels;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>
/// Copy-on-write KV prefix sharing (<see cref="KvCache.ShareFrom"/>): a cache maps whole pages of another's positions
/// instead of copying them. Checked against the values written (not against a second run of the same code): what the
/// mapped positions read, that writes on either side stay on their side, that mapped pages outlive their owner, and that
/// attention over a mapped prefix equals attention over the owner's cache exactly.
/// </summary>
public sealed class KvSharingTests
{
    private const int Layers = 2, KvDim = 64, Context = 300;
    private IBackend _b = null!;

    [OneTimeSetUp]
    public void Setup()
    {
        _b = TestBackends.Create("cpu");
        if (_b.KvShareGranuleBytes == 0) Assert.Ignore("this OS cannot share pages between buffers (Linux memfd): KV caches copy their prefixes instead");
    }
    [OneTimeTearDown] public void TearDown() => _b?.Dispose();

    private KvCache Cache(WeightType type = WeightType.F32, int context = Context) =>
        new(_b, Layers, context, KvDim, type, KvDim / 2, shareable: true);

    /// <summary>Writes distinct random rows at positions [start, start + count) of every layer; returns them per layer (K, V).</summary>
    private (float[] K, float[] V)[] Fill(KvCache c, int start, int count, int seed)
    {
        var rows = new (float[] K, float[] V)[Layers];
        for (int l = 0; l < Layers; l++)
        {
            rows[l] = (TestData.Random(count * KvDim, seed + 2 * l), TestData.Random(count * KvDim, seed + 2 * l + 1));
            using var k = _b.Tensor(rows[l].K, count, KvDim);
            using var v = _b.Tensor(rows[l].V, count, KvDim);
            _b.StoreKv(k, v, c, l, start, count);
        }
        return rows;
    }

    private float[] Read(KvCache c, bool keys, int layer, int position, int count)
    {
        var dst = new float[count * KvDim];
        _b.Read(keys ? c.K : c.V, (int)(c.PositionRow(layer) + position), count, dst);
        return dst;
    }

    private void AssertHolds(KvCache c, (float[] K, float[] V)[] rows, int start, int from, int count, string what)
    {
        for (int l = 0; l < Layers; l++)
        {
            Assert.That(Read(c, true, l, start, count), Is.EqualTo(rows[l].K.AsSpan(from * KvDim, count * KvDim).ToArray()), $"{what}: keys of layer {l}");
            Assert.That(Read(c, false, l, start, count), Is.EqualTo(rows[l].V.AsSpan(from * KvDim, count * KvDim).ToArray()), $"{what}: values of layer {l}");
        }
    }

    [Test]
    public void ShareFrom_MapsWholePages_CopyOnWrite_AndOutlivesTheOwner()
    {
        var owner = Cache();
        using var child = Cache();
        int granule = child.MapGranule;
        Assert.That(granule, Is.EqualTo(_b.KvShareGranuleBytes / 256), "positions of 64 F32 values per page");
        var written = Fill(owner, 0, 100, 1);

        int n = child.ShareFrom(_b, owner, 100);
        Assert.That(n, Is.EqualTo(100 / granule * granule), "whole pages only");
        Assert.That(child.MappedPositionCount, Is.EqualTo(n));
        Assert.That(owner.PinnedPositions, Is.EqualTo(n), "the owner must not rewrite what is mapped");
        AssertHolds(child, written, 0, 0, n, "mapped prefix");

        // the child's own positions after the prefix, and a write inside the mapped prefix (copied, not shared)
        var own = Fill(child, n, 20, 50);
        var overwrite = Fill(child, 3, 1, 70);
        AssertHolds(owner, written, 0, 0, 100, "the owner after the child wrote");
        AssertHolds(child, overwrite, 3, 0, 1, "the child's copy-on-write row");
        AssertHolds(child, written, 4, 4, n - 4, "the rest of the mapped prefix");
        AssertHolds(child, own, n, 0, 20, "the child's own rows");
        // the owner's writes after the prefix stay its own
        Fill(owner, 100, 30, 90);
        AssertHolds(child, own, n, 0, 20, "the child's own rows after the owner wrote its positions");

        owner.Dispose();
        AssertHolds(child, written, 4, 4, n - 4, "the mapped prefix after its owner was freed");
        child.Unshare(_b);
        Assert.That(child.MappedPositionCount, Is.Zero);
        Assert.That(Read(child, true, 1, 0, n), Is.All.EqualTo(0f), "unshared positions are the child's own zeroed pages");
        AssertHolds(child, own, n, 0, 20, "the child's own rows after unsharing");
    }

    [Test]
    public void ShareFrom_ACacheThatMapsItself_MapsEachRangeFromItsOwner_AndPinsBoth()
    {
        using var root = Cache();
        using var child = Cache();
        using var grandchild = Cache();
        int g = root.MapGranule;
        var rootRows = Fill(root, 0, 3 * g, 5);
        Assert.That(child.ShareFrom(_b, root, 2 * g), Is.EqualTo(2 * g));
        var childRows = Fill(child, 2 * g, 2 * g, 15);

        Assert.That(grandchild.ShareFrom(_b, child, 4 * g), Is.EqualTo(4 * g));
        AssertHolds(grandchild, rootRows, 0, 0, 2 * g, "the root's range");
        AssertHolds(grandchild, childRows, 2 * g, 0, 2 * g, "the child's range");
        Assert.That(grandchild.MappedPositionCount, Is.EqualTo(4 * g));
        Assert.That(root.PinnedPositions, Is.EqualTo(2 * g));
        Assert.That(child.PinnedPositions, Is.EqualTo(4 * g));

        grandchild.Unshare(_b);
        Assert.That(child.PinnedPositions, Is.Zero);
        Assert.That(root.PinnedPositions, Is.EqualTo(2 * g), "the child still maps the root");
        child.Dispose();
        Assert.That(root.PinnedPositions, Is.Zero, "disposing a cache unpins what it mapped");
    }

    [TestCase(WeightType.F32)]
    [TestCase(WeightType.F16)]
    [TestCase(WeightType.Q8_0)]
    public void Attention_OverAMappedPrefix_EqualsTheOwnersAttention(WeightType type)
    {
        const int heads = 4, kvHeads = 2, hd = KvDim / kvHeads;
        int g;
        using (var probe = Cache(type)) g = probe.MapGranule;   // a block format's rows fill a page only in many positions
        int n = g * Math.Max(1, 160 / g), tail = 37;
        using var owner = Cache(type, n + tail);
        using var child = Cache(type, n + tail + 211);   // another size: its layers start elsewhere
        Fill(owner, 0, n + tail, 21);
        Assert.That(child.ShareFrom(_b, owner, n), Is.EqualTo(n));
        // the child's own positions get the owner's rows after the prefix: the two caches then hold the same sequence
        _b.CopyKvPrefix(owner, child, n + tail, n);
        var shape = new AttentionShape(heads, kvHeads, hd, 1f / MathF.Sqrt(hd));
        var q = TestData.Random(4 * heads * hd, 99, 2f);
        for (int layer = 0; layer < Layers; layer++)
            foreach (int rows in new[] { 1, 4 })
            {
                int start = n + tail - rows;
                using var qt = _b.Tensor(q.AsSpan(0, rows * heads * hd).ToArray(), rows, heads * hd);
                using var expected = _b.Allocate(rows, heads * hd);
                using var got = _b.Allocate(rows, heads * hd);
                _b.Attention(qt, owner, layer, start, rows, expected, shape);
                _b.Attention(qt, child, layer, start, rows, got, shape);
                Assert.That(_b.ReadAll(got), Is.EqualTo(_b.ReadAll(expected)), $"layer {layer}, {rows} query rows");
            }
    }
}

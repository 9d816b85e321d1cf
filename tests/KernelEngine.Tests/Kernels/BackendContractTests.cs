using KernelEngine.Backends;
using KernelEngine.Decoding;
using KernelEngine.Kernels.DraftVerify;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>Attention layouts, softmax-entropy and draft verification through the kernel contract, per backend.</summary>
[TestFixture("cpu")]
[TestFixture("ilgpu-cpu")]
[TestFixture("ilgpu-cpu-groups")]
[TestFixture("ilgpu-cpu-groups128")]
public sealed class BackendContractTests(string backendName)
{
    private IBackend _b = null!;

    [OneTimeSetUp] public void Setup() => _b = TestBackends.Create(backendName);
    [OneTimeTearDown] public void TearDown() => _b.Dispose();

    [TestCase(false)]
    [TestCase(true)]
    public void Attention_DecodeOverManyChunks_MatchesScalarReference(bool f16Cache)
    {
        if (_b is IlgpuBackend g) g.DecodeChunk = 4;   // 23 positions -> 6 Flash-Decoding chunks merged by log-sum-exp
        int heads = 4, kvHeads = 2, hd = 10, start = 22, kvDim = kvHeads * hd;
        var k = TestData.Random((start + 1) * kvDim, 31); var v = TestData.Random((start + 1) * kvDim, 32);
        var q = TestData.Random(heads * hd, 33, 2f);
        using var cache = new KvCache(_b, 1, 40, kvDim, f16Cache);
        using var kt = _b.Tensor(k, start + 1, kvDim); using var vt = _b.Tensor(v, start + 1, kvDim);
        _b.StoreKv(kt, vt, cache, 0, 0, start + 1);
        using var qt = _b.Tensor(q, 1, heads * hd);
        using var ot = _b.Allocate(1, heads * hd);
        _b.Attention(qt, cache, 0, start, 1, ot, new AttentionShape(heads, kvHeads, hd, 1f / MathF.Sqrt(hd)));
        float[] R(float[] a) => f16Cache ? a.Select(x => (float)(Half)x).ToArray() : a;
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(ot), ScalarReference.Attention(q, R(k), R(v), 1, start, heads, kvHeads, hd)), Is.LessThanOrEqualTo(1e-5));
        if (_b is IlgpuBackend g2) g2.DecodeChunk = 256;
    }

    [Test]
    public void Attention_DraftBranches_SeePrefixAndOwnRowsOnly()
    {
        int heads = 2, kvHeads = 1, hd = 8, start = 5, branch = 3, branches = 2, kvDim = hd;
        int rows = branch * branches;
        var k = TestData.Random((start + rows) * kvDim, 41); var v = TestData.Random((start + rows) * kvDim, 42);
        var q = TestData.Random(rows * heads * hd, 43);
        using var cache = new KvCache(_b, 1, 16, kvDim, false);
        using var kt = _b.Tensor(k, start + rows, kvDim); using var vt = _b.Tensor(v, start + rows, kvDim);
        _b.StoreKv(kt, vt, cache, 0, 0, start + rows);
        using var qt = _b.Tensor(q, rows, heads * hd);
        using var ot = _b.Allocate(rows, heads * hd);
        _b.Attention(qt, cache, 0, start, rows, ot, new AttentionShape(heads, kvHeads, hd, 1f / MathF.Sqrt(hd)), branch);
        var got = _b.ReadAll(ot);
        for (int b = 0; b < branches; b++)
        {
            // Reference: the branch alone after the prefix, as an ordinary causal block.
            var kb = k.Take(start * kvDim).Concat(k.Skip((start + b * branch) * kvDim).Take(branch * kvDim)).ToArray();
            var vb = v.Take(start * kvDim).Concat(v.Skip((start + b * branch) * kvDim).Take(branch * kvDim)).ToArray();
            var qb = q.Skip(b * branch * heads * hd).Take(branch * heads * hd).ToArray();
            var expected = ScalarReference.Attention(qb, kb, vb, branch, start, heads, kvHeads, hd);
            Assert.That(TestData.MaxAbsDiff(got.AsSpan(b * branch * heads * hd, branch * heads * hd), expected), Is.LessThanOrEqualTo(1e-5), $"branch {b}");
        }
        // Committing branch 1 moves its first two rows to the prefix end.
        _b.CopyKv(cache, start + branch, start, 2);
        using var q1 = _b.Tensor(q.Skip(4 * heads * hd).Take(heads * hd).ToArray(), 1, heads * hd);
        using var o1 = _b.Allocate(1, heads * hd);
        _b.Attention(q1, cache, 0, start + 1, 1, o1, new AttentionShape(heads, kvHeads, hd, 1f / MathF.Sqrt(hd)));
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(o1), got.AsSpan(4 * heads * hd, heads * hd)), Is.LessThanOrEqualTo(1e-5), "same as row 1 of branch 1");
    }

    [TestCase(150_000, 1.0f)]
    [TestCase(150_001, 0.6f)]
    [TestCase(37, 1.0f)]
    public void SoftmaxEntropy_MatchesFloat64Within1e5(int vocab, float temperature)
    {
        var logits = TestData.Random(vocab, vocab, 10f);
        using var t = _b.Tensor(logits, 1, vocab);
        int token = vocab / 2;
        var s = _b.SoftmaxEntropy(t, 0, temperature, token);
        var (lse, h, lp) = ScalarReference.SoftmaxEntropy(logits, temperature, token);
        Assert.That(s.LogSumExp, Is.EqualTo(lse).Within(1e-5));
        Assert.That(s.Entropy, Is.EqualTo(h).Within(1e-5));
        Assert.That(s.TokenLogProb, Is.EqualTo(lp).Within(1e-5));
        Assert.That(s.ArgMax, Is.EqualTo(Array.IndexOf(logits, logits.Max())));
        var again = _b.SoftmaxEntropy(t, 0, temperature, token);   // the merge counter resets itself
        Assert.That(again.Entropy, Is.EqualTo(s.Entropy));
    }

    /// <summary>Batched decoding's attention step (<c>AttentionRows</c>, RoPE given to it or not): each row, of its own
    /// cache at its own position, comes out exactly as that row rotated, stored and attended alone. 3 rows, GQA, odd
    /// positions (one at 0).</summary>
    [TestCase(true)]
    [TestCase(false)]
    public void AttentionRows_EachRowAsAlone(bool ropeInside)
    {
        const int n = 3, heads = 4, kvHeads = 2, hd = 16, ctx = 40, layer = 1, kvDim = kvHeads * hd;
        int[] positions = [5, 0, 17];
        var rope = new RopeTable(KernelEngine.Kernels.Rope.RopeFrequencies.Compute(hd, 10000, null), hd, KernelEngine.Kernels.Rope.RopeLayout.Interleaved);
        var shape = new AttentionShape(heads, kvHeads, hd, 1f / MathF.Sqrt(hd));
        var q = TestData.Random(n * heads * hd, 81); var k = TestData.Random(n * kvDim, 82); var v = TestData.Random(n * kvDim, 83);
        var history = TestData.Random(ctx * kvDim, 84);
        KvCache Filled(int upTo)
        {
            var c = new KvCache(_b, 2, ctx, kvDim, false);
            if (upTo == 0) return c;
            using var ht = _b.Tensor(history.Take(upTo * kvDim).ToArray(), upTo, kvDim);
            _b.StoreKv(ht, ht, c, layer, 0, upTo);
            return c;
        }
        var batched = positions.Select(Filled).ToList();
        var alone = positions.Select(Filled).ToList();
        try
        {
            using var qt = _b.Tensor(q, n, heads * hd); using var kt = _b.Tensor(k, n, kvDim); using var vt = _b.Tensor(v, n, kvDim);
            using var att = _b.Allocate(n, heads * hd);
            var rows = Enumerable.Range(0, n).Select(r => new SequenceRow(_b.RowView(qt, r, 1), _b.RowView(kt, r, 1), _b.RowView(vt, r, 1), _b.RowView(att, r, 1))).ToList();
            if (!ropeInside)
            {
                _b.Rope(qt, n, heads, positions, rope);
                _b.Rope(kt, n, kvHeads, positions, rope);
            }
            _b.AttentionRows(rows, batched, positions, layer, shape, ropeInside ? rope : null);
            var got = _b.ReadAll(att);
            for (int r = 0; r < n; r++)
            {
                using var q1 = _b.Tensor(q.AsSpan(r * heads * hd, heads * hd).ToArray(), 1, heads * hd);
                using var k1 = _b.Tensor(k.AsSpan(r * kvDim, kvDim).ToArray(), 1, kvDim);
                using var v1 = _b.Tensor(v.AsSpan(r * kvDim, kvDim).ToArray(), 1, kvDim);
                using var o1 = _b.Allocate(1, heads * hd);
                _b.Rope(q1, 1, heads, positions.AsSpan(r, 1), rope);
                _b.Rope(k1, 1, kvHeads, positions.AsSpan(r, 1), rope);
                _b.StoreKv(k1, v1, alone[r], layer, positions[r], 1);
                _b.Attention(q1, alone[r], layer, positions[r], 1, o1, shape);
                Assert.That(got.AsSpan(r * heads * hd, heads * hd).ToArray(), Is.EqualTo(_b.ReadAll(o1)), $"row {r} at position {positions[r]}");
            }
        }
        finally
        {
            foreach (var c in batched.Concat(alone)) c.Dispose();
        }
    }

    /// <summary>Batched decoding's greedy rows in one call: each row's stats exactly as <c>SoftmaxEntropy</c> of that row alone
    /// (token −1), 5 rows of an odd vocabulary.</summary>
    [Test]
    public void SoftmaxEntropyRows_EachRowAsAlone()
    {
        const int rows = 5, vocab = 32_003;
        var logits = TestData.Random(rows * vocab, 77, 9f);
        using var t = _b.Tensor(logits, rows, vocab);
        var stats = new KernelEngine.Kernels.SoftmaxEntropy.SoftmaxStats[rows];
        _b.SoftmaxEntropyRows(t, 1f, stats);
        for (int r = 0; r < rows; r++)
        {
            var alone = _b.SoftmaxEntropy(t, r, 1f, -1);
            Assert.That(stats[r], Is.EqualTo(alone), $"row {r}");
            Assert.That(stats[r].ArgMax, Is.EqualTo(Array.IndexOf(logits, logits.AsSpan(r * vocab, vocab).ToArray().Max(), r * vocab) - r * vocab), $"row {r}");
        }
    }

    [Test]
    public void DraftVerify_SameVerdictsAsTheCpuReference()
    {
        const int vocab = 97, k = 3;
        var rng = new Rng(7);
        var mismatches = 0;
        for (int trial = 0; trial < 40; trial++)
        {
            var p = new float[(k + 1) * vocab]; var q = new float[k * vocab];
            for (int r = 0; r < k + 1; r++) Normalize(p.AsSpan(r * vocab, vocab), rng, trial % 3 == 0 ? r : -1);
            for (int r = 0; r < k; r++) Normalize(q.AsSpan(r * vocab, vocab), rng, -1);
            var drafts = Enumerable.Range(0, k).Select(r => DraftVerifyCpu.Sample(q.AsSpan(r * vocab, vocab), rng.NextDouble())).ToArray();
            var u = Enumerable.Range(0, k + 1).Select(_ => rng.NextDouble()).ToArray();
            bool greedy = trial % 4 == 0;
            var expected = DraftVerifyCpu.Verify(p, q, drafts, u, vocab, greedy, new float[vocab]);
            using var pt = _b.Tensor(p, k + 1, vocab); using var qt = _b.Tensor(q, k, vocab);
            var got = _b.VerifyDrafts(pt, qt, drafts, u, greedy, multi: false, withoutReplacement: false);
            if (got != expected) mismatches++;

            // multi-draft on the first row
            var cand = new[] { drafts[0], (drafts[0] + 1) % vocab, (drafts[0] + 2) % vocab };
            var p0 = p.AsSpan(0, vocab).ToArray(); var q0 = q.AsSpan(0, vocab).ToArray();
            var expectedMulti = DraftVerifyCpu.RecursiveReject(p0.ToArray(), q0.ToArray(), cand, true, u, greedy);
            using var p0t = _b.Tensor(p0, 1, vocab); using var q0t = _b.Tensor(q0, 1, vocab);
            var gotMulti = _b.VerifyDrafts(p0t, q0t, cand, u, greedy, multi: true, withoutReplacement: true);
            if (gotMulti != expectedMulti) mismatches++;
        }
        // The device sums in a different order; a draw that lands within float rounding of a CDF step may differ.
        Assert.That(mismatches, Is.LessThanOrEqualTo(1));
    }

    /// <summary>Multi-draft where the draft favours candidates the target does not: most first candidates are rejected,
    /// so later acceptances depend on the residual max(0, p − q) and its sum over the whole vocabulary (every warp's
    /// part of the group reduction). Same verdicts as the CPU within one float-rounding draw.</summary>
    [Test]
    public void DraftVerify_MultiDraftAfterRejections_SameVerdictsAsTheCpuReference()
    {
        const int vocab = 211;
        var rng = new Rng(11);
        int mismatches = 0, laterAccepted = 0;
        for (int trial = 0; trial < 60; trial++)
        {
            var p = new float[vocab]; var q = new float[vocab];
            int c0 = Pick(rng, vocab), c1 = (c0 + 1 + Pick(rng, vocab - 1)) % vocab, c2 = (c1 + 1) % vocab == c0 ? (c1 + 2) % vocab : (c1 + 1) % vocab;
            int[] cand = [c0, c1, c2];
            // the draft puts 0.6 on c0 (the target little: rejected), 0.3 on c1 (the target 0.6: accepted with a
            // probability of about 2/3 that depends on the residual's sum), 0.1 over the rest
            for (int i = 0; i < vocab; i++) { p[i] = 0.4f / vocab; q[i] = 0.1f / (vocab - 2); }
            p[c1] += 0.6f;
            q[c0] = 0.6f; q[c1] = 0.3f;
            var u = Enumerable.Range(0, cand.Length + 1).Select(_ => rng.NextDouble()).ToArray();
            var expected = DraftVerifyCpu.RecursiveReject(p.ToArray(), q.ToArray(), cand, true, u, greedy: false);
            using var pt = _b.Tensor(p, 1, vocab); using var qt = _b.Tensor(q, 1, vocab);
            var got = _b.VerifyDrafts(pt, qt, cand, u, greedy: false, multi: true, withoutReplacement: true);
            if (got != expected) mismatches++;
            if (expected.Branch > 0) laterAccepted++;
        }
        Assert.That(laterAccepted, Is.GreaterThan(5), "the trials reach later candidates");
        Assert.That(mismatches, Is.LessThanOrEqualTo(1));
    }

    private static int Pick(Rng rng, int n) => (int)(rng.NextDouble() * n);

    private static void Normalize(Span<float> row, Rng rng, int peak)
    {
        for (int i = 0; i < row.Length; i++) row[i] = (float)rng.NextDouble();
        if (peak >= 0) row[peak * 7 % row.Length] += 50;
        float s = 0; foreach (var x in row) s += x;
        for (int i = 0; i < row.Length; i++) row[i] /= s;
    }
}

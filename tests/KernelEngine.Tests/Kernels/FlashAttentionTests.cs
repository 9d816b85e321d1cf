using KernelEngine.Kernels.Attention;
using KernelEngine.Kernels.Threading;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>
/// Flash-decoding (<see cref="DecodeAttentionCpu"/>) and the tiled prefill against the scalar attention reference: one query row over caches
/// of odd lengths that end mid-chunk and span many chunks (the log-sum-exp merge), MHA and GQA groups, F32 and F16
/// caches, on one thread and on a pool. Run at each SIMD width by CI's DOTNET_EnableAVX512=0 / DOTNET_EnableAVX2=0 passes.
/// Tolerance 1e-5: f32 sums in a different order than the reference's doubles.
/// </summary>
public sealed unsafe class FlashAttentionTests
{
    [TestCase(12, 12, 64, 1, false)]
    [TestCase(12, 12, 64, 777, false)]
    [TestCase(8, 2, 16, 1031, false)]
    [TestCase(32, 4, 64, 2049, true)]
    [TestCase(6, 2, 32, 37, true)]
    [TestCase(4, 1, 128, 300, true)]
    public void Decode_MatchesScalarReference(int heads, int kvHeads, int hd, int positions, bool f16Cache)
    {
        if (!DecodeAttentionCpu.Supports(hd)) Assert.Ignore($"head size {hd} is not a multiple of this width's vector");
        int kvDim = kvHeads * hd;
        var k = TestData.Random(positions * kvDim, 21);
        var v = TestData.Random(positions * kvDim, 22);
        var q = TestData.Random(heads * hd, 23);
        for (int i = 0; i < q.Length; i++) q[i] *= 4;   // sharper softmax: a wrong merge weight shows
        float[] Round(float[] a) => f16Cache ? a.Select(x => (float)(Half)x).ToArray() : a;
        var kh = k.Select(x => (Half)x).ToArray();
        var vh = v.Select(x => (Half)x).ToArray();
        // the reference sees the query as the last of `positions` rows: start = positions - 1
        var expected = ScalarReference.Attention(q, Round(k), Round(v), 1, positions - 1, heads, kvHeads, hd);
        foreach (int threads in new[] { 1, 2, 3 })
        {
            using var pool = new WorkerPool(threads);
            var output = new float[heads * hd];
            fixed (float* pq = q, po = output, pk = k, pv = v)
            fixed (Half* pkh = kh, pvh = vh)
                DecodeAttentionCpu.Run(pool, pq, f16Cache ? pkh : pk, f16Cache ? pvh : pv, f16Cache, po, positions, heads, kvHeads, hd, 1f / MathF.Sqrt(hd));
            Assert.That(TestData.MaxAbsDiff(output, expected), Is.LessThanOrEqualTo(1e-5), $"{threads} threads");
        }
    }

    /// <summary>The tiled prefill (<see cref="PrefillAttentionCpu"/>): blocks of rows after a cached prefix, causal tiles
    /// skipped and masked, partial tiles and partial query blocks, MHA and GQA, F32 and F16.</summary>
    [TestCase(12, 12, 64, 0, 200, false)]
    [TestCase(12, 12, 64, 130, 77, true)]
    [TestCase(32, 4, 64, 5, 33, false)]
    [TestCase(8, 2, 16, 64, 64, true)]
    [TestCase(6, 3, 32, 1, 3, false)]
    [TestCase(4, 1, 128, 300, 9, true)]
    public void Prefill_MatchesScalarReference(int heads, int kvHeads, int hd, int start, int rows, bool f16Cache)
    {
        if (!PrefillAttentionCpu.Supports(hd)) Assert.Ignore($"head size {hd} is not a multiple of this width's vector");
        int kvDim = kvHeads * hd, positions = start + rows;
        var k = TestData.Random(positions * kvDim, 31);
        var v = TestData.Random(positions * kvDim, 32);
        var q = TestData.Random(rows * heads * hd, 33);
        for (int i = 0; i < q.Length; i++) q[i] *= 4;
        float[] Round(float[] a) => f16Cache ? a.Select(x => (float)(Half)x).ToArray() : a;
        var kh = k.Select(x => (Half)x).ToArray();
        var vh = v.Select(x => (Half)x).ToArray();
        var expected = ScalarReference.Attention(q, Round(k), Round(v), rows, start, heads, kvHeads, hd);
        foreach (int threads in new[] { 1, 3 })
        {
            using var pool = new WorkerPool(threads);
            var output = new float[rows * heads * hd];
            fixed (float* pq = q, po = output, pk = k, pv = v)
            fixed (Half* pkh = kh, pvh = vh)
                PrefillAttentionCpu.Run(pool, pq, f16Cache ? pkh : pk, f16Cache ? pvh : pv, f16Cache, po, rows, start, heads, kvHeads, hd, 1f / MathF.Sqrt(hd));
            Assert.That(TestData.MaxAbsDiff(output, expected), Is.LessThanOrEqualTo(1e-5), $"{threads} threads");
        }
    }

    [Test]
    public void BadShapes_AreRejected()
    {
        using var pool = new WorkerPool(1);
        var buf = new float[64];
        fixed (float* p = buf)
        {
            float* pp = p;
            Assert.Throws<ArgumentException>(() => DecodeAttentionCpu.Run(pool, pp, pp, pp, false, pp, 0, 1, 1, 16, 1f));
            Assert.Throws<ArgumentException>(() => DecodeAttentionCpu.Run(pool, pp, pp, pp, false, pp, 1, 3, 2, 16, 1f));
            Assert.Throws<ArgumentException>(() => DecodeAttentionCpu.Run(pool, pp, pp, pp, false, pp, 1, 1, 1, 17, 1f));
            Assert.Throws<ArgumentException>(() => PrefillAttentionCpu.Run(pool, pp, pp, pp, false, pp, 0, 0, 1, 1, 16, 1f));
            Assert.Throws<ArgumentException>(() => PrefillAttentionCpu.Run(pool, pp, pp, pp, false, pp, 2, 0, 3, 2, 16, 1f));
        }
    }
}

using KernelEngine.Kernels;
using KernelEngine.Kernels.Attention;
using KernelEngine.Kernels.Formats;
using KernelEngine.Kernels.Threading;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>
/// Flash-decoding (<see cref="DecodeAttentionCpu"/>) and the tiled prefill against the scalar attention reference: one query row over caches
/// of odd lengths that end mid-chunk and span many chunks (the log-sum-exp merge), MHA and GQA groups, F32, F16 and
/// block-format caches (the reference reads the stored bytes through its own dequantizer), on one thread and on a pool. Run at each SIMD width by CI's DOTNET_EnableAVX512=0 / DOTNET_EnableAVX2=0 passes.
/// Tolerance 1e-5: f32 sums in a different order than the reference's doubles.
/// </summary>
public sealed unsafe class FlashAttentionTests
{
    [TestCase(12, 12, 64, 1, "f32")]
    [TestCase(12, 12, 64, 777, "f32")]
    [TestCase(8, 2, 16, 1031, "f32")]
    [TestCase(32, 4, 64, 2049, "f16")]
    [TestCase(6, 2, 32, 37, "f16")]
    [TestCase(4, 1, 128, 300, "f16")]
    [TestCase(12, 12, 64, 777, "q8_0")]
    [TestCase(32, 4, 64, 2049, "q8_0")]
    [TestCase(6, 2, 32, 37, "q4_0")]
    [TestCase(4, 1, 128, 300, "q5_1")]
    [TestCase(8, 2, 32, 1031, "bf16")]
    public void Decode_MatchesScalarReference(int heads, int kvHeads, int hd, int positions, string cache)
    {
        if (!DecodeAttentionCpu.Supports(hd)) Assert.Ignore($"head size {hd} is not a multiple of this width's vector");
        int kvDim = kvHeads * hd;
        var k = Stored(TestData.Random(positions * kvDim, 21), cache, positions, kvDim);
        var v = Stored(TestData.Random(positions * kvDim, 22), cache, positions, kvDim);
        var q = TestData.Random(heads * hd, 23);
        for (int i = 0; i < q.Length; i++) q[i] *= 4;   // sharper softmax: a wrong merge weight shows
        // the reference sees the query as the last of `positions` rows: start = positions - 1
        var expected = ScalarReference.Attention(q, k.Values, v.Values, 1, positions - 1, heads, kvHeads, hd);
        foreach (int threads in new[] { 1, 2, 3 })
        {
            using var pool = new WorkerPool(threads);
            var output = new float[heads * hd];
            fixed (float* pq = q, po = output)
            fixed (byte* pk = k.Bytes, pv = v.Bytes)
                DecodeAttentionCpu.Run(pool, pq, pk, pv, new KvRows(k.Type), po, positions, heads, kvHeads, hd, 1f / MathF.Sqrt(hd));
            Assert.That(TestData.MaxAbsDiff(output, expected), Is.LessThanOrEqualTo(1e-5), $"{threads} threads");
        }
    }

    /// <summary>The tiled prefill (<see cref="PrefillAttentionCpu"/>): blocks of rows after a cached prefix, causal tiles
    /// skipped and masked, partial tiles and partial query blocks, MHA and GQA, every cache type.</summary>
    [TestCase(12, 12, 64, 0, 200, "f32")]
    [TestCase(12, 12, 64, 130, 77, "f16")]
    [TestCase(32, 4, 64, 5, 33, "f32")]
    [TestCase(8, 2, 16, 64, 64, "f16")]
    [TestCase(6, 3, 32, 1, 3, "f32")]
    [TestCase(4, 1, 128, 300, 9, "f16")]
    [TestCase(12, 12, 64, 130, 77, "q8_0")]
    [TestCase(32, 4, 64, 5, 33, "q4_1")]
    [TestCase(6, 3, 32, 1, 3, "q5_0")]
    public void Prefill_MatchesScalarReference(int heads, int kvHeads, int hd, int start, int rows, string cache)
    {
        if (!PrefillAttentionCpu.Supports(hd)) Assert.Ignore($"head size {hd} is not a multiple of this width's vector");
        int kvDim = kvHeads * hd, positions = start + rows;
        var k = Stored(TestData.Random(positions * kvDim, 31), cache, positions, kvDim);
        var v = Stored(TestData.Random(positions * kvDim, 32), cache, positions, kvDim);
        var q = TestData.Random(rows * heads * hd, 33);
        for (int i = 0; i < q.Length; i++) q[i] *= 4;
        var expected = ScalarReference.Attention(q, k.Values, v.Values, rows, start, heads, kvHeads, hd);
        foreach (int threads in new[] { 1, 3 })
        {
            using var pool = new WorkerPool(threads);
            var output = new float[rows * heads * hd];
            fixed (float* pq = q, po = output)
            fixed (byte* pk = k.Bytes, pv = v.Bytes)
                PrefillAttentionCpu.Run(pool, pq, pk, pv, new KvRows(k.Type), po, rows, start, heads, kvHeads, hd, 1f / MathF.Sqrt(hd));
            Assert.That(TestData.MaxAbsDiff(output, expected), Is.LessThanOrEqualTo(1e-5), $"{threads} threads");
        }
    }

    /// <summary>Cache rows stored as <paramref name="cache"/> (ggml's reference quantizer, bit-exact in the quant tests) and the
    /// values they hold as the scalar reference reads them back.</summary>
    private static (WeightType Type, byte[] Bytes, float[] Values) Stored(float[] x, string cache, int rows, int cols)
    {
        var f = WeightFormat.FromName(cache)!;
        var bytes = new byte[rows * f.RowBytes(cols)];
        f.QuantizeRow(x, bytes);
        return (f.Type, bytes, ScalarReference.Dequantize(bytes, f.Type, rows, cols));
    }

    [Test]
    public void BadShapes_AreRejected()
    {
        using var pool = new WorkerPool(1);
        var buf = new float[64];
        var f32 = new KvRows(WeightType.F32);
        fixed (float* p = buf)
        {
            float* pp = p;
            Assert.Throws<ArgumentException>(() => DecodeAttentionCpu.Run(pool, pp, pp, pp, f32, pp, 0, 1, 1, 16, 1f));
            Assert.Throws<ArgumentException>(() => DecodeAttentionCpu.Run(pool, pp, pp, pp, f32, pp, 1, 3, 2, 16, 1f));
            Assert.Throws<ArgumentException>(() => DecodeAttentionCpu.Run(pool, pp, pp, pp, f32, pp, 1, 1, 1, 17, 1f));
            Assert.Throws<ArgumentException>(() => PrefillAttentionCpu.Run(pool, pp, pp, pp, f32, pp, 0, 0, 1, 1, 16, 1f));
            Assert.Throws<ArgumentException>(() => PrefillAttentionCpu.Run(pool, pp, pp, pp, f32, pp, 2, 0, 3, 2, 16, 1f));
        }
        Assert.Throws<ArgumentException>(() => new KvRows(WeightType.Q4_K));
        Assert.That(KvRows.Supports(WeightType.Q8_0, 16), Is.False, "a head of 16 is not a whole Q8_0 block");
    }
}

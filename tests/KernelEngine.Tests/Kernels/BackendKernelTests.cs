using KernelEngine.Kernels.MatMul;
using KernelEngine.Backends;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Rope;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>
/// Every op of the kernel contract against its scalar reference, on odd sizes (not multiples of any vector or
/// tile width), for each weight type, on each backend: the CPU SIMD backend (pool and single thread) and the ILGPU
/// kernels on ILGPU's CPU accelerator configured like a CUDA device (warp 32, 8 warps per group), once with the
/// simulator's per-element MatMul and once with the GPU's group kernels (MatVec, Tiled).
/// </summary>
[TestFixture("cpu")]
[TestFixture("cpu-1thread")]
[TestFixture("ilgpu-cpu")]
[TestFixture("ilgpu-cpu-groups")]
public sealed class BackendKernelTests(string backendName)
{
    private IBackend _b = null!;

    [OneTimeSetUp] public void Setup() => _b = TestBackends.Create(backendName);
    [OneTimeTearDown] public void TearDown() => _b.Dispose();

    /// <summary>F32 accumulation over up to a few hundred terms of size ~1: 1e-4 absolute.</summary>
    private const double MatMulTolerance = 1e-4;

    [TestCase(WeightType.F32, 1, 37, 53)]
    [TestCase(WeightType.F32, 7, 37, 53)]
    [TestCase(WeightType.F32, 5, 67, 301)]
    [TestCase(WeightType.Q8_0, 1, 9, 1056)]   // the warp matvec's repacked Q8_0: 66 vectors of 16 quants over 32 lanes
    [TestCase(WeightType.Q4_0, 1, 7, 1216)]   // and Q4_0: 38 blocks over 32 lanes
    [TestCase(WeightType.F32, 1, 37, 300)]   // the warp-per-row matvec: 75 vectors of 4 over 32 lanes, 37 rows over groups of 4 warps
    [TestCase(WeightType.F32, 1, 5, 4)]
    [TestCase(WeightType.F16, 1, 13, 520)]
    [TestCase(WeightType.BF16, 1, 6, 264)]
    [TestCase(WeightType.F16, 1, 37, 53)]
    [TestCase(WeightType.F16, 9, 19, 131)]
    [TestCase(WeightType.BF16, 1, 37, 53)]
    [TestCase(WeightType.BF16, 6, 21, 77)]
    [TestCase(WeightType.F16, 1, 37, 96)]
    [TestCase(WeightType.F16, 1, 5, 64)]
    [TestCase(WeightType.BF16, 1, 19, 160)]
    [TestCase(WeightType.F16, 1, 7, 48)]
    [TestCase(WeightType.BF16, 1, 5, 80)]
    [TestCase(WeightType.Q8_0, 1, 37, 96)]
    [TestCase(WeightType.Q8_0, 1, 5, 32)]
    [TestCase(WeightType.Q4_0, 1, 3, 32)]
    [TestCase(WeightType.Q4_0, 1, 19, 352)]
    [TestCase(WeightType.Q4_0, 1, 21, 512)]
    [TestCase(WeightType.Q8_0, 1, 19, 352)]
    [TestCase(WeightType.Q8_0, 7, 37, 160)]
    [TestCase(WeightType.Q4_0, 1, 41, 96)]
    [TestCase(WeightType.Q4_0, 5, 23, 224)]
    [TestCase(WeightType.Q4_1, 1, 37, 96)]
    [TestCase(WeightType.Q4_1, 3, 19, 160)]
    [TestCase(WeightType.Q5_0, 1, 21, 96)]
    [TestCase(WeightType.Q5_0, 5, 7, 224)]
    [TestCase(WeightType.Q5_1, 1, 11, 160)]
    [TestCase(WeightType.Q5_1, 3, 13, 32)]
    [TestCase(WeightType.Q4_K, 1, 37, 256)]
    [TestCase(WeightType.Q4_K, 1, 9, 768)]
    [TestCase(WeightType.Q4_K, 3, 7, 512)]
    [TestCase(WeightType.Q5_K, 1, 23, 512)]
    [TestCase(WeightType.Q5_K, 4, 5, 256)]
    [TestCase(WeightType.Q6_K, 1, 19, 768)]
    [TestCase(WeightType.Q6_K, 1, 3, 256)]
    [TestCase(WeightType.Q6_K, 2, 11, 512)]
    [TestCase(WeightType.F32, 70, 131, 100)]   // the register-tiled GEMM: 2x3 blocks of 64, 128-bit loads, a last step of 4 along the input
    [TestCase(WeightType.F16, 67, 65, 36)]
    [TestCase(WeightType.BF16, 6, 21, 80)]   // the GEMM's 64-bit loads of 16-bit weights
    [TestCase(WeightType.Q8_0, 9, 70, 96)]   // and its 32-bit loads of repacked quants
    [TestCase(WeightType.Q4_0, 9, 66, 128)]
    [TestCase(WeightType.F32, 19, 13, 2085)]   // prefill GEMM: rows sliced by 1,024 (two whole slices and a 37-wide one), 13 = 3 tiles + 1 row
    [TestCase(WeightType.F16, 17, 6, 1100)]
    [TestCase(WeightType.Q4_0, 21, 9, 1056)]
    public void MatMul_MatchesScalarReference(WeightType type, int rows, int outDim, int inDim)
    {
        if (!type.Format().DeviceReadable && _b is not CpuBackend) Assert.Ignore($"{type.Name()} has no ILGPU read yet");
        var x = TestData.Random(rows * inDim, 1);
        var w = TestData.Random(outDim * inDim, 2);
        var bias = TestData.Random(outDim, 3);
        var stored = TestData.Encode(w, type, outDim, inDim);
        var expected = ScalarReference.MatMulAsComputed(x, rows, inDim, stored, type, outDim, bias, cpuDecode: _b is CpuBackend);
        using var xt = _b.Tensor(x, rows, inDim);
        using var wt = _b.Upload(new HostWeight("w", outDim, inDim, type, stored));
        using var bt = _b.Upload(HostWeight.FromFloats("b", bias, 1, outDim));
        using var yt = _b.Allocate(rows, outDim);
        _b.MatMul(xt, wt, bt, yt, rows);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(yt), expected), Is.LessThanOrEqualTo(MatMulTolerance));
    }

    /// <summary>Matrices sharing one x (q/k/v, gate/up) as one call: mixed types and odd sizes; 736 = 23 blocks walks the
    /// quantized kernels' 16-block, 4-block (Q4_0) / 2-block (Q8_0) and scalar steps.
    /// With <paramref name="dense"/> every part is F32/F16/BF16: on a GPU one warp-per-row launch covers all three.</summary>
    [TestCase(1, false)]
    [TestCase(3, false)]
    [TestCase(1, true)]
    [TestCase(1, false, 864)]   // odd block counts (27, 29): the narrow Q4_0 kernels' scalar tail blocks
    [TestCase(4, false, 928)]   // 4 rows take the multi-row kernels
    public void MatMulShared_MatchesScalarReference(int rows, bool dense, int inDim = 736)
    {
        (WeightType Type, int OutDim)[] parts = dense
            ? [(WeightType.F16, 37), (WeightType.BF16, 21), (WeightType.F32, 9)]
            : [(WeightType.Q4_0, 37), (WeightType.Q8_0, 21), (WeightType.F16, 9)];
        var x = TestData.Random(rows * inDim, 11);
        using var xt = _b.Tensor(x, rows, inDim);
        var weights = new DeviceWeight[parts.Length];
        var biases = new DeviceWeight?[parts.Length];
        var outputs = new DeviceTensor[parts.Length];
        var expected = new float[parts.Length][];
        for (int p = 0; p < parts.Length; p++)
        {
            var (type, outDim) = parts[p];
            var stored = TestData.Encode(TestData.Random(outDim * inDim, 12 + p), type, outDim, inDim);
            float[]? bias = p == 1 ? null : TestData.Random(outDim, 20 + p);
            bool q8Activations = type.IsBlockQuantized() && rows <= MatVecCpu.MaxRows && _b is CpuBackend;
            var xRef = q8Activations ? ScalarReference.Dequantize(TestData.Encode(x, WeightType.Q8_0, rows, inDim), WeightType.Q8_0, rows, inDim) : x;
            expected[p] = ScalarReference.MatMul(xRef, rows, inDim, ScalarReference.Dequantize(stored, type, outDim, inDim), outDim, bias);
            weights[p] = _b.Upload(new HostWeight($"w{p}", outDim, inDim, type, stored));
            biases[p] = bias == null ? null : _b.Upload(HostWeight.FromFloats($"b{p}", bias, 1, outDim));
            outputs[p] = _b.Allocate(rows, outDim);
        }
        try
        {
            _b.MatMul(xt, weights, biases, outputs, rows);
            for (int p = 0; p < parts.Length; p++)
                Assert.That(TestData.MaxAbsDiff(_b.ReadAll(outputs[p]), expected[p]), Is.LessThanOrEqualTo(MatMulTolerance), $"part {p} ({parts[p].Type})");
        }
        finally
        {
            foreach (var d in weights) d.Dispose();
            foreach (var d in biases) d?.Dispose();
            foreach (var d in outputs) d.Dispose();
        }
    }

    [Test]
    public void RmsNormAndLayerNorm_MatchScalarReference()
    {
        int rows = 3, dim = 67;
        var x = TestData.Random(rows * dim, 4, 3f);
        var w = TestData.Random(dim, 5); var bias = TestData.Random(dim, 6);
        using var xt = _b.Tensor(x, rows, dim);
        using var wt = _b.Upload(HostWeight.FromFloats("w", w, 1, dim));
        using var bt = _b.Upload(HostWeight.FromFloats("b", bias, 1, dim));
        using var yt = _b.Allocate(rows, dim);
        _b.RmsNorm(xt, wt, yt, rows, 1e-5f);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(yt), ScalarReference.RmsNorm(x, w, rows, dim, 1e-5f)), Is.LessThanOrEqualTo(1e-5));
        _b.LayerNorm(xt, wt, bt, yt, rows, 1e-5f);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(yt), ScalarReference.LayerNorm(x, w, bias, rows, dim, 1e-5f)), Is.LessThanOrEqualTo(1e-5));
    }

    /// <summary>Qwen3's q/k norms: each head of each row normed in place; the reference norms (rows * heads) rows of
    /// headDim. Odd head width, rows and heads; tolerance 1e-5 as for RmsNorm.</summary>
    [Test]
    public void RmsNormHeads_NormsEachHeadInPlace()
    {
        int rows = 3, heads = 5, hd = 22;
        var x = TestData.Random(rows * heads * hd, 14, 3f);
        var w = TestData.Random(hd, 15);
        using var xt = _b.Tensor(x, rows, heads * hd);
        using var wt = _b.Upload(HostWeight.FromFloats("w", w, 1, hd));
        _b.RmsNormHeads(xt, wt, rows, heads, 1e-6f);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(xt), ScalarReference.RmsNorm(x, w, rows * heads, hd, 1e-6f)), Is.LessThanOrEqualTo(1e-5));
    }

    [TestCase(RopeLayout.RotateHalf, false)]
    [TestCase(RopeLayout.Interleaved, false)]
    [TestCase(RopeLayout.RotateHalf, true)]
    public void Rope_MatchesScalarReference(RopeLayout layout, bool llama3)
    {
        int rows = 3, heads = 3, hd = 10;
        var x = TestData.Random(rows * heads * hd, 7);
        int[] positions = [0, 5, 1001];
        var inv = RopeFrequencies.Compute(hd, 500000, llama3 ? new Llama3Scaling(8, 1, 4, 64) : null);
        using var xt = _b.Tensor(x, rows, heads * hd);
        _b.Rope(xt, rows, heads, positions, new RopeTable(inv, hd, layout));
        var expected = ScalarReference.Rope(x, rows, heads, hd, positions, inv, layout == RopeLayout.Interleaved);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(xt), expected), Is.LessThanOrEqualTo(1e-5));
    }

    /// <summary>Heads as wide as real models' (the vector paths, not only the scalar tail): whole and partial rotary, pairs
    /// that leave a 4-wide and a scalar remainder. Odd head count; tolerance 1e-5.</summary>
    [TestCase(RopeLayout.RotateHalf, 64, 32)]
    [TestCase(RopeLayout.Interleaved, 64, 32)]
    [TestCase(RopeLayout.RotateHalf, 80, 37)]
    [TestCase(RopeLayout.Interleaved, 80, 37)]
    public void Rope_WideHeads_MatchesScalarReference(RopeLayout layout, int hd, int pairs)
    {
        int rows = 3, heads = 5;
        var x = TestData.Random(rows * heads * hd, 17);
        int[] positions = [0, 9, 4097];
        var inv = RopeFrequencies.Compute(2 * pairs, 10000, null);
        using var xt = _b.Tensor(x, rows, heads * hd);
        _b.Rope(xt, rows, heads, positions, new RopeTable(inv, hd, layout));
        var expected = ScalarReference.Rope(x, rows, heads, hd, positions, inv, layout == RopeLayout.Interleaved);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(xt), expected), Is.LessThanOrEqualTo(1e-5));
    }

    /// <summary>RoPE of q and k and the KV store as one op (one launch on a GPU): q and k rotated as the scalar RoPE, the
    /// cache rows at [start, start + rows) holding rotated k and v (F16 cache: their halves), partial rotary leaving the
    /// last dimensions as they are. Odd heads and sizes.</summary>
    [TestCase(RopeLayout.RotateHalf, 5, false)]
    [TestCase(RopeLayout.Interleaved, 5, true)]
    [TestCase(RopeLayout.RotateHalf, 3, false)]   // partial rotary: 3 of 5 pairs rotated
    public void RopeStoreKv_MatchesScalarReference(RopeLayout layout, int pairs, bool f16)
    {
        int rows = 3, heads = 3, kvHeads = 1, hd = 10, start = 4, ctx = 12, kvDim = kvHeads * hd;
        var q = TestData.Random(rows * heads * hd, 61); var k = TestData.Random(rows * kvDim, 62); var v = TestData.Random(rows * kvDim, 63);
        int[] positions = [4, 5, 1001];
        var inv = RopeFrequencies.Compute(2 * pairs, 10000, null);
        using var qt = _b.Tensor(q, rows, heads * hd); using var kt = _b.Tensor(k, rows, kvDim); using var vt = _b.Tensor(v, rows, kvDim);
        using var cache = new KvCache(_b, 2, ctx, kvDim, f16);
        _b.RopeStoreKv(qt, kt, vt, rows, heads, kvHeads, positions, new RopeTable(inv, hd, layout), cache, 1, start);
        bool interleaved = layout == RopeLayout.Interleaved;
        var kRef = ScalarReference.Rope(k, rows, kvHeads, hd, positions, inv, interleaved);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(qt), ScalarReference.Rope(q, rows, heads, hd, positions, inv, interleaved)), Is.LessThanOrEqualTo(1e-5), "q");
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(kt), kRef), Is.LessThanOrEqualTo(1e-5), "k");
        float[] R(float[] a) => f16 ? a.Select(x => (float)(Half)x).ToArray() : a;
        var cachedK = new float[rows * kvDim]; var cachedV = new float[rows * kvDim];
        _b.Read(cache.K, (int)cache.PositionRow(1) + start, rows, cachedK);
        _b.Read(cache.V, (int)cache.PositionRow(1) + start, rows, cachedV);
        Assert.That(TestData.MaxAbsDiff(cachedK, R(kRef)), Is.LessThanOrEqualTo(f16 ? 1e-3 : 1e-5), "cached k");
        Assert.That(cachedV, Is.EqualTo(R(v)), "cached v");
    }

    [Test]
    public void Llama3Scaling_FollowsTheFormula()
    {
        // Wavelengths above original/low (=64) are divided by factor, below original/high (=16) kept, smooth between.
        var s = new Llama3Scaling(8, 1, 4, 64);
        double lowFreq = 2 * Math.PI / 100, highFreq = 2 * Math.PI / 10, mid = 2 * Math.PI / 32;
        Assert.That(s.Apply(lowFreq), Is.EqualTo(lowFreq / 8).Within(1e-12));
        Assert.That(s.Apply(highFreq), Is.EqualTo(highFreq).Within(1e-12));
        double smooth = (64 / 32.0 - 1) / (4 - 1);
        Assert.That(s.Apply(mid), Is.EqualTo((1 - smooth) * mid / 8 + smooth * mid).Within(1e-12));
    }

    /// <summary>Context shift: keys written at positions p (rotated by RoPE there) and moved to p - discard must equal the
    /// scalar RoPE of the same raw keys at p - discard; values are moved unchanged; the kept prefix is untouched.</summary>
    [TestCase(RopeLayout.RotateHalf, 3, 5)]
    [TestCase(RopeLayout.Interleaved, 0, 11)]
    [TestCase(RopeLayout.RotateHalf, 2, 2)]
    public void ContextShift_ReRotatesKeysToTheirNewPositions(RopeLayout layout, int keep, int discard)
    {
        int kvHeads = 2, hd = 8, ctx = 29, layers = 2, kvDim = kvHeads * hd;
        var inv = RopeFrequencies.Compute(hd, 10000, null);
        var rope = new RopeTable(inv, hd, layout);
        int[] positions = Enumerable.Range(0, ctx).ToArray();
        using var cache = new KvCache(_b, layers, ctx, kvDim, f16: false);
        var raw = new float[layers][]; var values = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            raw[l] = TestData.Random(ctx * kvDim, 40 + l);
            values[l] = TestData.Random(ctx * kvDim, 50 + l);
            using var kt = _b.Tensor(raw[l], ctx, kvDim);
            using var vt = _b.Tensor(values[l], ctx, kvDim);
            _b.Rope(kt, ctx, kvHeads, positions, rope);
            _b.StoreKv(kt, vt, cache, l, 0, ctx);
        }
        int count = ctx - keep - discard;
        cache.Shift(_b, keep, discard, count, rope);
        var k = _b.ReadAll(cache.K);
        var v = _b.ReadAll(cache.V);
        for (int l = 0; l < layers; l++)
        {
            // row j of the shifted cache holds raw row j (j < keep) or raw row j + discard, rotated at position j
            var source = Enumerable.Range(0, keep + count).SelectMany(j => raw[l].Skip((j < keep ? j : j + discard) * kvDim).Take(kvDim)).ToArray();
            var expected = ScalarReference.Rope(source, keep + count, kvHeads, hd, positions[..(keep + count)], inv, layout == RopeLayout.Interleaved);
            var actual = k.Skip(l * ctx * kvDim).Take((keep + count) * kvDim).ToArray();
            Assert.That(TestData.MaxAbsDiff(actual, expected), Is.LessThanOrEqualTo(1e-5), $"keys of layer {l}");
            var expectedV = Enumerable.Range(0, keep + count).SelectMany(j => values[l].Skip((j < keep ? j : j + discard) * kvDim).Take(kvDim)).ToArray();
            Assert.That(TestData.MaxAbsDiff(v.Skip(l * ctx * kvDim).Take((keep + count) * kvDim).ToArray(), expectedV), Is.Zero, $"values of layer {l}");
        }
    }

    /// <summary>Causal GQA attention over every cache type: a prefill block at positions 4..8, then its last row as decode.</summary>
    [TestCase("f32", 12)]
    [TestCase("f16", 12)]
    [TestCase("q8_0", 32)]
    [TestCase("q4_0", 32)]
    public void Attention_CausalGqa_MatchesScalarReference(string cacheType, int hd) => AttentionCase(cacheType, hd, 0, start: 4, rows: 5, ctx: 23, seed: 8);

    /// <summary>A prefill block of 19 rows after 30 positions: on a GPU three groups of 8 rows over two tiles of 32 keys
    /// (the last group partly empty, the rows' causal limits inside the tiles), with and without a window.</summary>
    [TestCase("f32", 16, 0)]
    [TestCase("f16", 12, 0)]
    [TestCase("f32", 16, 13)]
    public void Attention_PrefillTiles_MatchScalarReference(string cacheType, int hd, int window) => AttentionCase(cacheType, hd, window, start: 30, rows: 19, ctx: 64, seed: 28);

    /// <summary>Partial rotary (Phi-4-mini): 3 of a 10-wide head's 5 pairs rotate, the last 4 dimensions pass through;
    /// cos and sin scaled by 1.3 (the attention factor under partial rotary). Both layouts; tolerance 1e-5.</summary>
    [TestCase(RopeLayout.RotateHalf)]
    [TestCase(RopeLayout.Interleaved)]
    public void Rope_PartialRotary_MatchesScalarReference(RopeLayout layout)
    {
        int rows = 3, heads = 3, hd = 10;
        var x = TestData.Random(rows * heads * hd, 41);
        int[] pos = [0, 7, 1001];
        float[] inv = [1f, 0.1f, 0.01f];
        using var xt = _b.Tensor(x, rows, heads * hd);
        _b.Rope(xt, rows, heads, pos, new RopeTable(inv, hd, layout, 1.3f));
        var expected = ScalarReference.Rope(x, rows, heads, hd, pos, inv, layout == RopeLayout.Interleaved, 1.3);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(xt), expected), Is.LessThanOrEqualTo(1e-5));
        var y = _b.ReadAll(xt);
        for (int r = 0; r < rows; r++)
            for (int h = 0; h < heads; h++)
                for (int d = 6; d < hd; d++)   // both layouts rotate dimensions 0-5 only
                    Assert.That(y[(r * heads + h) * hd + d], Is.EqualTo(x[(r * heads + h) * hd + d]), "passes through unchanged");
    }

    /// <summary>Gemma 2's ops against double-precision formulas: GeGLU (gelu_tanh(gate) · up), a scale, logit soft-capping,
    /// and attention with capped scores (prefill block and decode row, cap 0.5 so that it bites; windowed too).
    /// Odd sizes; tolerance 1e-5 (GeGLU 2e-5: its exp polynomial).</summary>
    [TestCase(0)]
    [TestCase(5)]
    public void GemmaOps_MatchScalarReference(int window)
    {
        int rows = 3, n = 77;
        var g = TestData.Random(rows * n, 31, 3f); var u = TestData.Random(rows * n, 32);
        using var gt = _b.Tensor(g, rows, n); using var ut = _b.Tensor(u, rows, n);
        _b.GeluMul(gt, ut, rows);
        var geglu = g.Select((x, i) => (float)(0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))) * u[i])).ToArray();
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(gt), geglu), Is.LessThanOrEqualTo(2e-5), "geglu");
        using var st = _b.Tensor(g, rows, n);
        _b.Scale(st, rows, 8f);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(st), g.Select(x => x * 8f).ToArray()), Is.LessThanOrEqualTo(1e-5), "scale");
        _b.SoftCap(st, rows, 3f);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(st), g.Select(x => (float)(3 * Math.Tanh(x * 8.0 / 3))).ToArray()), Is.LessThanOrEqualTo(1e-5), "softcap");

        int heads = 4, kvHeads = 2, hd = 32, start = 9, aRows = 4, kvDim = kvHeads * hd;
        var k = TestData.Random((start + aRows) * kvDim, 33, 2f); var v = TestData.Random((start + aRows) * kvDim, 34);
        var q = TestData.Random(aRows * heads * hd, 35, 2f);
        using var cache = new KvCache(_b, 1, 16, kvDim, WeightType.F32, hd);
        using var kt = _b.Tensor(k, start + aRows, kvDim); using var vt = _b.Tensor(v, start + aRows, kvDim);
        _b.StoreKv(kt, vt, cache, 0, 0, start + aRows);
        using var qt = _b.Tensor(q, aRows, heads * hd);
        using var ot = _b.Allocate(aRows, heads * hd);
        var shape = new AttentionShape(heads, kvHeads, hd, 1f / MathF.Sqrt(hd), window, 0.5f);
        _b.Attention(qt, cache, 0, start, aRows, ot, shape);
        var expected = ScalarReference.Attention(q, k, v, aRows, start, heads, kvHeads, hd, window, 0.5);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(ot), expected), Is.LessThanOrEqualTo(1e-5), "capped attention, prefill");
        using var q1 = _b.Tensor(q[^(heads * hd)..], 1, heads * hd);
        _b.Attention(q1, cache, 0, start + aRows - 1, 1, ot, shape);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(ot)[..(heads * hd)], expected[^(heads * hd)..]), Is.LessThanOrEqualTo(1e-5), "capped attention, decode");
        var uncapped = ScalarReference.Attention(q, k, v, aRows, start, heads, kvHeads, hd, window);
        Assert.That(TestData.MaxAbsDiff(uncapped, expected), Is.GreaterThan(1e-3), "the cap bites");
    }

    /// <summary>Sliding-window attention (Mistral, Phi-3): a row at position p sees keys above p − window. A prefill block
    /// the window cuts into (positions 21..27, window 9), its last row again as decode, and a window wider than the
    /// context (the full-attention paths); every cache type and head width path; tolerance 1e-5 as for causal attention.</summary>
    [TestCase("f32", 12, 9)]
    [TestCase("f32", 32, 9)]
    [TestCase("f16", 32, 9)]
    [TestCase("q8_0", 32, 9)]
    [TestCase("f32", 32, 1)]
    [TestCase("f32", 32, 100)]
    public void Attention_SlidingWindow_MatchesScalarReference(string cacheType, int hd, int window) =>
        AttentionCase(cacheType, hd, window, start: 21, rows: 7, ctx: 40, seed: 18);

    /// <summary>6 query heads over 2 KV heads in layer 1 of 2: a prefill block of rows at positions start.., then its last
    /// row as decode, against the scalar reference over the values the cache holds; tolerance 1e-5. A window must change
    /// the result where it cuts in. A cache type the backend does not run is a request error naming it.</summary>
    private void AttentionCase(string cacheType, int hd, int window, int start, int rows, int ctx, int seed)
    {
        int heads = 6, kvHeads = 2, layers = 2, layer = 1;
        int kvDim = kvHeads * hd;
        var type = KvCacheTypes.Parse(cacheType);
        if (!_b.SupportsKvCache(type, hd))
        {
            var e = Assert.Throws<InvalidRequestException>(() => new KvCache(_b, layers, ctx, kvDim, type, hd).Dispose());
            Assert.That(e!.Message, Does.Contain(cacheType).And.Contain("f16"));
            return;
        }
        var kAll = TestData.Random((start + rows) * kvDim, seed);
        var vAll = TestData.Random((start + rows) * kvDim, seed + 1);
        var q = TestData.Random(rows * heads * hd, seed + 2);
        using var cache = new KvCache(_b, layers, ctx, kvDim, type, hd);
        using var kt = _b.Tensor(kAll, start + rows, kvDim);
        using var vt = _b.Tensor(vAll, start + rows, kvDim);
        _b.StoreKv(kt, vt, cache, layer, 0, start + rows);
        using var qt = _b.Tensor(q, rows, heads * hd);
        using var ot = _b.Allocate(rows, heads * hd);
        var shape = new AttentionShape(heads, kvHeads, hd, 1f / MathF.Sqrt(hd), window);
        _b.Attention(qt, cache, layer, start, rows, ot, shape);
        // the values the cache holds: ggml's reference quantizer (bit-exact in the quant tests), read back by the scalar dequantizer
        float[] Stored(float[] a) => ScalarReference.Dequantize(TestData.Encode(a, type, start + rows, kvDim), type, start + rows, kvDim);
        var expected = ScalarReference.Attention(q, Stored(kAll), Stored(vAll), rows, start, heads, kvHeads, hd, window);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(ot), expected), Is.LessThanOrEqualTo(1e-5), "prefill block");
        using var q1 = _b.Tensor(q[^(heads * hd)..], 1, heads * hd);
        _b.Attention(q1, cache, layer, start + rows - 1, 1, ot, shape);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(ot)[..(heads * hd)], expected[^(heads * hd)..]), Is.LessThanOrEqualTo(1e-5), "decode row");
        if (window > 0 && window < start + rows)
        {
            var full = ScalarReference.Attention(q, Stored(kAll), Stored(vAll), rows, start, heads, kvHeads, hd);
            Assert.That(TestData.MaxAbsDiff(full, expected), Is.GreaterThan(1e-3), "the window changes the result");
        }
    }

    /// <summary>A Q8_0 cache shifted: keys are widened, rotated and quantized again, so they match the scalar RoPE at their new
    /// positions within two quantization steps (values in [-1, 1]: a step is at most 1/127).</summary>
    [Test]
    public void ContextShift_Q8_0Cache_ReRotatesWithinQuantization()
    {
        int kvHeads = 2, hd = 32, ctx = 21, layers = 1, kvDim = kvHeads * hd, keep = 2, discard = 6;
        if (!_b.SupportsKvCache(WeightType.Q8_0, hd)) Assert.Ignore($"{backendName} keeps KV caches in f32/f16 only");
        var inv = RopeFrequencies.Compute(hd, 10000, null);
        var rope = new RopeTable(inv, hd, RopeLayout.RotateHalf);
        int[] positions = Enumerable.Range(0, ctx).ToArray();
        using var cache = new KvCache(_b, layers, ctx, kvDim, WeightType.Q8_0, hd);
        var raw = TestData.Random(ctx * kvDim, 60);
        using (var kt = _b.Tensor(raw, ctx, kvDim))
        using (var vt = _b.Tensor(raw, ctx, kvDim))
        {
            _b.Rope(kt, ctx, kvHeads, positions, rope);
            _b.StoreKv(kt, vt, cache, 0, 0, ctx);
        }
        int count = ctx - keep - discard;
        cache.Shift(_b, keep, discard, count, rope);
        var k = _b.ReadAll(cache.K);
        var source = Enumerable.Range(0, keep + count).SelectMany(j => raw.Skip((j < keep ? j : j + discard) * kvDim).Take(kvDim)).ToArray();
        var expected = ScalarReference.Rope(source, keep + count, kvHeads, hd, positions[..(keep + count)], inv, false);
        Assert.That(TestData.MaxAbsDiff(k[..((keep + count) * kvDim)], expected), Is.LessThanOrEqualTo(2.0 / 127));
    }

    /// <summary>The fused epilogues against the unfused formulas: residual += W·x + b (after Wo, W_down), and the gated
    /// MLP's act(W_gate·x)·(W_up·x + b_up), SiLU and tanh-GELU; decode rows (the GPU's warp kernel) and a prefill block
    /// (their unfused ops), odd row counts. Tolerance: the matmul's plus the activation's.</summary>
    [TestCase(WeightType.F16, 1, false)]
    [TestCase(WeightType.F32, 1, true)]
    [TestCase(WeightType.BF16, 1, false)]
    [TestCase(WeightType.F32, 3, false)]
    [TestCase(WeightType.Q8_0, 1, true)]
    public void FusedEpilogues_MatchTheUnfusedFormulas(WeightType type, int rows, bool gelu)
    {
        const int inDim = 96, outDim = 37;
        var x = TestData.Random(rows * inDim, 51);
        var residual = TestData.Random(rows * outDim, 52);
        var wg = TestData.Encode(TestData.Random(outDim * inDim, 53, 0.3f), type, outDim, inDim);
        var wu = TestData.Encode(TestData.Random(outDim * inDim, 54, 0.3f), type, outDim, inDim);
        var bias = TestData.Random(outDim, 55);
        bool q8Activations = type.IsBlockQuantized() && _b is CpuBackend;
        var xRef = q8Activations ? ScalarReference.Dequantize(TestData.Encode(x, WeightType.Q8_0, rows, inDim), WeightType.Q8_0, rows, inDim) : x;
        var g = ScalarReference.MatMul(xRef, rows, inDim, ScalarReference.Dequantize(wg, type, outDim, inDim), outDim, null);
        var u = ScalarReference.MatMul(xRef, rows, inDim, ScalarReference.Dequantize(wu, type, outDim, inDim), outDim, bias);
        using var xt = _b.Tensor(x, rows, inDim);
        using var gate = _b.Upload(new HostWeight("gate", outDim, inDim, type, wg));
        using var up = _b.Upload(new HostWeight("up", outDim, inDim, type, wu));
        using var bt = _b.Upload(HostWeight.FromFloats("b", bias, 1, outDim));

        using var rt = _b.Tensor(residual, rows, outDim);
        using var scratch = _b.Allocate(rows, outDim);
        _b.MatMulAdd(xt, up, bt, scratch, rt, rows);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(rt), residual.Select((r, i) => r + u[i]).ToArray()), Is.LessThanOrEqualTo(MatMulTolerance), "residual add");

        using var gt = _b.Allocate(rows, outDim);
        using var ut = _b.Allocate(rows, outDim);
        _b.GatedMatMul(xt, gate, up, bt, gt, ut, rows, gelu);
        var expected = g.Select((v, i) => (gelu ? ScalarReference.Gelu(v) : ScalarReference.Silu(v)) * u[i]).ToArray();
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(gt), expected), Is.LessThanOrEqualTo(MatMulTolerance + 2e-5), gelu ? "gelu gate" : "silu gate");
    }

    /// <summary>
    /// The front of a decode token's attention block (RMSNorm → q/k/v with biases → RoPE → KV store → attention over a cache
    /// holding earlier positions) against the scalar formulas: the GPU's one launch (<see cref="IBackend.TryDecodeAttention"/>,
    /// which the group kernels must take at these shapes) or, where a backend does not fuse, the ops the model then runs.
    /// 6 query heads over 2 KV heads (3 per unit, so a unit's 4 warps are not all busy), head dim 12, partial rotary, a
    /// window with a soft cap, an F16 cache, the first position, keys over several tiles; past one flash-decoding chunk the
    /// launch stops after the KV store and the split kernel attends.
    /// Tolerance: the matvec's (1e-4); the F16 cache against the reference rounded to F16 (1e-3).
    /// </summary>
    [TestCase(WeightType.F32, RopeLayout.RotateHalf, 6, false, 0, 0f, 9)]
    [TestCase(WeightType.Q8_0, RopeLayout.Interleaved, 6, true, 0, 0f, 9)]
    [TestCase(WeightType.F16, RopeLayout.RotateHalf, 4, false, 5, 3f, 9)]
    [TestCase(WeightType.Q4_0, RopeLayout.RotateHalf, 6, false, 0, 0f, 0)]
    [TestCase(WeightType.F32, RopeLayout.RotateHalf, 6, true, 0, 0f, 70)]   // three tiles of keys: the online softmax's rescaling
    [TestCase(WeightType.F32, RopeLayout.Interleaved, 6, true, 0, 0f, 300)]
    public void DecodeAttentionFront_MatchesTheFormulas(WeightType type, RopeLayout layout, int pairs, bool f16, int window, float softCap, int start)
    {
        const int heads = 6, kvHeads = 2, hd = 12, dim = 96, layers = 2, layer = 1;
        const float eps = 1e-5f;
        int qDim = heads * hd, kvDim = kvHeads * hd;
        var x = TestData.Random(dim, 81, 3f);
        var normW = TestData.Random(dim, 82);
        byte[] Weight(int rows, int seed) => TestData.Encode(TestData.Random(rows * dim, seed, 0.3f), type, rows, dim);
        var (wq, wk, wv) = (Weight(qDim, 83), Weight(kvDim, 84), Weight(kvDim, 85));
        var (bq, bk, bv) = (TestData.Random(qDim, 86), TestData.Random(kvDim, 87), TestData.Random(kvDim, 88));
        var pastK = TestData.Random(start * kvDim, 89);
        var pastV = TestData.Random(start * kvDim, 90);
        var inv = RopeFrequencies.Compute(2 * pairs, 10000, null);
        bool interleaved = layout == RopeLayout.Interleaved;
        var shape = new AttentionShape(heads, kvHeads, hd, 1f / MathF.Sqrt(hd), window, softCap);

        var xn = ScalarReference.RmsNorm(x, normW, 1, dim, eps);
        if (type.IsBlockQuantized() && _b is CpuBackend) xn = ScalarReference.Dequantize(TestData.Encode(xn, WeightType.Q8_0, 1, dim), WeightType.Q8_0, 1, dim);
        float[] Project(byte[] w, int rows, float[] bias) => ScalarReference.MatMul(xn, 1, dim, ScalarReference.Dequantize(w, type, rows, dim), rows, bias);
        var q = ScalarReference.Rope(Project(wq, qDim, bq), 1, heads, hd, [start], inv, interleaved);
        var k = ScalarReference.Rope(Project(wk, kvDim, bk), 1, kvHeads, hd, [start], inv, interleaved);
        var v = Project(wv, kvDim, bv);
        float[] R(float[] a) => f16 ? a.Select(e => (float)(Half)e).ToArray() : a;
        var expected = ScalarReference.Attention(q, R([.. pastK, .. k]), R([.. pastV, .. v]), 1, start, heads, kvHeads, hd, window, softCap);

        using var cache = new KvCache(_b, layers, start + 1, kvDim, f16);
        if (start > 0)
        {
            using var pk = _b.Tensor(pastK, start, kvDim);
            using var pv = _b.Tensor(pastV, start, kvDim);
            _b.StoreKv(pk, pv, cache, layer, 0, start);
        }
        using var xt = _b.Tensor(x, 1, dim);
        using var nt = _b.Upload(HostWeight.FromFloats("norm", normW, 1, dim));
        using var wqt = _b.Upload(new HostWeight("wq", qDim, dim, type, wq));
        using var wkt = _b.Upload(new HostWeight("wk", kvDim, dim, type, wk));
        using var wvt = _b.Upload(new HostWeight("wv", kvDim, dim, type, wv));
        using var bqt = _b.Upload(HostWeight.FromFloats("bq", bq, 1, qDim));
        using var bkt = _b.Upload(HostWeight.FromFloats("bk", bk, 1, kvDim));
        using var bvt = _b.Upload(HostWeight.FromFloats("bv", bv, 1, kvDim));
        using var qt = _b.Allocate(1, qDim);
        using var kt = _b.Allocate(1, kvDim);
        using var vt = _b.Allocate(1, kvDim);
        using var normed = _b.Allocate(1, dim);
        using var ot = _b.Allocate(1, qDim);
        var rope = new RopeTable(inv, hd, layout);
        bool fused = _b.TryDecodeAttention(xt, nt, eps, [wqt, wkt, wvt], [bqt, bkt, bvt], [qt, kt, vt], [start], rope, cache, layer, start, ot, shape);
        if (!fused) IBackend.DecodeAttentionUnfused(_b, xt, nt, eps, normed, [wqt, wkt, wvt], [bqt, bkt, bvt], [qt, kt, vt], [start], rope, cache, layer, start, ot, shape);
        Assert.That(fused, Is.EqualTo(backendName == "ilgpu-cpu-groups"), "which path ran");
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(qt), q), Is.LessThanOrEqualTo(MatMulTolerance), "rotated q");
        var cached = new float[kvDim];
        _b.Read(cache.K, (int)cache.PositionRow(layer) + start, 1, cached);
        Assert.That(TestData.MaxAbsDiff(cached, R(k)), Is.LessThanOrEqualTo(f16 ? 1e-3 : MatMulTolerance), "cached k");
        _b.Read(cache.V, (int)cache.PositionRow(layer) + start, 1, cached);
        Assert.That(TestData.MaxAbsDiff(cached, R(v)), Is.LessThanOrEqualTo(f16 ? 1e-3 : MatMulTolerance), "cached v");
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(ot), expected), Is.LessThanOrEqualTo(f16 ? 1e-3 : MatMulTolerance), "attention");
    }

    /// <summary>The RMSNorm fused into the matvec prologue (q/k/v and the gated MLP's first half) against RmsNorm then the
    /// matmuls' formulas, decode and a prefill block.</summary>
    [TestCase(WeightType.F16, 1)]
    [TestCase(WeightType.F32, 1)]
    [TestCase(WeightType.F32, 2)]
    [TestCase(WeightType.Q4_0, 1)]
    [TestCase(WeightType.Q4_K, 1, 512)]   // the K-quants' warp path (whole super-blocks)
    [TestCase(WeightType.Q6_K, 1, 256)]
    public void NormFusedMatMuls_MatchNormThenMatMul(WeightType type, int rows, int inDim = 160)
    {
        const int outDim = 21;
        const float eps = 1e-5f;
        var x = TestData.Random(rows * inDim, 71, 3f);
        var normW = TestData.Random(inDim, 72);
        var xn = ScalarReference.RmsNorm(x, normW, rows, inDim, eps);
        var w0 = TestData.Encode(TestData.Random(outDim * inDim, 73, 0.3f), type, outDim, inDim);
        var w1 = TestData.Encode(TestData.Random(outDim * inDim, 74, 0.3f), type, outDim, inDim);
        var bias = TestData.Random(outDim, 75);
        // the CPU's quantized decode rounds the normed activations to 8 bits first (a GPU keeps them F32)
        var y0 = ScalarReference.MatMulAsComputed(xn, rows, inDim, w0, type, outDim, null, cpuDecode: _b is CpuBackend);
        var y1 = ScalarReference.MatMulAsComputed(xn, rows, inDim, w1, type, outDim, bias, cpuDecode: _b is CpuBackend);
        using var xt = _b.Tensor(x, rows, inDim);
        using var nt = _b.Upload(HostWeight.FromFloats("norm", normW, 1, inDim));
        using var wt0 = _b.Upload(new HostWeight("w0", outDim, inDim, type, w0));
        using var wt1 = _b.Upload(new HostWeight("w1", outDim, inDim, type, w1));
        using var bt = _b.Upload(HostWeight.FromFloats("b", bias, 1, outDim));
        using var normed = _b.Allocate(rows, inDim);
        using var o0 = _b.Allocate(rows, outDim);
        using var o1 = _b.Allocate(rows, outDim);
        _b.NormMatMul(xt, nt, eps, normed, [wt0, wt1], [null, bt], [o0, o1], rows);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(o0), y0), Is.LessThanOrEqualTo(MatMulTolerance), "first matrix");
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(o1), y1), Is.LessThanOrEqualTo(MatMulTolerance), "second matrix, with bias");
        _b.NormGatedMatMul(xt, nt, eps, normed, wt0, wt1, bt, o0, o1, rows, gelu: false);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(o0), y0.Select((g, i) => ScalarReference.Silu(g) * y1[i]).ToArray()), Is.LessThanOrEqualTo(MatMulTolerance + 2e-5), "gated");
    }

    /// <summary>Odd sizes; 8 x 3001 is a batch the CPU splits over its threads (parts on 16-float boundaries), which must
    /// give what one call gives, bit for bit.</summary>
    [TestCase(7, 11)]
    [TestCase(8, 3001)]
    public void Activations_MatchScalarReference(int rows, int cols)
    {
        var g = TestData.Random(rows * cols, 11, 6f); var u = TestData.Random(rows * cols, 12, 2f);
        using var gt = _b.Tensor(g, rows, cols);
        using var ut = _b.Tensor(u, rows, cols);
        _b.SiluMul(gt, ut, rows);
        var silu = _b.ReadAll(gt);
        Assert.That(TestData.MaxAbsDiff(silu, g.Select((v, i) => ScalarReference.Silu(v) * u[i]).ToArray()), Is.LessThanOrEqualTo(1e-5));
        if (_b is CpuBackend)
        {
            var one = (float[])g.Clone();
            unsafe { fixed (float* pg = one, pu = u) KernelEngine.Kernels.Activation.ActivationCpu.SiluMul(pg, pu, one.Length); }
            Assert.That(silu, Is.EqualTo(one), "split over the pool = one call");
        }
        _b.Write(gt, g);
        _b.Gelu(gt, rows);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(gt), g.Select(ScalarReference.Gelu).ToArray()), Is.LessThanOrEqualTo(1e-5));
        _b.Write(gt, g);
        _b.Add(gt, ut, rows);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(gt), g.Select((v, i) => v + u[i]).ToArray()), Is.EqualTo(0));
    }

    [TestCase(WeightType.F32)]
    [TestCase(WeightType.F16)]
    [TestCase(WeightType.BF16)]
    [TestCase(WeightType.Q8_0)]
    [TestCase(WeightType.Q4_0)]
    public void EmbedAndAddEmbed_GatherDequantizedRows(WeightType type)
    {
        int vocab = 13, dim = 64;
        var table = TestData.Random(vocab * dim, 13);
        var stored = TestData.Encode(table, type, vocab, dim);
        var deq = ScalarReference.Dequantize(stored, type, vocab, dim);
        int[] ids = [12, 0, 7];
        using var wt = _b.Upload(new HostWeight("emb", vocab, dim, type, stored));
        using var xt = _b.Allocate(ids.Length, dim);
        _b.Embed(wt, ids, xt);
        var expected = ids.SelectMany(id => deq.AsSpan(id * dim, dim).ToArray()).ToArray();
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(xt), expected), Is.LessThanOrEqualTo(1e-6));
        _b.AddEmbed(wt, ids, xt);
        Assert.That(TestData.MaxAbsDiff(_b.ReadAll(xt), expected.Select(v => 2 * v).ToArray()), Is.LessThanOrEqualTo(1e-6));
        Assert.Throws<InvalidRequestException>(() => _b.Embed(wt, [vocab], xt));
    }
}

using System.Diagnostics;
using System.Text.Json;
using KernelEngine.Backends;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Quant;
using KernelEngine.Kernels.Rope;

namespace KernelEngine.Diagnostics;

/// <summary>One self-check result.</summary>
public sealed record CheckResult(string Name, bool Passed, double MaxError, double Tolerance, double Milliseconds, string? Note = null);

/// <summary>
/// The device self-check (<c>ke check</c>), for machines without the .NET SDK (the lent GPU): every op of the kernel
/// contract on the chosen device against the CPU backend (itself tested against scalar references) on odd sizes and
/// every weight type, plus a model's reference greedy ids when a model folder with reference.json is given.
/// </summary>
public static class SelfCheck
{
    /// <summary>Runs every kernel on <paramref name="device"/> against its CPU reference and, with <paramref name="modelDir"/>, <paramref name="referenceTokens"/> greedy tokens against the CPU backend.</summary>
    public static IReadOnlyList<CheckResult> Run(string device, string? modelDir, int referenceTokens = 64)
    {
        var results = new List<CheckResult>();
        using var dev = Devices.Create(device);
        using var cpu = new CpuBackend();
        var rnd = new Random(11);
        float[] R(int n, float scale = 1) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(rnd.NextDouble() * 2 - 1) * scale; return a; }

        void Check(string name, double tol, Func<IBackend, float[]> run)
        {
            var sw = Stopwatch.StartNew();
            try
            {
                var expected = run(cpu);
                var got = run(dev);
                double err = 0;
                for (int i = 0; i < expected.Length; i++) err = Math.Max(err, Math.Abs(expected[i] - got[i]));
                results.Add(new CheckResult(name, err <= tol && got.Length == expected.Length, err, tol, sw.Elapsed.TotalMilliseconds));
            }
            catch (Exception e) when (e is KernelEngineException or InvalidOperationException or NotSupportedException or ArgumentException)
            {
                results.Add(new CheckResult(name, false, double.NaN, tol, sw.Elapsed.TotalMilliseconds, e.Message));
            }
        }

        static DeviceTensor Tensor(IBackend b, float[] data, int rows, int cols)
        {
            var t = b.Allocate(rows, cols);
            using var w = b.Upload(HostWeight.FromFloats("data", data, rows, cols));
            b.Embed(w, Enumerable.Range(0, rows).ToArray(), t);
            return t;
        }
        static float[] ReadAll(IBackend b, DeviceTensor t) { var d = new float[t.Rows * t.Cols]; b.Read(t, 0, t.Rows, d); return d; }

        foreach (WeightType type in Enum.GetValues<WeightType>())
            foreach (int rows in new[] { 1, 7, 24 })
            {
                int inDim = type.Format().BlockElements switch { 1 => 53, 32 => 96, var block => block }, outDim = 37;   // whole blocks
                var x = R(rows * inDim); var w = R(outDim * inDim); var bias = R(outDim);
                var stored = Encode(w, type, outDim, inDim);
                // The CPU's quantized decode (one token, or one of each of a batch of sequences) rounds activations to 8 bits;
                // the GPU keeps them in F32, as does the CPU's prefill GEMM.
                // 8-bit activation error grows as √inDim; the largest of 7 rows' errors is larger than one row's
                double tol = type.IsBlockQuantized() && rows <= Kernels.MatMul.MatVecCpu.MaxRows ? 0.05 * Math.Sqrt(inDim / 96.0) * (rows == 1 ? 1 : 1.5) : 1e-3;
                Check($"matmul {type.Name()} rows {rows}", tol, b =>
                {
                    using var xt = Tensor(b, x, rows, inDim);
                    using var wt = b.Upload(new HostWeight("w", outDim, inDim, type, stored));
                    using var bt = b.Upload(HostWeight.FromFloats("b", bias, 1, outDim));
                    using var yt = b.Allocate(rows, outDim);
                    b.MatMul(xt, wt, bt, yt, rows);
                    return ReadAll(b, yt);
                });
            }
        // Decode's fused ops (one launch each on a GPU): norm + q/k/v, norm + gate/up + SiLU, matvec + residual add.
        foreach (WeightType type in new[] { WeightType.F32, WeightType.F16, WeightType.BF16 })
        {
            const int inDim = 136, outDim = 37;
            var x = R(inDim, 2); var nw = R(inDim); var res = R(outDim); var bias = R(outDim);
            var w0 = Encode(R(outDim * inDim, 0.3f), type, outDim, inDim); var w1 = Encode(R(outDim * inDim, 0.3f), type, outDim, inDim);
            float[] Fused(IBackend b, int op)
            {
                using var xt = Tensor(b, x, 1, inDim);
                using var nt = b.Upload(HostWeight.FromFloats("norm", nw, 1, inDim));
                using var wt0 = b.Upload(new HostWeight("w0", outDim, inDim, type, w0));
                using var wt1 = b.Upload(new HostWeight("w1", outDim, inDim, type, w1));
                using var bt = b.Upload(HostWeight.FromFloats("b", bias, 1, outDim));
                using var normed = b.Allocate(1, inDim);
                using var o0 = Tensor(b, res, 1, outDim);
                using var o1 = b.Allocate(1, outDim);
                if (op == 0) b.NormMatMul(xt, nt, 1e-5f, normed, [wt0, wt1], [null, bt], [o0, o1], 1);
                else if (op == 1) b.NormGatedMatMul(xt, nt, 1e-5f, normed, wt0, wt1, bt, o0, o1, 1, gelu: false);
                else b.MatMulAdd(xt, wt0, bt, o1, o0, 1);
                return op == 0 ? [.. ReadAll(b, o0), .. ReadAll(b, o1)] : ReadAll(b, o0);
            }
            Check($"norm+matvec {type.Name()} (q/k/v)", 1e-3, b => Fused(b, 0));
            Check($"norm+gate/up+silu {type.Name()}", 1e-3, b => Fused(b, 1));
            Check($"matvec+add {type.Name()}", 1e-3, b => Fused(b, 2));
        }
        {
            int rows = 3, dim = 67;
            var x = R(rows * dim, 3); var w = R(dim); var bb = R(dim);
            Check("rmsnorm", 1e-4, b => { using var xt = Tensor(b, x, rows, dim); using var wt = b.Upload(HostWeight.FromFloats("w", w, 1, dim)); using var yt = b.Allocate(rows, dim); b.RmsNorm(xt, wt, yt, rows, 1e-5f); return ReadAll(b, yt); });
            Check("layernorm", 1e-4, b => { using var xt = Tensor(b, x, rows, dim); using var wt = b.Upload(HostWeight.FromFloats("w", w, 1, dim)); using var bt = b.Upload(HostWeight.FromFloats("b", bb, 1, dim)); using var yt = b.Allocate(rows, dim); b.LayerNorm(xt, wt, bt, yt, rows, 1e-5f); return ReadAll(b, yt); });
            int heads = 5, hd = 14;
            var xh = R(rows * heads * hd, 5); var wh = R(hd, 6);
            Check("rmsnorm-heads", 1e-4, b => { using var xt = Tensor(b, xh, rows, heads * hd); using var wt = b.Upload(HostWeight.FromFloats("w", wh, 1, hd)); b.RmsNormHeads(xt, wt, rows, heads, 1e-6f); return ReadAll(b, xt); });
        }
        {
            var x = R(3 * 3 * 10); int[] pos = [0, 5, 1001];
            var table = new RopeTable(RopeFrequencies.Compute(10, 10000), 10, RopeLayout.RotateHalf);
            Check("rope", 1e-4, b => { using var xt = Tensor(b, x, 3, 30); b.Rope(xt, 3, 3, pos, table); return ReadAll(b, xt); });
            var k = R(3 * 20); var v = R(3 * 20);
            Check("rope+store-kv", 1e-3, b =>
            {
                using var qt = Tensor(b, x, 3, 30); using var kt = Tensor(b, k, 3, 20); using var vt = Tensor(b, v, 3, 20);
                using var cache = new KvCache(b, 2, 8, 20, true);
                b.RopeStoreKv(qt, kt, vt, 3, 3, 2, pos, table, cache, 1, 4);
                var cached = new float[2 * 3 * 20];
                b.Read(cache.K, (int)cache.PositionRow(1) + 4, 3, cached);
                b.Read(cache.V, (int)cache.PositionRow(1) + 4, 3, cached.AsSpan(3 * 20));
                return [.. ReadAll(b, qt), .. cached];
            });
        }
        // The front of decode attention (one launch on a GPU while the keys fit one chunk): norm, q/k/v, RoPE, KV store, attention.
        foreach (WeightType type in new[] { WeightType.F32, WeightType.F16 })
        {
            const int heads = 6, kvHeads = 2, hd = 16, dim = 128, start = 40, kvDim = kvHeads * hd;
            int[] rowsOf = [heads * hd, kvDim, kvDim];   // q, k, v
            var x = R(dim, 2); var nw = R(dim); var past = R(2 * start * kvDim);
            var weights = rowsOf.Select(n => Encode(R(n * dim, 0.3f), type, n, dim)).ToArray();
            var biases = rowsOf.Select(n => R(n)).ToArray();
            var table = new RopeTable(RopeFrequencies.Compute(hd, 10000), hd, RopeLayout.RotateHalf);
            var shape = new AttentionShape(heads, kvHeads, hd, 1f / MathF.Sqrt(hd));
            Check($"norm+q/k/v+rope+attention {type.Name()} (decode)", 1e-3, b =>
            {
                using var cache = new KvCache(b, 2, 64, kvDim, true);
                using (var pk = Tensor(b, past[..(start * kvDim)], start, kvDim))
                using (var pv = Tensor(b, past[(start * kvDim)..], start, kvDim))
                    b.StoreKv(pk, pv, cache, 1, 0, start);
                using var xt = Tensor(b, x, 1, dim);
                using var nt = b.Upload(HostWeight.FromFloats("norm", nw, 1, dim));
                using var normed = b.Allocate(1, dim);
                using var ot = b.Allocate(1, heads * hd);
                var w = Enumerable.Range(0, 3).Select(i => b.Upload(new HostWeight($"w{"qkv"[i]}", rowsOf[i], dim, type, weights[i]))).ToArray();
                var bias = Enumerable.Range(0, 3).Select(i => (DeviceWeight?)b.Upload(HostWeight.FromFloats($"b{"qkv"[i]}", biases[i], 1, rowsOf[i]))).ToArray();
                var y = rowsOf.Select(n => b.Allocate(1, n)).ToArray();
                try
                {
                    if (!b.TryDecodeAttention(xt, nt, 1e-5f, w, bias, y, [start], table, cache, 1, start, ot, shape))
                        IBackend.DecodeAttentionUnfused(b, xt, nt, 1e-5f, normed, w, bias, y, [start], table, cache, 1, start, ot, shape);
                    var cached = new float[2 * kvDim];
                    b.Read(cache.K, (int)cache.PositionRow(1) + start, 1, cached);
                    b.Read(cache.V, (int)cache.PositionRow(1) + start, 1, cached.AsSpan(kvDim));
                    return [.. ReadAll(b, ot), .. cached];
                }
                finally
                {
                    foreach (var d in w) d.Dispose();
                    foreach (var d in bias) d!.Dispose();
                    foreach (var t in y) t.Dispose();
                }
            });
        }
        foreach (bool f16 in new[] { false, true })
            foreach (int rows in new[] { 1, 5 })
            foreach (int window in new[] { 0, 3 })
            {
                int heads = 6, kvHeads = 2, hd = 12, start = rows == 1 ? 300 : 4, kvDim = kvHeads * hd;
                var k = R((start + rows) * kvDim); var v = R((start + rows) * kvDim); var q = R(rows * heads * hd);
                Check($"attention {(rows == 1 ? "decode" : "prefill")} {(f16 ? "f16" : "f32")} cache{(window > 0 ? $" window {window}" : "")}", 1e-3, b =>
                {
                    using var cache = new KvCache(b, 2, 512, kvDim, f16);
                    using var kt = Tensor(b, k, start + rows, kvDim); using var vt = Tensor(b, v, start + rows, kvDim);
                    b.StoreKv(kt, vt, cache, 1, 0, start + rows);
                    using var qt = Tensor(b, q, rows, heads * hd);
                    using var ot = b.Allocate(rows, heads * hd);
                    b.Attention(qt, cache, 1, start, rows, ot, new AttentionShape(heads, kvHeads, hd, 1f / MathF.Sqrt(hd), window));
                    return ReadAll(b, ot);
                });
            }
        {
            var logits = R(150_000, 10);
            Check("softmax-entropy 150000", 1e-4, b =>
            {
                using var t = Tensor(b, logits, 1, logits.Length);
                var s = b.SoftmaxEntropy(t, 0, 0.8f, 1234);
                return [(float)s.LogSumExp, (float)s.Entropy, (float)s.TokenLogProb, s.ArgMax];
            });
        }
        {
            const int vocab = 97, k = 3;
            var p = new float[(k + 1) * vocab]; var q = new float[k * vocab];
            for (int i = 0; i < p.Length; i++) p[i] = (float)rnd.NextDouble();
            for (int i = 0; i < q.Length; i++) q[i] = (float)rnd.NextDouble();
            for (int r = 0; r <= k; r++) Normalize(p.AsSpan(r * vocab, vocab));
            for (int r = 0; r < k; r++) Normalize(q.AsSpan(r * vocab, vocab));
            int[] drafts = [3, 50, 7];
            double[] u = [0.2, 0.9, 0.5, 0.37];
            Check("draft-verify", 0, b =>
            {
                using var pt = Tensor(b, p, k + 1, vocab); using var qt = Tensor(b, q, k, vocab);
                var v = b.VerifyDrafts(pt, qt, drafts, u, false, false, false);
                var g = b.VerifyDrafts(pt, qt, drafts, u, true, false, false);
                return [v.Accepted, v.Token, g.Accepted, g.Token];
            });
        }
        if (modelDir != null && File.Exists(Path.Combine(modelDir, "reference.json")))
        {
            var sw = Stopwatch.StartNew();
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(modelDir, "reference.json")));
            var expected = doc.RootElement.GetProperty("bos_greedy").GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).Skip(1).Take(referenceTokens).ToArray();
            using var model = Model.Load(modelDir, new ModelOptions { Device = device });
            using var session = model.CreateSession();
            var got = session.Generate([1], new GenerationSettings { MaxTokens = expected.Length, Sampling = Decoding.SamplingSettings.Greedy }).Select(t => t.Id).ToArray();
            int firstDiff = Enumerable.Range(0, expected.Length).FirstOrDefault(i => i >= got.Length || got[i] != expected[i], -1);
            results.Add(new CheckResult($"{Path.GetFileName(modelDir)} greedy {expected.Length} ids", firstDiff < 0, firstDiff < 0 ? 0 : 1, 0,
                sw.Elapsed.TotalMilliseconds, firstDiff < 0 ? null : $"first difference at token {firstDiff}"));
        }
        return results;
    }

    private static void Normalize(Span<float> row)
    {
        float s = 0; foreach (var x in row) s += x;
        for (int i = 0; i < row.Length; i++) row[i] /= s;
    }

    private static byte[] Encode(float[] w, WeightType type, int rows, int cols) => WeightEncoding.Encode(w, type, rows, cols);
}

using KernelEngine.Formats;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Formats;
using NUnit.Framework;

namespace KernelEngine.Tests.Interop;

/// <summary>
/// GGUF files written by llama.cpp's own quantizer (LLamaSharp's LLamaQuantizer) from an F32 file we exported: every
/// tensor of a format in our table has the bytes our reference quantizer gives for the same F32 rows, and the model
/// loads and gives llama.cpp's logits on the same file.
/// </summary>
[Category("LlamaCpp"), Explicit("loads llama.cpp natively into the test host: run by its own step in .ci/run (--filter Category=LlamaCpp)")]
public sealed class LlamaCppGgufTests
{
    public static readonly string[] Ftypes = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k_m", "q5_k_m", "q6_k"];

    /// <summary>llama.cpp's tensor names for our Hugging Face names (llama family).</summary>
    private static string GgufName(string hf) => hf switch
    {
        "model.embed_tokens.weight" => "token_embd.weight",
        "lm_head.weight" => "output.weight",
        "model.norm.weight" => "output_norm.weight",
        _ => "blk." + hf["model.layers.".Length..].Replace("self_attn.q_proj", "attn_q").Replace("self_attn.k_proj", "attn_k")
            .Replace("self_attn.v_proj", "attn_v").Replace("self_attn.o_proj", "attn_output").Replace("mlp.gate_proj", "ffn_gate")
            .Replace("mlp.up_proj", "ffn_up").Replace("mlp.down_proj", "ffn_down").Replace("input_layernorm", "attn_norm")
            .Replace("post_attention_layernorm", "ffn_norm"),
    };

    [TestCase("llama-kq", "q4_k_m")]
    [TestCase("llama-kq", "q5_k_m")]
    [TestCase("llama-kq", "q6_k")]
    [TestCase("stories", "q4_k_m")]
    [TestCase("stories", "q5_k_m")]
    public void OurQuantizeMix_PicksLlamaCppsTypeForEveryTensor(string model, string mix)
    {
        string gguf = model == "stories" ? LlamaCpp.Quantized(mix, LlamaCpp.StoriesGguf()) : LlamaCpp.Quantized(mix);
        string source = model == "stories" ? SharedData.Stories : Path.Combine(Path.GetDirectoryName(LlamaCpp.F32Gguf())!, "llama-kq-f32");
        string outDir = Path.Combine(Path.GetTempPath(), $"ke-mix-{model}-{mix}-{Guid.NewGuid():N}");
        try
        {
            var m = QuantizationMix.Parse(mix);
            var report = ModelQuantizer.Quantize(source, outDir, new QuantizeOptions { Type = m.Base, Mix = QuantizationMix.Named.Contains(m) ? m : null, QuantizeEmbeddings = true });
            using var theirs = GgufFile.Open(gguf);
            var differ = new List<string>();
            foreach (var r in report.Where(r => r.Name.EndsWith(".weight") && !r.Name.Contains("norm")))
            {
                var t = theirs.Tensor(GgufName(r.Name));
                Assert.That(t, Is.Not.Null, r.Name);
                string theirType = WeightFormat.FromGgml(t!.Type)?.Name ?? t.Type.ToString();
                if (theirType != r.To.ToLowerInvariant()) differ.Add($"{r.Name}: ours {r.To}, llama.cpp {theirType}");
            }
            Assert.That(differ, Is.Empty, string.Join("\n", differ));
            using var ours = Model.Load(outDir);   // and the folder runs
            using var s = ours.CreateSession();
            Assert.That(s.Generate([1], new GenerationSettings { MaxTokens = 4, Sampling = KernelEngine.Decoding.SamplingSettings.Greedy }).Count(), Is.EqualTo(4));
        }
        finally
        {
            if (Directory.Exists(outDir)) Directory.Delete(outDir, true);
        }
    }

    [TestCaseSource(nameof(Ftypes))]
    public void LlamaCppQuantizedTensors_EqualOurQuantizerByteForByte(string ftype) => CompareBytes(LlamaCpp.F32Gguf(), ftype);

    /// <summary>The same on all-zero, constant, outlier, subnormal-scale, one-sign and near-fp16-limit rows.</summary>
    [TestCaseSource(nameof(Ftypes))]
    public void ExtremeBlocks_EqualOurQuantizerByteForByte(string ftype) => CompareBytes(LlamaCpp.ExtremeGguf(), ftype);

    private static unsafe void CompareBytes(string source, string ftype)
    {
        using var f32 = GgufFile.Open(source);
        using var q = GgufFile.Open(LlamaCpp.Quantized(ftype, source));
        var checkedTypes = new HashSet<string>();
        var mismatches = new List<string>();
        foreach (var t in q.Tensors)
        {
            var format = WeightFormat.FromGgml(t.Type);
            Assert.That(format, Is.Not.Null, $"{t.Name}: {t.Type} is not in the format table");
            if (format!.Type == WeightType.F32) continue;
            var src = f32.Tensor(t.Name)!;
            Assert.That(src.Type, Is.EqualTo(GgmlType.F32));
            int cols = (int)t.Dims[0];
            long rows = t.Elements / cols, rowBytes = format.RowBytes(cols);
            var ours = new byte[rowBytes];
            int bad = 0;
            for (long r = 0; r < rows; r++)
            {
                var x = new ReadOnlySpan<float>(f32.DataPointer(src) + r * cols * 4, cols);
                format.QuantizeRow(x, ours);
                var theirs = new ReadOnlySpan<byte>(q.DataPointer(t) + r * rowBytes, (int)rowBytes);
                if (!theirs.SequenceEqual(ours)) bad++;
            }
            checkedTypes.Add(format.Name);
            if (bad > 0) mismatches.Add($"{t.Name} ({format.Name}): {bad} of {rows} rows differ");
        }
        TestContext.Out.WriteLine($"{ftype}: compared {string.Join(", ", checkedTypes)}");
        Assert.That(mismatches, Is.Empty, string.Join("\n", mismatches));
    }
}

/// <summary>The same llama.cpp-written files run in both engines: logits at 128 positions agree.</summary>
[Category("LlamaCpp"), Explicit("loads llama.cpp natively into the test host: run by its own step in .ci/run (--filter Category=LlamaCpp)")]
public sealed class LlamaCppLogitTests
{
    public static readonly string[] Ftypes = LlamaCppGgufTests.Ftypes;

    /// <summary>(top-1 agreement, top-1 agreement where llama.cpp's best two logits differ by more than
    /// <paramref name="margin"/>, mean KL(llama.cpp || ours), max |logit diff|) over the positions.</summary>
    public static (double Top1, double Top1Decisive, double MeanKl, double MaxDiff) Compare(float[][] theirs, float[] ours, int vocab, double margin)
    {
        int agree = 0, decisive = 0, agreeDecisive = 0; double kl = 0, maxDiff = 0;
        for (int p = 0; p < theirs.Length; p++)
        {
            var a = theirs[p];
            var b = ours.AsSpan(p * vocab, vocab);
            bool same = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(a) == System.Numerics.Tensors.TensorPrimitives.IndexOfMax(b);
            if (same) agree++;
            var sorted = a.OrderByDescending(v => v).Take(2).ToArray();
            if (sorted[0] - sorted[1] > margin) { decisive++; if (same) agreeDecisive++; }
            double ma = a.Max(), mb = double.NegativeInfinity;
            foreach (float v in b) mb = Math.Max(mb, v);
            double za = 0, zb = 0;
            for (int i = 0; i < vocab; i++) { za += Math.Exp(a[i] - ma); zb += Math.Exp(b[i] - mb); }
            double la = ma + Math.Log(za), lb = mb + Math.Log(zb), k = 0;
            for (int i = 0; i < vocab; i++)
            {
                double lpa = a[i] - la, lpb = b[i] - lb;
                k += Math.Exp(lpa) * (lpa - lpb);
                maxDiff = Math.Max(maxDiff, Math.Abs(a[i] - b[i]));
            }
            kl += k;
        }
        return (agree / (double)theirs.Length, decisive == 0 ? 1 : agreeDecisive / (double)decisive, kl / theirs.Length, maxDiff);
    }

    [TestCaseSource(nameof(Ftypes))]
    public void LlamaCppQuantizedFile_LogitsAgreeWithLlamaCpp(string ftype)
    {
        string gguf = LlamaCpp.Quantized(ftype);
        var rng = new Random(7);
        int[] tokens = [1, .. Enumerable.Range(0, 127).Select(_ => rng.Next(3, 1024))];
        var theirs = LlamaCpp.Logits(gguf, tokens);
        using var model = Model.Load(gguf, new ModelOptions { Device = "cpu", ContextLength = 256 });
        using var s = model.CreateSession();
        int vocab = model.Config.VocabSize;
        var ours = new float[tokens.Length * vocab];
        s.FeedAll(tokens, ours);
        // Random weights leave near-ties between the best two logits; llama.cpp rounds activations to 8 bits for quantized
        // products, so a tie can break either way. Top-1 is asserted where llama.cpp's margin exceeds 0.05.
        var (top1, decisive, kl, maxDiff) = Compare(theirs, ours, vocab, margin: 0.05);
        TestContext.Out.WriteLine($"{ftype}: {tokens.Length} positions, top-1 agreement {top1:P1} ({decisive:P1} where the margin > 0.05), mean KL {kl:E2}, max |diff| {maxDiff:E2}");
        Assert.That(decisive, Is.GreaterThanOrEqualTo(0.99));
        Assert.That(top1, Is.GreaterThanOrEqualTo(0.9));
        Assert.That(kl, Is.LessThanOrEqualTo(1e-3));
    }

    [TestCase("q4_k_m")]
    [TestCase("q5_k_m")]
    [TestCase("q6_k")]
    public void Stories260KQuantizedByLlamaCpp_TopTokenAgrees(string ftype)
    {
        // A real model: decisive logits. Its rows (64, 172) are not whole K-quant blocks, so llama.cpp's K mixes fall back
        // to other types for them (q8_0, q5_0, f16, ...); the file runs whatever they are. (Plain q8_0/q4_0 files cannot
        // be made from it: llama.cpp refuses the 172-wide rows.)
        string gguf = LlamaCpp.Quantized(ftype, LlamaCpp.StoriesGguf());
        var tokens = Reference.Stories().BosGreedyIds.Take(200).ToArray();
        var theirs = LlamaCpp.Logits(gguf, tokens);
        using var model = Model.Load(gguf, new ModelOptions { Device = "cpu" });
        using var s = model.CreateSession();
        var ours = new float[tokens.Length * 512];
        s.FeedAll(tokens, ours);
        var (top1, _, kl, maxDiff) = Compare(theirs, ours, 512, margin: 0);
        TestContext.Out.WriteLine($"stories260K {ftype}: {tokens.Length} positions, top-1 agreement {top1:P1}, mean KL {kl:E2}, max |diff| {maxDiff:E2}; types " +
            string.Join(", ", model.Transformer.Weights.All().Select(w => w.Type.Name()).Distinct()));
        Assert.That(top1, Is.GreaterThanOrEqualTo(0.99));
        Assert.That(kl, Is.LessThanOrEqualTo(1e-3));
    }
}

/// <summary>What we write llama.cpp loads: our GGUF export in each format runs in llama.cpp with our logits.</summary>
[Category("LlamaCpp"), Explicit("loads llama.cpp natively into the test host: run by its own step in .ci/run (--filter Category=LlamaCpp)")]
public sealed class GgufExportRoundTripTests
{
    [TestCase("q4_k")]
    [TestCase("q5_k")]
    [TestCase("q6_k")]
    [TestCase("q5_1")]
    [TestCase("q8_0")]
    public void OurGgufExport_LoadsInLlamaCppWithTheSameLogits(string type)
    {
        string folder = Path.Combine(Path.GetDirectoryName(LlamaCpp.F32Gguf())!, "llama-kq-f32");
        string gguf = Path.Combine(Path.GetTempPath(), $"ke-export-{type}-{Guid.NewGuid():N}.gguf");
        try
        {
            GgufExporter.Export(folder, gguf, WeightFormat.FromName(type)!.Type);
            var rng = new Random(11);
            int[] tokens = [1, .. Enumerable.Range(0, 63).Select(_ => rng.Next(3, 1024))];
            var theirs = LlamaCpp.Logits(gguf, tokens);
            using var model = Model.Load(gguf);
            Assert.That(model.Transformer.Weights.Layers[0].Wq.Type, Is.EqualTo(WeightFormat.FromName(type)!.Type));
            using var s = model.CreateSession();
            var ours = new float[tokens.Length * 1024];
            s.FeedAll(tokens, ours);
            var (top1, decisive, kl, maxDiff) = LlamaCppLogitTests.Compare(theirs, ours, 1024, margin: 0.05);
            TestContext.Out.WriteLine($"export {type}: top-1 {top1:P1} ({decisive:P1} decisive), KL {kl:E2}, max |diff| {maxDiff:E2}");
            Assert.That(decisive, Is.GreaterThanOrEqualTo(0.99));
            Assert.That(kl, Is.LessThanOrEqualTo(1e-3));
        }
        finally { File.Delete(gguf); }
    }

    /// <summary>RoPE scaling past the original context against llama.cpp's implementation: the preset (512 positions) says
    /// it was trained on 128, stretched 4x; 300 positions are compared.</summary>
    [TestCase("linear")]
    [TestCase("yarn")]
    public void RopeScaling_LogitsAgreeWithLlamaCpp(string type)
    {
        string source = Path.Combine(Path.GetDirectoryName(LlamaCpp.F32Gguf())!, "llama-kq-f32");
        string folder = Path.Combine(Path.GetTempPath(), $"ke-rope-{type}-{Guid.NewGuid():N}");
        string gguf = folder + ".gguf";
        try
        {
            Directory.CreateDirectory(folder);
            foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
            var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
            config["rope_scaling"] = new System.Text.Json.Nodes.JsonObject { ["rope_type"] = type, ["factor"] = 4.0, ["original_max_position_embeddings"] = 128 };
            File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
            GgufExporter.Export(folder, gguf, WeightType.F32);
            var rng = new Random(13);
            int[] tokens = [1, .. Enumerable.Range(0, 299).Select(_ => rng.Next(3, 1024))];
            var theirs = LlamaCpp.Logits(gguf, tokens);
            var unscaled = LlamaCpp.Logits(LlamaCpp.F32Gguf(), tokens);
            foreach (string path in new[] { folder, gguf })
            {
                using var model = Model.Load(path, new ModelOptions { ContextLength = 512 });
                using var s = model.CreateSession();
                var ours = new float[tokens.Length * 1024];
                s.FeedAll(tokens, ours);
                var (top1, decisive, kl, maxDiff) = LlamaCppLogitTests.Compare(theirs, ours, 1024, margin: 0.05);
                var (_, _, klUnscaled, _) = LlamaCppLogitTests.Compare(unscaled, ours, 1024, margin: 0.05);
                TestContext.Out.WriteLine($"{type} ({Path.GetExtension(path)}): top-1 {top1:P1} ({decisive:P1} decisive), KL {kl:E2}, max |diff| {maxDiff:E2}; KL against the unscaled model {klUnscaled:E2}");
                Assert.That(decisive, Is.GreaterThanOrEqualTo(0.99));
                Assert.That(kl, Is.LessThanOrEqualTo(1e-4));
                Assert.That(klUnscaled, Is.GreaterThan(10 * kl), "the scaling must change the logits (else this test checks nothing)");
            }
        }
        finally
        {
            File.Delete(gguf);
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
        }
    }

    /// <summary>A Q8_0 KV cache against llama.cpp's (which also quantizes the query to Q8_0 for its integer dot): the logits
    /// agree, and both sit about as far from the F32-cache logits as each other.</summary>
    [Test]
    public void Q8_0KvCache_LogitsAgreeWithLlamaCpp()
    {
        string gguf = LlamaCpp.F32Gguf();
        var rng = new Random(17);
        int[] tokens = [1, .. Enumerable.Range(0, 299).Select(_ => rng.Next(3, 1024))];
        var theirs = LlamaCpp.Logits(gguf, tokens, LLama.Native.GGMLType.GGML_TYPE_Q8_0);
        var f32 = LlamaCpp.Logits(gguf, tokens);
        using var model = Model.Load(gguf, new ModelOptions { ContextLength = 512, KvCacheType = "q8_0" });
        using var s = model.CreateSession();
        var ours = new float[tokens.Length * 1024];
        s.FeedAll(tokens, ours);
        var (top1, decisive, kl, maxDiff) = LlamaCppLogitTests.Compare(theirs, ours, 1024, margin: 0.05);
        var (_, _, klOursF32, _) = LlamaCppLogitTests.Compare(f32, ours, 1024, margin: 0.05);
        var (_, _, klTheirsF32, _) = LlamaCppLogitTests.Compare(f32, theirs.SelectMany(r => r).ToArray(), 1024, margin: 0.05);
        TestContext.Out.WriteLine($"q8_0 cache: top-1 {top1:P1} ({decisive:P1} decisive), KL {kl:E2}, max |diff| {maxDiff:E2}; " +
            $"KL to the F32 cache: ours {klOursF32:E2}, llama.cpp {klTheirsF32:E2}");
        Assert.That(decisive, Is.GreaterThanOrEqualTo(0.99));
        Assert.That(kl, Is.LessThanOrEqualTo(1e-3));
        Assert.That(klOursF32, Is.LessThanOrEqualTo(Math.Max(2 * klTheirsF32, 1e-5)), "our Q8_0 cache must not lose more than llama.cpp's");
    }

    [Test]
    public void ChatTemplate_TravelsFromTokenizerConfigIntoGgufAndBack()
    {
        string template = File.ReadAllText(SharedData.Require("chat-templates/chatml.jinja"));
        using var m = new Hardening.TempModel(SharedData.Stories);
        File.WriteAllText(Path.Combine(m.Dir, "tokenizer_config.json"), System.Text.Json.JsonSerializer.Serialize(new { chat_template = template }));
        using (var folder = Model.Load(m.Dir)) Assert.That(folder.ChatTemplate, Is.EqualTo(template));
        string gguf = Path.Combine(m.Dir, "out.gguf");
        GgufExporter.Export(m.Dir, gguf);
        using var fromGguf = Model.Load(gguf);
        Assert.That(fromGguf.ChatTemplate, Is.EqualTo(template));
    }
}

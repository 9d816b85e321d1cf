using KernelEngine.Benchmarking;
using KernelEngine.Decoding;
using KernelEngine.Formats;
using KernelEngine.Kernels;
using NUnit.Framework;

namespace KernelEngine.Tests.Interop;

/// <summary>
/// Each family's tiny preset (random weights of the family's real tensor layout, config.json as Hugging Face writes it)
/// against llama.cpp on the GGUF we export from the same folder: F32 logits at 80 positions within 1e-3, and the same
/// 32 greedy tokens. Both engines load the GGUF; ours also the folder, so the Hugging Face config path is checked too.
/// </summary>
[Category("LlamaCpp"), Explicit("loads llama.cpp natively into the test host: run by its own step in .ci/run (--filter Category=LlamaCpp)")]
public sealed class FamilyParityTests
{
    /// <param name="preset">the family's tiny preset</param>
    /// <param name="fields">the Hugging Face config.json fields this comparison exercises (beyond Llama's)</param>
    [TestCase("qwen3-tiny", "model_type qwen3; head_dim 32 with hidden_size 64 / 4 heads (q width 128 != hidden); " +
        "num_key_value_heads 2 (GQA); self_attn.q_norm / k_norm (RMSNorm per head, rms_norm_eps); tie_word_embeddings; attention_bias false")]
    [TestCase("qwen2-tiny", "model_type qwen2 (q/k/v biases whatever attention_bias says); num_key_value_heads 2 (GQA); tie_word_embeddings")]
    [TestCase("phi3-tiny", "model_type phi3; self_attn.qkv_proj (q, k, v fused, split by rows) and mlp.gate_up_proj (gate, up fused); " +
        "num_key_value_heads 2 (GQA, so the three parts differ in size); untied lm_head")]
    public void TinyPreset_MatchesLlamaCpp(string preset, string fields)
    {
        TestContext.Out.WriteLine($"{preset}: {fields}");
        string dir = TestScratch.Path("families");
        Directory.CreateDirectory(dir);
        string cached = Presets.Materialize(preset, WeightType.F32, dir);
        // A neutral folder name: the GGUF's general.name comes from it, and llama.cpp special-cases names containing
        // "phi3" (it then looks up SentencePiece tokens such as "</s>" this synthetic BPE vocabulary does not have).
        string folder = Path.Combine(dir, $"family-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        foreach (var f in Directory.GetFiles(cached)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        string gguf = Path.Combine(dir, preset + ".gguf");
        GgufExporter.Export(folder, gguf, WeightType.F32);
        var p = Presets.Get(preset);
        var rng = new Random(17);
        int[] tokens = [1, .. Enumerable.Range(0, 79).Select(_ => rng.Next(3, p.Vocab))];
        var theirs = LlamaCpp.Logits(gguf, tokens);
        var theirIds = LlamaCpp.Greedy(gguf, tokens[..16], 32);
        foreach (string path in new[] { gguf, folder })
        {
            using var model = Model.Load(path, new ModelOptions { Device = "cpu" });
            using var s = model.CreateSession();
            var ours = new float[tokens.Length * p.Vocab];
            s.FeedAll(tokens, ours);
            double maxDiff = 0;
            for (int i = 0; i < tokens.Length; i++)
                for (int v = 0; v < p.Vocab; v++) maxDiff = Math.Max(maxDiff, Math.Abs(theirs[i][v] - ours[(long)i * p.Vocab + v]));
            s.Reset();
            var ids = s.Generate(tokens[..16], new GenerationSettings { MaxTokens = 32, Sampling = SamplingSettings.Greedy, StopAtEos = false })
                .Select(t => t.Id).ToArray();
            TestContext.Out.WriteLine($"{Path.GetFileName(path)}: max |logit diff| {maxDiff:E2} over {tokens.Length} positions; greedy {string.Join(" ", ids.Take(12))} ...");
            Assert.That(maxDiff, Is.LessThanOrEqualTo(1e-3), path);
            Assert.That(ids, Is.EqualTo(theirIds), path);
        }
    }
}

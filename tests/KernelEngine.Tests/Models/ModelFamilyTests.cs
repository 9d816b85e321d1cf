using KernelEngine.Benchmarking;
using KernelEngine.Formats;
using KernelEngine.Kernels;
using KernelEngine.Models.Families;
using NUnit.Framework;

namespace KernelEngine.Tests.Models;

/// <summary>The family descriptors: names that round-trip between Hugging Face and GGUF, fused tensors that keep their
/// stored type when split, and every Llama-architecture family's preset loading from its folder and its GGUF export.</summary>
public sealed class ModelFamilyTests
{
    [Test]
    public void EveryTensorName_RoundTripsBetweenHuggingFaceAndGguf()
    {
        foreach (var family in ModelFamilies.All)
            foreach (var slot in family.Tensors)
                foreach (int layer in slot.PerLayer ? new[] { 0, 7, 31 } : [0])
                    Assert.That(family.HfNameOf(slot.GgufName(layer)), Is.EqualTo(slot.HfName(layer)), $"{family.Name}: {slot.Gguf}");
        Assert.That(ModelFamilies.Qwen3.HfNameOf("blk.x.attn_q.weight"), Is.Null);
        Assert.That(ModelFamilies.Qwen3.HfNameOf("blk.3.no_such.weight"), Is.Null);
    }

    /// <summary>Phi-3's qkv_proj and gate_up_proj split by row ranges of the stored Q8_0 bytes: the parts stay Q8_0 with
    /// the rows of q, k, v (GQA: k and v narrower than q) and of gate, up; the logits stay within Q8_0's error of F32's.</summary>
    [Test]
    public void FusedProjections_SplitByRows_StayQuantized()
    {
        string dir = TestScratch.Path("families-unit");
        string f32 = Presets.Materialize("phi3-tiny", WeightType.F32, dir), q8 = Presets.Materialize("phi3-tiny", WeightType.Q8_0, dir);
        using var exact = Model.Load(f32, new ModelOptions { Device = "cpu" });
        using var quant = Model.Load(q8, new ModelOptions { Device = "cpu" });
        var c = quant.Config;
        var layer = quant.Transformer.Weights.Layers[1];
        Assert.That(new[] { layer.Wq.Type, layer.Wk.Type, layer.Wv.Type, layer.WGate!.Type, layer.WUp.Type }, Is.All.EqualTo(WeightType.Q8_0));
        Assert.That(new[] { layer.Wq.Rows, layer.Wk.Rows, layer.Wv.Rows }, Is.EqualTo(new[] { c.QDim, c.KvDim, c.KvDim }));
        Assert.That(new[] { layer.WGate.Rows, layer.WUp.Rows }, Is.EqualTo(new[] { c.IntermediateSize, c.IntermediateSize }));
        int[] tokens = [1, 50, 60, 70, 80, 90, 100];
        var a = new float[tokens.Length * c.VocabSize];
        var b = new float[tokens.Length * c.VocabSize];
        using (var s = exact.CreateSession()) s.FeedAll(tokens, a);
        using (var s = quant.CreateSession()) s.FeedAll(tokens, b);
        double maxDiff = a.Zip(b, (x, y) => Math.Abs(x - y)).Max(), scale = a.Max(Math.Abs);
        Assert.That(maxDiff, Is.GreaterThan(0), "the Q8_0 model really is quantized");
        Assert.That(maxDiff, Is.LessThanOrEqualTo(0.02 * scale + 1e-3), $"max |diff| {maxDiff} of logits up to {scale}");
    }

    /// <summary>Every Llama-architecture family's tiny preset gives the same logits from its folder and from the GGUF we
    /// export (names, metadata and q/k layout through the family's table; llama.cpp's side is in Interop).</summary>
    [TestCase("qwen2-tiny")]
    [TestCase("qwen3-tiny")]
    [TestCase("phi3-tiny")]
    [TestCase("gemma2-tiny")]
    [TestCase("gemma3-tiny")]
    [TestCase("llama-tiny")]
    public void FolderAndGgufExport_GiveTheSameLogits(string preset)
    {
        string dir = TestScratch.Path("families-unit");
        string folder = Presets.Materialize(preset, WeightType.F32, dir);
        string gguf = Path.Combine(dir, $"{preset}-{Guid.NewGuid():N}.gguf");
        GgufExporter.Export(folder, gguf, WeightType.F32);
        int[] tokens = [1, .. Enumerable.Range(0, 23).Select(i => 5 + 13 * i)];   // past gemma2-tiny's window of 16
        float[] Logits(string path)
        {
            using var m = Model.Load(path, new ModelOptions { Device = "cpu" });
            using var s = m.CreateSession();
            var l = new float[tokens.Length * m.Config.VocabSize];
            s.FeedAll(tokens, l);
            return l;
        }
        var a = Logits(folder);
        var b = Logits(gguf);
        Assert.That(a.Zip(b, (x, y) => Math.Abs(x - y)).Max(), Is.LessThanOrEqualTo(1e-5));
        File.Delete(gguf);
    }

    /// <summary>The new ops and weight splits on the ILGPU backend (its CPU accelerator runs the GPU kernels): the same
    /// logits as the CPU backend within 1e-4.</summary>
    [TestCase("qwen3-tiny")]
    [TestCase("phi3-tiny")]
    [TestCase("gemma2-tiny")]
    [TestCase("gemma3-tiny")]
    public void IlgpuBackend_MatchesCpu(string preset)
    {
        string folder = Presets.Materialize(preset, WeightType.F32, TestScratch.Path("families-unit"));
        int[] tokens = [1, .. Enumerable.Range(0, 23).Select(i => 5 + 13 * i)];   // past gemma2-tiny's window of 16
        float[] Logits(string device)
        {
            using var m = Model.Load(folder, new ModelOptions { Device = device });
            using var s = m.CreateSession();
            var l = new float[tokens.Length * m.Config.VocabSize];
            s.FeedAll(tokens, l);
            return l;
        }
        var cpu = Logits("cpu");
        var gpu = Logits("ilgpu-cpu");
        Assert.That(cpu.Zip(gpu, (x, y) => Math.Abs(x - y)).Max(), Is.LessThanOrEqualTo(1e-4));
    }

    /// <summary>Mistral's window runs in every layer: positions inside it give the logits of full attention, later ones
    /// differ (the kernels' window is checked against the scalar reference in BackendKernelTests); the context is not
    /// capped. use_sliding_window false turns it off.</summary>
    [Test]
    public void MistralSlidingWindow_Runs()
    {
        string windowed = ConfigVariant("llama-tiny", c => { c["model_type"] = "mistral"; c["sliding_window"] = 16; });
        string off = ConfigVariant("llama-tiny", c => { c["model_type"] = "mistral"; c["sliding_window"] = 16; c["use_sliding_window"] = false; });
        var rng = new Random(3);
        int[] tokens = [1, .. Enumerable.Range(0, 39).Select(_ => rng.Next(3, 512))];
        float[] Logits(string folder, out int context)
        {
            using var m = Model.Load(folder, new ModelOptions { Device = "cpu" });
            context = m.ContextLength;
            Assert.That(m.Config.SlidingWindowRuns, Is.EqualTo(folder == windowed));
            using var s = m.CreateSession();
            var l = new float[tokens.Length * 512];
            s.FeedAll(tokens, l);
            return l;
        }
        var a = Logits(windowed, out int ctxA);
        var b = Logits(off, out int ctxB);
        Assert.That((ctxA, ctxB), Is.EqualTo((512, 512)));
        double inside = 0, outside = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Abs(a[i] - b[i]);
            if (i < 16 * 512) inside = Math.Max(inside, d); else outside = Math.Max(outside, d);
        }
        Assert.That(inside, Is.LessThanOrEqualTo(1e-5), "positions 0..15 see the same keys");
        Assert.That(outside, Is.GreaterThan(1e-3), "later positions see only the last 16");
    }

    /// <summary>Qwen's window runs on the layers from max_window_layers on (transformers' rule): with max_window_layers 2
    /// of 4, layers 0-1 are full and 2-3 windowed, and the context is not capped.</summary>
    [Test]
    public void QwenSlidingWindow_RunsFromMaxWindowLayers()
    {
        string folder = ConfigVariant("qwen2-tiny", c => { c["use_sliding_window"] = true; c["sliding_window"] = 8; c["max_window_layers"] = 2; });
        using var model = Model.Load(folder, new ModelOptions { Device = "cpu" });
        Assert.That(model.ContextLength, Is.EqualTo(512));
        Assert.That(model.Config.SlidingLayers, Is.EqualTo(new[] { false, false, true, true }));
        var rng = new Random(5);
        int[] tokens = [1, .. Enumerable.Range(0, 19).Select(_ => rng.Next(3, 512))];
        using var plain = Model.Load(Presets.Materialize("qwen2-tiny", WeightType.F32, TestScratch.Path("families-unit")), new ModelOptions { Device = "cpu" });
        var a = new float[tokens.Length * 512];
        var b = new float[tokens.Length * 512];
        using (var s = model.CreateSession()) s.FeedAll(tokens, a);
        using (var s = plain.CreateSession()) s.FeedAll(tokens, b);
        double inside = 0, outside = 0;
        for (int i = 0; i < a.Length; i++) { double d = Math.Abs(a[i] - b[i]); if (i < 8 * 512) inside = Math.Max(inside, d); else outside = Math.Max(outside, d); }
        Assert.That(inside, Is.LessThanOrEqualTo(1e-5));
        Assert.That(outside, Is.GreaterThan(1e-4));
    }

    [TestCase(null, null)]
    [TestCase(true, 64)]
    [TestCase(false, null)]
    public void QwenSlidingWindow_AppliesOnlyWhenAskedFor(bool? useSlidingWindow, int? expected)
    {
        var json = new System.Text.Json.Nodes.JsonObject
        {
            ["model_type"] = "qwen2", ["hidden_size"] = 64, ["intermediate_size"] = 128, ["num_hidden_layers"] = 2, ["num_attention_heads"] = 4,
            ["vocab_size"] = 512, ["max_position_embeddings"] = 512, ["sliding_window"] = 64,
        };
        if (useSlidingWindow is bool u) json["use_sliding_window"] = u;
        using var doc = System.Text.Json.JsonDocument.Parse(json.ToJsonString());
        Assert.That(ModelConfig.Parse("config.json", doc.RootElement).SlidingWindow, Is.EqualTo(expected));
    }

    /// <summary>Partial rotary (Phi-4-mini): head_dim × partial_rotary_factor leading dimensions rotate (llama-tiny: 6 of 8),
    /// the rest pass through; an odd count is a format error naming the field. Against llama.cpp: Interop/FamilyParityTests.</summary>
    [Test]
    public void PartialRotary_RotatesTheLeadingDimensions()
    {
        string partial = ConfigVariant("llama-tiny", config => config["partial_rotary_factor"] = 0.75);
        using (var m = Model.Load(partial, new ModelOptions { Device = "cpu" }))
        {
            Assert.That(m.Config.RotaryDim, Is.EqualTo(6));
            Assert.That(m.Transformer.Rope!.InvFreq, Has.Length.EqualTo(3));
        }
        string odd = ConfigVariant("llama-tiny", config => config["partial_rotary_factor"] = 0.375);
        var e = Assert.Throws<ModelFormatException>(() => Model.Load(odd));
        Assert.That(e!.Message, Does.Contain("partial_rotary_factor"));
    }

    internal static string ConfigVariant(string preset, Action<System.Text.Json.Nodes.JsonObject> edit)
    {
        string dir = TestScratch.Path("families-unit");
        string source = Presets.Materialize(preset, WeightType.F32, dir);
        string folder = Path.Combine(dir, $"variant-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(folder, Path.GetFileName(f)));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json")))!.AsObject();
        edit(config);
        File.WriteAllText(Path.Combine(folder, "config.json"), config.ToJsonString());
        return folder;
    }
}

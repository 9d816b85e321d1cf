using System.Text.Json;
using KernelEngine.Formats;
using KernelEngine.Kernels.Rope;
using NUnit.Framework;

namespace KernelEngine.Tests.Formats;

/// <summary>config.json of each supported family, as the Hugging Face files spell them.</summary>
public sealed class ModelConfigTests
{
    private static ModelConfig Parse(string json) => ModelConfig.Parse("config.json", JsonDocument.Parse(json).RootElement);

    [Test]
    public void Llama3_WithGqaRopeScalingAndEosList()
    {
        var c = Parse("""
        {"model_type":"llama","hidden_size":2048,"intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,
         "num_key_value_heads":8,"vocab_size":128256,"max_position_embeddings":131072,"rms_norm_eps":1e-5,"rope_theta":500000.0,
         "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,"original_max_position_embeddings":8192,"rope_type":"llama3"},
         "tie_word_embeddings":true,"bos_token_id":128000,"eos_token_id":[128001,128008,128009],"hidden_act":"silu"}
        """);
        Assert.That(c.Architecture, Is.EqualTo(Architecture.Llama));
        Assert.That((c.Heads, c.KvHeads, c.HeadDim, c.KvDim), Is.EqualTo((32, 8, 64, 512)));
        Assert.That(c.RopeTheta, Is.EqualTo(500000));
        Assert.That(c.RopeScaling, Is.EqualTo(new KernelEngine.Kernels.Rope.Llama3Scaling(32, 1, 4, 8192)));
        Assert.That(c.EosTokenIds, Is.EqualTo(new[] { 128001, 128008, 128009 }));
        Assert.That(c.TieWordEmbeddings, Is.True);
    }

    [Test]
    public void Qwen2_HasAttentionBiases()
    {
        var c = Parse("""
        {"model_type":"qwen2","hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,
         "num_key_value_heads":2,"vocab_size":151936,"max_position_embeddings":32768,"rms_norm_eps":1e-6,"rope_theta":1000000.0,
         "tie_word_embeddings":true,"bos_token_id":151643,"eos_token_id":151645,"hidden_act":"silu"}
        """);
        Assert.That(c.AttentionBias, Is.True);
        Assert.That(c.HeadDim, Is.EqualTo(64));
        Assert.That(c.EosTokenIds, Is.EqualTo(new[] { 151645 }));
    }

    [Test]
    public void Mistral_DefaultsUntiedAndNoBias()
    {
        var c = Parse("""
        {"model_type":"mistral","hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,"num_attention_heads":32,
         "num_key_value_heads":8,"vocab_size":32000,"max_position_embeddings":32768,"rms_norm_eps":1e-5,"rope_theta":1000000.0,
         "bos_token_id":1,"eos_token_id":2}
        """);
        Assert.That(c.TieWordEmbeddings, Is.False);
        Assert.That(c.AttentionBias, Is.False);
        Assert.That(c.Activation, Is.EqualTo("silu"));
    }

    [Test]
    public void Gpt2_UsesNInnerAndActivationFunction_NotTheStrayFields()
    {
        var c = ModelConfig.Load(Path.Combine(SharedData.Gpt2Tiny, "config.json"));
        Assert.That(c.IntermediateSize, Is.EqualTo(128), "n_inner null means 4 * n_embd, not intermediate_size 37");
        Assert.That(c.Activation, Is.EqualTo("gelu_new"));
        Assert.That(c.NormEps, Is.EqualTo(1e-5f));
    }

    [TestCase("""{"model_type":"llama","hidden_size":64,"intermediate_size":10,"num_hidden_layers":1,"num_attention_heads":6,"vocab_size":9}""", "not divisible")]
    [TestCase("""{"model_type":"llama","hidden_size":64,"intermediate_size":10,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3,"vocab_size":9}""", "num_key_value_heads 3")]
    [TestCase("""{"model_type":"llama","hidden_size":64,"intermediate_size":10,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":9,"rope_scaling":{"rope_type":"ntk-by-parts"}}""", "rope_scaling type 'ntk-by-parts'")]
    [TestCase("""{"model_type":"llama","hidden_size":64,"intermediate_size":10,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":9,"rope_scaling":{"rope_type":"longrope","short_factor":[1,1],"long_factor":[1,1]}}""", "expected head dimension / 2 = 8")]
    [TestCase("""{"model_type":"llama","hidden_size":64,"intermediate_size":10,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":9,"rope_scaling":{"rope_type":"longrope","short_factor":[1,"x"],"long_factor":[1,1]}}""", "'rope_scaling.short_factor[1]'")]
    [TestCase("""{"model_type":"llama","hidden_size":64,"intermediate_size":10,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":9,"hidden_act":"relu"}""", "hidden_act 'relu'")]
    public void InconsistentConfigs_AreNamedErrors(string json, string message)
    {
        var e = Assert.Throws<ModelFormatException>(() => Parse(json));
        Assert.That(e!.Message, Does.Contain("config.json").And.Contain(message));
    }

    private static ModelConfig WithScaling(string scaling) => Parse($$"""
        {"model_type":"llama","hidden_size":256,"intermediate_size":10,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":9,
         "max_position_embeddings":16384,"rope_theta":10000.0,"rope_scaling":{{scaling}}}
        """);

    [Test]
    public void RopeScalingTypes_ParseAsTransformersSpellsThem()
    {
        Assert.That(WithScaling("""{"type":"linear","factor":4.0}""").RopeScaling, Is.EqualTo(new LinearScaling(4)));
        Assert.That(WithScaling("""{"rope_type":"dynamic","factor":2.0}""").RopeScaling, Is.EqualTo(new DynamicNtkScaling(2, 16384)));
        Assert.That(WithScaling("""{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":4096}""").RopeScaling, Is.EqualTo(new YarnScaling(4, 4096)));
        var lr = (LongRopeScaling)WithScaling("""{"rope_type":"longrope","short_factor":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"long_factor":[2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2],"original_max_position_embeddings":4096}""").RopeScaling!;
        Assert.That((lr.OriginalMaxPositions, lr.MaxPositions, lr.LongFactor[31]), Is.EqualTo((4096, 16384, 2f)));
        // Phi-3's attention factor: sqrt(1 + ln(16384 / 4096) / ln(4096))
        Assert.That(lr.AttentionFactor(16384), Is.EqualTo(Math.Sqrt(1 + Math.Log(4) / Math.Log(4096))).Within(1e-12));
    }

    /// <summary>The defining properties of each rule, frequency by frequency: linear divides every frequency; YaRN keeps
    /// those that turn more than beta_fast times over the original context, divides those that turn fewer than
    /// beta_slow times, and ramps monotonically between; longrope divides by its short or long list by the context.</summary>
    [Test]
    public void RopeScalingRules_HoldPerFrequency()
    {
        const int hd = 64; const double theta = 10000;
        var plain = RopeFrequencies.Compute(hd, theta);
        var linear = RopeFrequencies.Compute(hd, theta, new LinearScaling(4));
        Assert.That(linear.Select((f, i) => f / plain[i]), Is.All.EqualTo(0.25f).Within(1e-6));

        var yarn = RopeFrequencies.Compute(hd, theta, new YarnScaling(8, 2048));
        for (int i = 0; i < hd / 2; i++)
        {
            double turns = 2048 * plain[i] / (2 * Math.PI);   // rotations over the original context
            double ratio = yarn[i] / plain[i];
            if (turns > 32 * 1.5) Assert.That(ratio, Is.EqualTo(1).Within(1e-6), $"pair {i}: {turns:F1} turns");
            if (turns < 1 / 1.5) Assert.That(ratio, Is.EqualTo(1 / 8.0).Within(1e-6), $"pair {i}: {turns:F2} turns");
            if (i > 0) Assert.That(ratio, Is.LessThanOrEqualTo(yarn[i - 1] / plain[i - 1] + 1e-6), "monotone ramp");
        }
        Assert.That(new YarnScaling(8, 2048).AttentionFactor(0), Is.EqualTo(0.1 * Math.Log(8) + 1).Within(1e-12));

        var shortF = Enumerable.Repeat(1f, hd / 2).ToArray();
        var longF = Enumerable.Range(0, hd / 2).Select(i => 1f + i).ToArray();
        var lr = new LongRopeScaling(shortF, longF, 4096, 16384);
        Assert.That(RopeFrequencies.Compute(hd, theta, lr, contextLength: 4096), Is.EqualTo(plain));
        var stretched = RopeFrequencies.Compute(hd, theta, lr, contextLength: 8192);
        Assert.That(stretched.Select((f, i) => f * longF[i] / plain[i]), Is.All.EqualTo(1f).Within(1e-6));

        // dynamic NTK: θ' = θ·(f² - f + 1)^(d/(d-2)): the highest frequency stays, the lowest is divided by f² - f + 1 = 3
        var ntk = RopeFrequencies.Compute(hd, theta, new DynamicNtkScaling(2, 4096));
        Assert.That(ntk[0], Is.EqualTo(1f));
        Assert.That(ntk[hd / 2 - 1] / plain[hd / 2 - 1], Is.EqualTo(1 / 3.0).Within(1e-5));
    }
}

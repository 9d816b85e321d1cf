using System.Text.Json;
using KernelEngine.Formats;
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
    [TestCase("""{"model_type":"llama","hidden_size":64,"intermediate_size":10,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":9,"rope_scaling":{"rope_type":"yarn"}}""", "rope_scaling type 'yarn'")]
    [TestCase("""{"model_type":"llama","hidden_size":64,"intermediate_size":10,"num_hidden_layers":1,"num_attention_heads":4,"vocab_size":9,"hidden_act":"relu"}""", "hidden_act 'relu'")]
    public void InconsistentConfigs_AreNamedErrors(string json, string message)
    {
        var e = Assert.Throws<ModelFormatException>(() => Parse(json));
        Assert.That(e!.Message, Does.Contain("config.json").And.Contain(message));
    }
}

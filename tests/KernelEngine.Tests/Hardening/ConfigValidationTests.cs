using KernelEngine.Formats;
using NUnit.Framework;

namespace KernelEngine.Tests.Hardening;

/// <summary>
/// Every config value is checked against its range and against the tensors before anything is allocated: each case
/// below used to crash the process, run NaN logits to exit code 0, or run silently on the wrong shape.
/// </summary>
public sealed class ConfigValidationTests
{
    private static ModelFormatException LoadFails(TempModel m)
    {
        var e = Assert.Throws<ModelFormatException>(() => Model.Load(m.Dir).Dispose());
        return e!;
    }

    [TestCase("max_position_embeddings", "500000000", "'max_position_embeddings' = 500000000 is outside")]
    [TestCase("rope_theta", "0", "'rope_theta' = 0 is outside")]
    [TestCase("rope_theta", "-10000", "'rope_theta' = -10000 is outside")]
    [TestCase("rms_norm_eps", "-1e-5", "'rms_norm_eps' = -1e-5 is outside")]
    [TestCase("rms_norm_eps", "1e300", "'rms_norm_eps' = 1e300 is outside")]
    [TestCase("hidden_size", "64.5", "'hidden_size' = 64.5 is not an integer")]
    [TestCase("vocab_size", "1e20", "'vocab_size' = 1e20 is outside")]
    [TestCase("intermediate_size", "172.25", "'intermediate_size' = 172.25 is not an integer")]
    [TestCase("vocab_size", "100000000000", "'vocab_size' = 100000000000 is outside")]
    [TestCase("num_hidden_layers", "\"5\"", "'num_hidden_layers' must be an integer, not \"5\"")]
    [TestCase("num_attention_heads", "-8", "'num_attention_heads' = -8 is outside")]
    [TestCase("tie_word_embeddings", "1", "'tie_word_embeddings' must be true or false")]
    [TestCase("eos_token_id", "100000", "'eos_token_id' = 100000 is outside the vocabulary")]
    [TestCase("rope_scaling", "{\"rope_type\":\"llama3\",\"factor\":0}", "'rope_scaling.factor' = 0 is outside")]
    [TestCase("rope_scaling", "{\"rope_type\":\"llama3\",\"factor\":8,\"low_freq_factor\":4,\"high_freq_factor\":4}", "high_freq_factor 4 must be greater than low_freq_factor 4")]
    [TestCase("rope_scaling", "[1, 2]", "'rope_scaling' must be an object or null")]
    public void OutOfRangeValue_IsATypedErrorNamingTheField(string field, string json, string message)
    {
        using var m = TempModel.Stories().SetConfig(field, json);
        var e = LoadFails(m);
        Assert.That(e.Message, Does.Contain(m.ConfigPath).And.Contain(message));
    }

    [Test]
    public void ConfigThatIsAJsonArray_IsATypedError()
    {
        using var m = TempModel.Stories();
        File.WriteAllText(m.ConfigPath, "[{\"model_type\": \"llama\"}]");
        Assert.That(LoadFails(m).Message, Does.Contain("the top level is a JSON array, not an object"));
    }

    [Test]
    public void FewerLayersThanTheTensors_IsATypedErrorNamingTheLayer()
    {
        using var m = TempModel.Stories().SetConfig("num_hidden_layers", "4");
        Assert.That(LoadFails(m).Message, Does.Contain("belongs to layer 4").And.Contain("num_hidden_layers is 4"));
    }

    [Test]
    public void HeadDim_IsRead_AndChecksTheTensors()
    {
        using (var m = TempModel.Stories().SetConfig("head_dim", "16"))
            Assert.That(LoadFails(m).Message, Does.Contain("self_attn.q_proj.weight").And.Contain("expected [128, 64]"));
        // The head_dim stories260K has (64 / 8): same model, same reference ids.
        using (var m = TempModel.Stories().SetConfig("head_dim", "8"))
        {
            using var model = Model.Load(m.Dir);
            Assert.That(model.Config.HeadDim, Is.EqualTo(8));
            using var s = model.CreateSession();
            var ids = s.Generate(s.EncodePrompt(""), new GenerationSettings { MaxTokens = 32, Sampling = KernelEngine.Decoding.SamplingSettings.Greedy }).Select(t => t.Id).ToArray();
            Assert.That(ids, Is.EqualTo(Reference.Stories().BosGreedyIds.Skip(1).Take(32).ToArray()));
        }
    }

    [Test]
    public void GenerationConfig_EndTokensAreMerged_AndAMalformedOneIsATypedError()
    {
        using var m = TempModel.Stories();
        string gen = Path.Combine(m.Dir, "generation_config.json");
        File.WriteAllText(gen, "{\"eos_token_id\": [2, 13]}");
        Assert.That(ModelConfig.Load(m.ConfigPath).EosTokenIds, Is.EquivalentTo(new[] { 2, 13 }));
        File.WriteAllText(gen, "{\"eos_token_id\": [2, \"x\"]}");
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.Load(m.ConfigPath));
        Assert.That(e!.Message, Does.Contain(gen).And.Contain("eos_token_id"));
        File.WriteAllText(gen, "not json");
        Assert.That(Assert.Throws<ModelFormatException>(() => ModelConfig.Load(m.ConfigPath))!.Message, Does.Contain("not valid JSON"));
    }

    [Test]
    public void KvCacheLargerThanMemory_IsADeviceErrorBeforeAllocating()
    {
        // 2^24 positions is a legal config value; its KV cache (5 layers x 2^24 x 32 x F32 x 2 = 21.5 GB) is not.
        using var m2 = TempModel.Stories().SetConfig("max_position_embeddings", "16777216");
        using var model2 = Model.Load(m2.Dir);
        long kvBytes = 2L * 5 * 16777216 * 32 * 4;
        if (kvBytes < Backends.MemoryBudget.Available(model2.Device) * 7 / 8)
            Assert.Ignore("this machine has enough free memory for the 21 GB cache");
        var e = Assert.Throws<DeviceException>(() => model2.CreateSession());
        Assert.That(e!.Message, Does.Contain("KV cache").And.Contain("context length"));
    }

    [Test]
    public void MemoryBudget_ChecksProductsInSixtyFourBitsAndAgainstTheDevice()
    {
        Assert.That(Backends.MemoryBudget.Bytes(1L << 40, 1L << 30), Is.EqualTo(long.MaxValue), "overflow saturates");
        Assert.That(Backends.MemoryBudget.Bytes(3, 5, 7), Is.EqualTo(105));
        var gpu = new Backends.DeviceInfo(Backends.DeviceKind.Cuda, "test GPU", 1L << 30, "");
        Assert.DoesNotThrow(() => Backends.MemoryBudget.Check(gpu, 1L << 29, "a buffer", "use less"));
        var e = Assert.Throws<DeviceException>(() => Backends.MemoryBudget.Check(gpu, 2L << 30, "the KV cache", "lower the context length"));
        Assert.That(e!.Message, Does.Contain("the KV cache needs 2.0 GiB").And.Contain("lower the context length"));
    }

    [Test]
    public void CliReportsABadConfigOnOneLine()
    {
        using var m = TempModel.Stories().SetConfig("max_position_embeddings", "500000000");
        foreach (var cmd in new[] { "inspect", "generate" })
        {
            var r = Cli.CliRunner.Run(cmd, "--model", m.Dir);
            Assert.That(r.ExitCode, Is.EqualTo(1), cmd);
            Assert.That(r.Stderr.Trim().Split('\n'), Has.Length.EqualTo(1), r.Stderr);
            Assert.That(r.Stderr, Does.StartWith("error: ").And.Contain("max_position_embeddings"));
        }
    }
}

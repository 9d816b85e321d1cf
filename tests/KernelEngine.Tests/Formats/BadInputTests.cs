using System.Text;
using KernelEngine.Formats;
using KernelEngine.Text;
using NUnit.Framework;

namespace KernelEngine.Tests.Formats;

/// <summary>Corrupt and inconsistent inputs give typed exceptions that name the file and the problem.</summary>
public sealed class BadInputTests
{
    private string _dir = null!;

    [SetUp] public void Setup() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), "ke-bad-" + Guid.NewGuid().ToString("N")));
    [TearDown] public void TearDown() => Directory.Delete(_dir, true);

    private string WriteRaw(string header, int dataBytes, long? declaredLength = null)
    {
        string path = Path.Combine(_dir, "model.safetensors");
        var h = Encoding.UTF8.GetBytes(header);
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes(declaredLength ?? h.Length));
        fs.Write(h);
        fs.Write(new byte[dataBytes]);
        return path;
    }

    private static void ExpectFormatError(string path, string problem)
    {
        var e = Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain(path).And.Contain(problem));
    }

    [Test]
    public void TruncatedFile()
    {
        string path = Path.Combine(_dir, "t.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        ExpectFormatError(path, "truncated");
    }

    [Test]
    public void HeaderLengthLargerThanFile() =>
        ExpectFormatError(WriteRaw("{}", 0, declaredLength: 1 << 20), "header length 1048576 does not fit");

    [Test]
    public void OffsetsOutOfRange() =>
        ExpectFormatError(WriteRaw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8), "tensor 'a': data_offsets [0, 16] out of range");

    [Test]
    public void OverlappingTensors() =>
        ExpectFormatError(WriteRaw("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16), "overlap");

    [Test]
    public void UnknownDtype() =>
        ExpectFormatError(WriteRaw("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4), "unknown dtype 'F8_E4M3'");

    [Test]
    public void ShapeAndByteLengthDisagree() =>
        ExpectFormatError(WriteRaw("{\"a\":{\"dtype\":\"F16\",\"shape\":[3,3],\"data_offsets\":[0,16]}}", 16), "needs 18 bytes");

    [Test]
    public void HeaderNotJson() => ExpectFormatError(WriteRaw("{not json", 0), "not valid JSON");

    [Test]
    public void ConfigMissingRequiredField()
    {
        string path = Path.Combine(_dir, "config.json");
        File.WriteAllText(path, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 10}");
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.Load(path));
        Assert.That(e!.Message, Does.Contain(path).And.Contain("missing required field 'intermediate_size'"));
    }

    [Test]
    public void ConfigUnknownModelType()
    {
        string path = Path.Combine(_dir, "config.json");
        File.WriteAllText(path, "{\"model_type\": \"mamba\"}");
        var e = Assert.Throws<ModelFormatException>(() => ModelConfig.Load(path));
        Assert.That(e!.Message, Does.Contain("model_type 'mamba' is not supported"));
    }

    [TestCase("this is plain text, not a protobuf")]
    [TestCase("{\"model\": {\"type\": \"BPE\"}}")]
    public void TokenizerFileThatIsNotSentencePiece(string content)
    {
        string path = Path.Combine(_dir, "tokenizer.model");
        File.WriteAllText(path, content);
        var e = Assert.Throws<TokenizerException>(() => new SentencePieceTokenizer(path));
        Assert.That(e!.Message, Does.Contain(path).And.Contain("not a SentencePiece model"));
    }

    [Test]
    public void ModelFolderWithoutWeights()
    {
        File.Copy(Path.Combine(SharedData.Stories, "config.json"), Path.Combine(_dir, "config.json"));
        File.Copy(Path.Combine(SharedData.Stories, "tokenizer.model"), Path.Combine(_dir, "tokenizer.model"));
        var e = Assert.Throws<ModelFormatException>(() => Model.Load(_dir).Dispose());
        Assert.That(e!.Message, Does.Contain(_dir).And.Contain("no model weights"));
    }

    [Test]
    public void MissingAndMisShapedTensors_AreNamed()
    {
        // A real model folder with one tensor dropped and one re-shaped.
        using (var src = SafeTensorsFile.Open(Path.Combine(SharedData.Stories, "model.safetensors")))
        {
            var w = new SafeTensorsWriter();
            foreach (var (name, info) in src.Tensors)
            {
                if (name == "model.layers.3.mlp.up_proj.weight") continue;
                long[] shape = name == "model.norm.weight" ? [32, 2] : info.Shape;
                w.Add(name, info.DType, shape, src.Data(info).ToArray());
            }
            w.Write(Path.Combine(_dir, "model.safetensors"));
        }
        File.Copy(Path.Combine(SharedData.Stories, "config.json"), Path.Combine(_dir, "config.json"));
        File.Copy(Path.Combine(SharedData.Stories, "tokenizer.model"), Path.Combine(_dir, "tokenizer.model"));
        var e = Assert.Throws<ModelFormatException>(() => Model.Load(_dir).Dispose());
        Assert.That(e!.Message, Does.Contain("missing tensor 'model.layers.3.mlp.up_proj.weight'"));
    }

    [Test]
    public void PromptLongerThanContext_AndUnknownDevice()
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 16 });
        using var session = model.CreateSession();
        var e = Assert.Throws<InvalidRequestException>(() => session.Generate(Enumerable.Repeat(5, 16).ToArray(), new GenerationSettings()).ToList());
        Assert.That(e!.Message, Does.Contain("16 tokens").And.Contain("context length 16"));
        var d = Assert.Throws<DeviceException>(() => Model.Load(SharedData.Stories, new ModelOptions { Device = "quantum" }));
        Assert.That(d!.Message, Does.Contain("unknown device 'quantum'"));
    }
}

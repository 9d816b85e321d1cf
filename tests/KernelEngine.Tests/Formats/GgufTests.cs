using System.Text.Json;
using KernelEngine.Decoding;
using KernelEngine.Formats;
using KernelEngine.Kernels;
using KernelEngine.Text;
using NUnit.Framework;

namespace KernelEngine.Tests.Formats;

/// <summary>GGUF files: our export loads back exactly; tokenizers rebuilt from GGUF metadata match llama.cpp's vectors;
/// malformed headers are typed errors.</summary>
public sealed class GgufTests
{
    private string _dir = null!;
    [SetUp] public void Setup() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), "ke-gguf-" + Guid.NewGuid().ToString("N")));
    [TearDown] public void TearDown() => Directory.Delete(_dir, true);

    [Test]
    public void Stories260K_ExportedAsF32Gguf_ReproducesTheReferenceIds()
    {
        string gguf = Path.Combine(_dir, "stories.gguf");
        GgufExporter.Export(SharedData.Stories, gguf, WeightType.F32);
        using var model = Model.Load(gguf);
        Assert.That(model.Config.RopeLayout, Is.EqualTo(KernelEngine.Kernels.Rope.RopeLayout.Interleaved), "llama.cpp's q/k row order");
        using var s = model.CreateSession();
        var reference = Reference.Stories();
        var prompt = s.EncodePrompt("");
        Assert.That(prompt, Is.EqualTo(new[] { 1 }));
        var ids = s.Generate(prompt, new GenerationSettings { MaxTokens = 256, Sampling = SamplingSettings.Greedy }).Select(t => t.Id).ToArray();
        Assert.That(ids, Is.EqualTo(reference.BosGreedyIds.Skip(1).ToArray()));
        foreach (var (text, expected) in reference.EncodeExamples) Assert.That(s.EncodePrompt(text), Is.EqualTo(expected), text);
        // Logits at positions 0..2 against the float64 reference, as for the safetensors folder.
        using var s2 = model.CreateSession();
        var logits = new float[3 * 512];
        s2.FeedAll(reference.BosGreedyIds.Take(3).ToArray(), logits);
        for (int p = 0; p < 3; p++)
            for (int v = 0; v < 512; v++) Assert.That(logits[p * 512 + v], Is.EqualTo(reference.LogitsAtPos[p][v]).Within(1e-4), $"pos {p} token {v}");
    }

    [TestCase("q8_0")]
    [TestCase("q4_0")]
    [TestCase("f16")]
    public void QuantizedGguf_RunsLikeTheQuantizedFolder(string type)
    {
        var t = KernelEngine.Kernels.Formats.WeightFormat.FromName(type)!.Type;
        string gguf = Path.Combine(_dir, $"stories-{type}.gguf"), folder = Path.Combine(_dir, "q");
        GgufExporter.Export(SharedData.Stories, gguf, t);
        using var fromGguf = Model.Load(gguf);
        Assert.That(fromGguf.Transformer.Weights.Layers[0].Wq.Type, Is.EqualTo(t));
        using var s = fromGguf.CreateSession();
        var ids = s.Generate(s.EncodePrompt("Once upon a time"), new GenerationSettings { MaxTokens = 32, Sampling = SamplingSettings.Greedy }).Select(x => x.Id).ToArray();
        Assert.That(ids, Has.Length.EqualTo(32));
        if (type == "f16")
        {
            // Same weights as an F16 folder (rows moved for llama.cpp's order, not re-rounded): the same tokens.
            ModelQuantizer.Quantize(SharedData.Stories, folder, new QuantizeOptions { Type = t });
            using var fromFolder = Model.Load(folder);
            using var s2 = fromFolder.CreateSession();
            Assert.That(s2.Generate(s2.EncodePrompt("Once upon a time"), new GenerationSettings { MaxTokens = 32, Sampling = SamplingSettings.Greedy }).Select(x => x.Id), Is.EqualTo(ids));
        }
    }

    private static ModelConfig TokenizerConfig(int vocab, int? bos) => new()
    {
        Architecture = Architecture.Llama, ModelType = "llama", HiddenSize = 8, IntermediateSize = 8, Layers = 1, Heads = 1, KvHeads = 1,
        VocabSize = vocab, MaxPositions = 8, NormEps = 1e-5f, BosTokenId = bos,
    };

    [Test]
    public void SentencePieceFromGgufMetadata_MatchesLlamaCppVectors()
    {
        string dir = SharedData.Require("tokenizers/llama2-spm");
        var spm = SentencePieceModel.Parse("tokenizer.model", File.ReadAllBytes(Path.Combine(dir, "tokenizer.model")));
        string path = Path.Combine(_dir, "spm.gguf");
        new GgufWriter().Add("general.architecture", "llama").Add("tokenizer.ggml.model", "llama").Add("tokenizer.ggml.tokens", spm.Pieces)
            .Add("tokenizer.ggml.scores", spm.Scores).Add("tokenizer.ggml.token_type", spm.Types.Select(x => (int)x).ToArray())
            .Add("tokenizer.ggml.bos_token_id", 1u).Write(path);
        using var f = GgufFile.Open(path);
        var tok = GgufTokenizer.FromGguf(f, TokenizerConfig(spm.Pieces.Length, 1));
        Text.TokenizerVectorTests.Check(tok, dir, "ggml-vocab-llama-spm.gguf", 46);
        Assert.That(tok.Encode("Hi", addBos: true)[0], Is.EqualTo(1));
    }

    [Test]
    public void ByteLevelBpeFromGgufMetadata_MatchesLlamaCppVectors()
    {
        string dir = SharedData.Require("tokenizers/gpt2");
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "encoder.json")));
        var tokens = doc.RootElement.EnumerateObject().OrderBy(p => p.Value.GetInt32()).Select(p => p.Name).ToArray();
        var merges = File.ReadLines(Path.Combine(dir, "vocab.bpe")).Where(l => l.Length > 0 && !l.StartsWith("#version")).ToArray();
        var types = tokens.Select(t => t == "<|endoftext|>" ? 3 : 1).ToArray();
        string path = Path.Combine(_dir, "gpt2.gguf");
        new GgufWriter().Add("general.architecture", "gpt2").Add("tokenizer.ggml.model", "gpt2").Add("tokenizer.ggml.pre", "gpt2")
            .Add("tokenizer.ggml.tokens", tokens).Add("tokenizer.ggml.token_type", types).Add("tokenizer.ggml.merges", merges).Write(path);
        using var f = GgufFile.Open(path);
        var tok = GgufTokenizer.FromGguf(f, TokenizerConfig(tokens.Length, null));
        Text.TokenizerVectorTests.Check(tok, dir, "ggml-vocab-gpt-2.gguf", 46);
        Assert.That(tok.Encode("a<|endoftext|>b"), Is.EqualTo(new[] { 64, 50256, 65 }), "control tokens are split out first");
    }

    private string WriteHeader(Action<BinaryWriter> body)
    {
        string path = Path.Combine(_dir, "bad.gguf");
        using var fs = File.Create(path);
        using var w = new BinaryWriter(fs);
        body(w);
        w.Write(new byte[64]);
        return path;
    }

    private static void Str(BinaryWriter w, string s) { var b = System.Text.Encoding.UTF8.GetBytes(s); w.Write((ulong)b.Length); w.Write(b); }

    [Test]
    public void MalformedHeaders_AreTypedErrorsNamingTheKeyOrTensor()
    {
        void Expect(string path, string message) =>
            Assert.That(Assert.Throws<ModelFormatException>(() => GgufFile.Open(path).Dispose())!.Message, Does.Contain(message));
        Expect(WriteHeader(w => { w.Write(0x12345678u); w.Write(3u); w.Write(0UL); w.Write(0UL); }), "bad magic");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(1u); w.Write(0UL); w.Write(0UL); }), "version 1 is not supported");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(0UL); w.Write(ulong.MaxValue); }), "key/value count");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(1UL << 40); w.Write(0UL); }), "tensor count");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(0UL); w.Write(1UL); w.Write(1UL << 50); }), "string of");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(0UL); w.Write(1UL); Str(w, "general.alignment"); w.Write(4u); w.Write(3u); }), "general.alignment 3");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(0UL); w.Write(1UL); Str(w, "a"); w.Write(9u); w.Write(8u); w.Write(1UL << 60); }), "key 'a': array of");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(0UL); w.Write(1UL); Str(w, "a"); w.Write(99u); }), "key 'a': unknown value type 99");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(1UL); w.Write(0UL); Str(w, "t"); w.Write(2u); w.Write(64UL); w.Write(64UL); w.Write(0u); w.Write(0UL); }), "tensor 't': 64 rows of 256 bytes do not fit in the data section");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(1UL); w.Write(0UL); Str(w, "t"); w.Write(1u); w.Write(4UL); w.Write(77u); w.Write(0UL); }), "tensor 't': unknown ggml type 77");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(1UL); w.Write(0UL); Str(w, "t"); w.Write(1u); w.Write(4UL); w.Write(0u); w.Write(3UL); }), "not a multiple of the alignment");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(1UL); w.Write(0UL); Str(w, "t"); w.Write(9u); }), "9 dimensions");
        Expect(WriteHeader(w => { w.Write(GgufFile.Magic); w.Write(3u); w.Write(1UL); w.Write(0UL); Str(w, "t"); w.Write(1u); w.Write(10UL); w.Write((uint)KernelEngine.Kernels.Formats.GgmlType.Q4_0); w.Write(0UL); }), "not a multiple of Q4_0's block of 32");
    }
}

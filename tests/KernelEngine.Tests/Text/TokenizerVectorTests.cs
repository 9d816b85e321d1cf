using KernelEngine.Text;
using NUnit.Framework;

namespace KernelEngine.Tests.Text;

/// <summary>The llama.cpp tokenizer test vectors in ../shared/tokenizers: exact ids for every input, and decode back.</summary>
public sealed class TokenizerVectorTests
{
    internal static IEnumerable<(string Input, int[] Ids)> Vectors(string dir, string name)
    {
        string inp = File.ReadAllText(Path.Combine(dir, name + ".inp"));
        var inputs = inp.Split("\n__ggml_vocab_test__\n").ToList();
        if (inputs[^1].Length == 0 && inp.EndsWith("__ggml_vocab_test__\n")) inputs.RemoveAt(inputs.Count - 1);
        var outputs = File.ReadAllText(Path.Combine(dir, name + ".out")).Split('\n');
        Assert.That(outputs.Length, Is.GreaterThanOrEqualTo(inputs.Count));
        for (int i = 0; i < inputs.Count; i++)
            yield return (inputs[i], outputs[i].Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray());
    }

    internal static void Check(Tokenizer tok, string dir, string name, int expectedCount)
    {
        var vectors = Vectors(dir, name).ToList();
        Assert.That(vectors, Has.Count.EqualTo(expectedCount));
        var failures = new List<string>();
        foreach (var (input, ids) in vectors)
        {
            var got = tok.Encode(input);
            if (!got.SequenceEqual(ids)) failures.Add($"encode '{input}': expected [{string.Join(' ', ids)}] got [{string.Join(' ', got)}]");
            string back = tok.Decode(ids);
            if (back != input) failures.Add($"decode [{string.Join(' ', ids)}]: expected '{input}' got '{back}'");
        }
        Assert.That(failures, Is.Empty, string.Join("\n", failures));
    }

    [Test]
    public void Llama2SentencePiece_AllVectorsExact()
    {
        string dir = SharedData.Require("tokenizers/llama2-spm");
        Check(new SentencePieceTokenizer(Path.Combine(dir, "tokenizer.model")), dir, "ggml-vocab-llama-spm.gguf", 46);
    }

    [Test]
    public void Gpt2ByteLevelBpe_AllVectorsExact()
    {
        string dir = SharedData.Require("tokenizers/gpt2");
        var tok = ByteLevelBpeTokenizer.FromVocabAndMerges(Path.Combine(dir, "encoder.json"), Path.Combine(dir, "vocab.bpe"));
        Check(tok, dir, "ggml-vocab-gpt-2.gguf", 46);
    }

    [Test]
    public void Gpt2TokenizerJson_MatchesVocabAndMerges()
    {
        string dir = SharedData.Require("tokenizers/gpt2");
        var fromFiles = ByteLevelBpeTokenizer.FromVocabAndMerges(Path.Combine(dir, "encoder.json"), Path.Combine(dir, "vocab.bpe"));
        var fromJson = ByteLevelBpeTokenizer.FromTokenizerJson(Path.Combine(SharedData.Gpt2Tiny, "tokenizer.json"));
        foreach (var (input, ids) in Vectors(dir, "ggml-vocab-gpt-2.gguf"))
        {
            if (input.Contains("  ") || input.Contains("\t\t")) continue; // tokenizer.json adds whitespace-run tokens 50257+
            Assert.That(fromJson.Encode(input), Is.EqualTo(ids), input);
        }
        Assert.That(fromJson.Encode("a  b"), Does.Contain(50286), "the added token of two spaces is split out first");
        Assert.That(fromFiles.VocabSize, Is.EqualTo(50257));
    }

    [Test]
    public void Stories260K_EncodeExamplesFromReference()
    {
        var reference = Reference.Stories();
        var tok = TokenizerLoader.FromFolder(SharedData.Stories, KernelEngine.Formats.ModelConfig.Load(Path.Combine(SharedData.Stories, "config.json")));
        foreach (var (text, ids) in reference.EncodeExamples)
        {
            Assert.That(tok.Encode(text, addBos: true), Is.EqualTo(ids), text);
            Assert.That(tok.Decode(ids), Is.EqualTo(text));
        }
    }
}

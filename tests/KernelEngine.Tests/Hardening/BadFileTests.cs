using System.Text;
using KernelEngine.Formats;
using NUnit.Framework;

namespace KernelEngine.Tests.Hardening;

/// <summary>The malformed inputs of the hardening report, each now a typed error naming the file, or a correct load.</summary>
public sealed class BadFileTests
{
    private string _dir = null!;
    [SetUp] public void Setup() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), "ke-badfile-" + Guid.NewGuid().ToString("N")));
    [TearDown] public void TearDown() => Directory.Delete(_dir, true);

    private string WriteSafetensors(byte[] header, int dataBytes)
    {
        string path = Path.Combine(_dir, "model.safetensors");
        using var fs = File.Create(path);
        fs.Write(BitConverter.GetBytes((long)header.Length));
        fs.Write(header);
        fs.Write(new byte[dataBytes]);
        return path;
    }

    [Test]
    public void InvalidUtf8InATensorName_IsAFormatError()
    {
        var h = Encoding.UTF8.GetBytes("{\"ab\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        h[3] = 0xC3;   // 'b' -> a lead byte with no continuation: invalid UTF-8 inside the name
        string path = WriteSafetensors(h, 4);
        var e = Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain(path));
    }

    [Test]
    public void ShapeWhoseByteCountOverflows_IsAFormatError()
    {
        string path = WriteSafetensors(Encoding.UTF8.GetBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,0]}}"), 0);
        var e = Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.That(e!.Message, Does.Contain("tensor 'a'").And.Contain("more elements than any file can hold"));
        path = WriteSafetensors(Encoding.UTF8.GetBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,0]}}"), 0);
        Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(path).Dispose());
    }

    [Test]
    public void DuplicateTensorName_IsAFormatError()
    {
        string path = WriteSafetensors(Encoding.UTF8.GetBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"), 8);
        Assert.That(Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(path).Dispose())!.Message, Does.Contain("'a' appears twice"));
    }

    [Test]
    public void ShardIndexThatPointsOutsideTheFolder_IsAFormatError()
    {
        File.WriteAllText(Path.Combine(_dir, "model.safetensors.index.json"), "{\"weight_map\": {\"a\": \"../../etc/passwd\"}}");
        var e = Assert.Throws<ModelFormatException>(() => TensorStore.OpenFolder(_dir).Dispose());
        Assert.That(e!.Message, Does.Contain("not a file name in this folder"));
    }

    [TestCase("-5")]
    [TestCase("2147483647")]
    [TestCase("99999999999")]
    public void TokenizerJsonIdsOutOfRange_AreTokenizerErrors(string id)
    {
        string json = File.ReadAllText(Path.Combine(SharedData.Gpt2Tiny, "tokenizer.json"));
        int at = json.IndexOf("\"Ġthe\":", StringComparison.Ordinal);
        Assume.That(at, Is.GreaterThan(0));
        int end = json.IndexOf(',', at);
        json = json[..at] + "\"Ġthe\":" + id + json[end..];
        string path = Path.Combine(_dir, "tokenizer.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<TokenizerException>(() => KernelEngine.Text.ByteLevelBpeTokenizer.FromTokenizerJson(path));
        Assert.That(e!.Message, Does.Contain(path));
    }

    [Test]
    public void HuggingFaceCacheSnapshotOfSymlinks_Loads()
    {
        // hub cache layout: snapshots/<rev>/<file> -> ../../blobs/<hash>
        string blobs = Path.Combine(_dir, "blobs"), snap = Path.Combine(_dir, "snapshots", "0123abcd");
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snap);
        int n = 0;
        foreach (var f in Directory.GetFiles(SharedData.Stories))
        {
            string blob = Path.Combine(blobs, $"blob{n++:D4}");
            File.Copy(f, blob);
            File.CreateSymbolicLink(Path.Combine(snap, Path.GetFileName(f)), Path.Combine("..", "..", "blobs", Path.GetFileName(blob)));
        }
        using var model = Model.Load(snap);
        using var s = model.CreateSession();
        var ids = s.Generate(s.EncodePrompt(""), new GenerationSettings { MaxTokens = 16, Sampling = KernelEngine.Decoding.SamplingSettings.Greedy }).Select(t => t.Id);
        Assert.That(ids, Is.EqualTo(Reference.Stories().BosGreedyIds.Skip(1).Take(16)));
        // A dangling link is named.
        File.Delete(Path.Combine(blobs, "blob" + Array.IndexOf(Directory.GetFiles(SharedData.Stories), Path.Combine(SharedData.Stories, "model.safetensors")).ToString("D4")));
        var e = Assert.Throws<ModelFormatException>(() => Model.Load(snap).Dispose());
        Assert.That(e!.Message, Does.Contain("model.safetensors"));
    }

    [TestCase("bench", "--preset", "llama-tiny", "--reps", "0")]
    [TestCase("bench", "--preset", "llama-tiny", "--pp", "-1")]
    [TestCase("generate", "--model", "MODEL", "--lookup", "-1")]
    [TestCase("generate", "--model", "MODEL", "--temperature", "Infinity")]
    [TestCase("generate", "--model", "MODEL", "--top-p", "0")]
    [TestCase("generate", "--model", "MODEL", "--max-tokens", "-3")]
    [TestCase("score", "--model", "MODEL", "--file", "x", "--stride", "0")]
    public void CliValuesOutOfRange_AreOneErrorLine(params string[] args)
    {
        args = args.Select(a => a == "MODEL" ? SharedData.Stories : a).ToArray();
        var r = Cli.CliRunner.Run(args);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.Stderr);
        Assert.That(r.Stderr.Trim().Split('\n'), Has.Length.EqualTo(1), r.Stderr);
        Assert.That(r.Stderr, Does.StartWith("error: ").And.Contain(args[^2]));
        Assert.That(r.Stdout, Is.Empty);
    }
}

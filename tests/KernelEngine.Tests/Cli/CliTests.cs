using System.Text.Json;
using NUnit.Framework;

namespace KernelEngine.Tests.Cli;

/// <summary>The ke commands named in the acceptance lists, run as a user would.</summary>
public sealed class CliTests
{
    [Test]
    public void Inspect_Stories260K_ReportsShapeAndParameterCount()
    {
        var r = CliRunner.Run("inspect", "--model", SharedData.Stories, "--json");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var j = doc.RootElement;
        Assert.That(j.GetProperty("layers").GetInt32(), Is.EqualTo(5));
        Assert.That(j.GetProperty("heads").GetInt32(), Is.EqualTo(8));
        Assert.That(j.GetProperty("kv_heads").GetInt32(), Is.EqualTo(4));
        Assert.That(j.GetProperty("vocab").GetInt32(), Is.EqualTo(512));
        Assert.That(j.GetProperty("dim").GetInt32(), Is.EqualTo(64));
        // Parameter count of the file's tensors, counted independently from the safetensors header.
        long expected = 0;
        using (var fs = File.OpenRead(Path.Combine(SharedData.Stories, "model.safetensors")))
        {
            var len = new byte[8]; fs.ReadExactly(len);
            var header = new byte[BitConverter.ToInt64(len)]; fs.ReadExactly(header);
            using var h = JsonDocument.Parse(header);
            foreach (var t in h.RootElement.EnumerateObject())
                if (t.Name != "__metadata__") expected += t.Value.GetProperty("shape").EnumerateArray().Aggregate(1L, (a, d) => a * d.GetInt64());
        }
        Assert.That(j.GetProperty("parameters").GetInt64(), Is.EqualTo(expected));
    }

    [Test]
    public void Tokenize_OnceUponATime_GivesReferenceIds()
    {
        var r = CliRunner.Run("tokenize", "--model", SharedData.Stories, "--text", "Once upon a time", "--json");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var ids = doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.That(ids, Is.EqualTo(Reference.Stories().EncodeExamples["Once upon a time"]));
    }

    [Test]
    public void Generate_Greedy256_MatchesReferenceIdsAndText()
    {
        var reference = Reference.Stories();
        var r = CliRunner.Run("generate", "--model", SharedData.Stories, "--prompt", "", "--max-tokens", "256", "--temperature", "0", "--json");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var j = doc.RootElement;
        Assert.That(j.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()), Is.EqualTo(new[] { 1 }));
        Assert.That(j.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(), Is.EqualTo(reference.BosGreedyIds.Skip(1).ToArray()));
        Assert.That(j.GetProperty("text").GetString(), Is.EqualTo(reference.BosGreedyText));
        Assert.That(j.GetProperty("stats").GetProperty("generated_tokens").GetInt32(), Is.EqualTo(256));
    }

    /// <remarks>This test once failed in about one full-suite run in three (a different token past position 35): ids,
    /// positions and logits copied through unpinned managed arrays that a collection moved mid-copy (<c>HostCopy</c>).</remarks>
    [Test]
    public void Generate_OnTheIlgpuCpuAccelerator_Greedy64_MatchesReferenceIds()
    {
        var reference = Reference.Stories();
        var r = CliRunner.Run("generate", "--model", SharedData.Stories, "--prompt", "", "--max-tokens", "64", "--temperature", "0", "--device", "ilgpu-cpu", "--json");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.That(doc.RootElement.GetProperty("token_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray(), Is.EqualTo(reference.BosGreedyIds.Skip(1).Take(64).ToArray()));
        Assert.That(doc.RootElement.GetProperty("stats").GetProperty("device").GetString(), Is.EqualTo("ilgpu-cpu"));
    }

    [Test]
    public void Generate_SameSeed_SameText()
    {
        string[] args = ["generate", "--model", SharedData.Stories, "--prompt", "Lily", "--max-tokens", "40", "--temperature", "1", "--seed", "7", "--json"];
        var a = CliRunner.Run(args); var b = CliRunner.Run(args);
        Assert.That(a.ExitCode, Is.EqualTo(0), a.Stderr);
        using var da = JsonDocument.Parse(a.Stdout); using var db = JsonDocument.Parse(b.Stdout);
        Assert.That(da.RootElement.GetProperty("token_ids").GetRawText(), Is.EqualTo(db.RootElement.GetProperty("token_ids").GetRawText()));
    }

    [Test]
    public void Errors_ExitNonZeroWithOneLineAndNoStackTrace()
    {
        var r = CliRunner.Run("inspect", "--model", "/nonexistent/model");
        Assert.That(r.ExitCode, Is.Not.EqualTo(0));
        Assert.That(r.Stderr, Does.StartWith("error: ").And.Contain("/nonexistent/model"));
        Assert.That(r.Stderr, Does.Not.Contain("   at "));
        var v = CliRunner.Run("inspect", "--model", "/nonexistent/model", "--verbose");
        Assert.That(v.Stderr, Does.Contain("   at "), "--verbose shows the stack trace");
        var d = CliRunner.Run("generate", "--model", SharedData.Stories, "--device", "tpu");
        Assert.That(d.ExitCode, Is.Not.EqualTo(0));
        Assert.That(d.Stderr, Does.Contain("unknown device 'tpu'"));
        var p = CliRunner.Run("generate", "--model", SharedData.Stories, "--prompt", string.Concat(Enumerable.Repeat("Once upon a time ", 200)));
        Assert.That(p.ExitCode, Is.Not.EqualTo(0));
        Assert.That(p.Stderr, Does.Contain("context length 512"));
    }

    [Test]
    public void EveryCommand_HasHelp()
    {
        foreach (var cmd in new[] { "devices", "inspect", "tokenize", "generate", "chat", "template", "score", "bench", "quantize", "kernels" })
        {
            var r = CliRunner.Run(cmd, "--help");
            Assert.That(r.ExitCode, Is.EqualTo(0), cmd);
            Assert.That(r.Stdout, Does.Contain("Usage:"), cmd);
        }
    }

    [Test]
    public void Devices_ListsTheCpuBackend()
    {
        var r = CliRunner.Run("devices", "--json");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        Assert.That(doc.RootElement.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("id").GetString()), Does.Contain("cpu"));
    }

    /// <summary>`ke kernels --ptx DIR --arch sm_80`: one PTX file per catalog kernel, for that target, and the JSON lists them.</summary>
    [Test]
    public void Kernels_WritesOnePtxFilePerKernel()
    {
        string dir = Path.Combine(TestScratch.Path("ptx"), Guid.NewGuid().ToString("N"));
        var r = CliRunner.Run("kernels", "--ptx", dir, "--arch", "sm_80", "--json");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var names = doc.RootElement.GetProperty("kernels").EnumerateArray().Select(k => k.GetProperty("name").GetString()).ToList();
        Assert.That(names, Is.EquivalentTo(KernelEngine.Kernels.Ilgpu.KernelCatalog.All.Select(k => k.Name)));
        foreach (var name in names)
        {
            string text = File.ReadAllText(Path.Combine(dir, name + ".ptx"));
            Assert.That(text, Does.Contain(".target sm_80").And.Contain(".entry"), name);
        }
        var bad = CliRunner.Run("kernels", "--ptx", dir, "--arch", "sm_75");
        Assert.That(bad.ExitCode, Is.Not.EqualTo(0));
        Assert.That(bad.Stderr, Does.Contain("sm_75"));
    }

    /// <summary>llama-bench's shape: one row per combination of the listed threads, prompt and generation sizes.</summary>
    [Test]
    public void Bench_Lists_OneRowPerCombination_AsCsv()
    {
        var r = CliRunner.Run("bench", "--preset", "llama-tiny", "--pp", "8,16", "--tg", "4", "--reps", "1", "--threads", "1,2", "--format", "csv", "--no-roofline");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        var lines = r.Stdout.Trim().Split('\n');
        Assert.That(lines[0], Does.StartWith("model,parameters,weight_bytes,device,threads,test,depth,tokens_per_second"));
        var rows = lines.Skip(1).Select(l => l.Split(',')).ToList();
        Assert.That(rows, Has.Count.EqualTo(6), r.Stdout);   // 2 thread counts x (pp8, pp16, tg4)
        Assert.That(rows.Select(c => (c[4], c[5])), Is.EquivalentTo(new[] { ("1", "pp8"), ("1", "pp16"), ("1", "tg4"), ("2", "pp8"), ("2", "pp16"), ("2", "tg4") }));
        Assert.That(rows.All(c => double.Parse(c[7], System.Globalization.CultureInfo.InvariantCulture) > 0), Is.True);
    }
}

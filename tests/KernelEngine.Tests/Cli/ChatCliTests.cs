using System.Text.Json;
using KernelEngine.Tests.Hardening;
using NUnit.Framework;

namespace KernelEngine.Tests.Cli;

/// <summary><c>ke chat</c> driven through stdin: two turns, /reset, /save, Ctrl+C mid-answer; and the --input --json form.</summary>
public sealed class ChatCliTests
{
    private TempModel _dir = null!;

    [OneTimeSetUp]
    public void Setup()
    {
        string template = File.ReadAllText(SharedData.Require("chat-templates/chatml.jinja"));
        _dir = TempModel.Stories();
        File.WriteAllText(Path.Combine(_dir.Dir, "tokenizer_config.json"), JsonSerializer.Serialize(new { chat_template = template, bos_token = "<s>", eos_token = "</s>" }));
    }

    [OneTimeTearDown] public void TearDown() => _dir?.Dispose();

    [Test]
    public void Interactive_TwoTurns_Reset_Save_AndCtrlCStopsOnlyTheAnswer()
    {
        if (SigIntIgnored())
            Assert.Ignore("SIGINT is ignored in this process (a non-interactive shell started it in the background), and ke inherits that: Ctrl+C cannot be tested here");
        string saved = Path.Combine(_dir.Dir, "saved.json");
        using var ke = new CliSession(new Dictionary<string, string> { ["KE_CHAT_TEST_DELAY_MS"] = "40" },
            "chat", "-m", _dir.Dir, "-n", "60", "--temperature", "0");
        ke.WaitFor(k => k.Stdout.Contains("> "), "the prompt");
        ke.WriteLine("Once upon a time");
        ke.WaitFor(k => k.Stdout.Length > 12, "the first answer streaming");
        ke.Interrupt();
        ke.WaitFor(k => k.Stderr.Contains("[stopped]"), "the stopped answer");
        ke.WriteLine("Tell me more");
        ke.WaitFor(k => k.Stderr.Split('\n').Count(l => l.Contains("tok/s")) == 2, "the second answer's stats");
        ke.WriteLine($"/save {saved}");
        ke.WaitFor(k => k.Stderr.Contains("[saved"), "the save");
        ke.WriteLine("/reset");
        ke.WaitFor(k => k.Stderr.Contains("[conversation reset]"), "the reset");
        ke.WriteLine("Hello");
        ke.WaitFor(k => k.Stderr.Split('\n').Count(l => l.Contains("tok/s")) == 3, "the third answer's stats");
        ke.CloseInput();
        Assert.That(ke.WaitForExit(), Is.EqualTo(0), ke.Stderr);
        Assert.That(ke.Stderr, Does.Contain("60 tokens"), "an answer that was not stopped runs to --max-tokens");
        using var doc = JsonDocument.Parse(File.ReadAllText(saved));
        var roles = doc.RootElement.GetProperty("messages").EnumerateArray().Select(m => m.GetProperty("role").GetString()).ToArray();
        Assert.That(roles, Is.EqualTo(new[] { "user", "assistant", "user", "assistant" }), "the stopped answer stays in the conversation");
        Assert.That(ke.Stderr.Split('\n').Where(l => l.Contains("tok/s")).ElementAt(1), Does.Not.Contain("(0 cached)"), "the second turn reuses the cache");
    }

    [Test]
    public void Input_Json_AnswersOnce()
    {
        string conv = Path.Combine(_dir.Dir, "conv.json");
        File.WriteAllText(conv, JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = "Once upon a time" } } }));
        var r = CliRunner.Run("chat", "-m", _dir.Dir, "--input", conv, "--json", "-n", "16", "--temperature", "0");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        using var doc = JsonDocument.Parse(r.Stdout);
        var root = doc.RootElement;
        Assert.That(root.GetProperty("text").GetString(), Is.Not.Empty);
        Assert.That(root.GetProperty("finish_reason").GetString(), Is.AnyOf("stop", "length"));
        Assert.That(root.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), Is.InRange(1, 16));
        Assert.That(root.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), Is.GreaterThan(5));
        Assert.That(root.TryGetProperty("tool_calls", out _), Is.False);

        File.WriteAllText(conv, "{\"messages\": 3}");
        var bad = CliRunner.Run("chat", "-m", _dir.Dir, "--input", conv, "--json");
        Assert.That(bad.ExitCode, Is.EqualTo(1));
        Assert.That(bad.Stderr, Does.StartWith("error: ").And.Contain("conv.json"));
    }

    /// <summary>Whether this process ignores SIGINT (bit 2 of /proc/self/status's SigIgn mask), as children then do.</summary>
    private static bool SigIntIgnored()
    {
        if (!OperatingSystem.IsLinux()) return false;
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line != null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & 2) != 0;
    }
}

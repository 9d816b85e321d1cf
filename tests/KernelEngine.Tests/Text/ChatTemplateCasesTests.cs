using System.Text.Json;
using KernelEngine.Text;
using NUnit.Framework;

namespace KernelEngine.Tests.Text;

/// <summary>
/// Every case of ../shared/chat-templates/cases.jsonl — real chat templates rendered by Python's jinja2 the way
/// transformers' apply_chat_template does — renders byte for byte, or raises a TemplateException with the message the
/// template raised.
/// </summary>
public sealed class ChatTemplateCasesTests
{
    public static IEnumerable<TestCaseData> Cases()
    {
        string path = Path.Combine(SharedData.Root, "chat-templates", "cases.jsonl");
        if (!File.Exists(path))
        {
            yield return new TestCaseData(-1).SetName("ChatTemplateCases(shared data missing)");
            yield break;
        }
        int i = 0;
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0) continue;
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            yield return new TestCaseData(i).SetName($"ChatTemplateCase({i:000} {r.GetProperty("template").GetString()} {r.GetProperty("conversation").GetString()}" +
                $"{(r.GetProperty("add_generation_prompt").GetBoolean() ? " +gen" : "")}{(r.GetProperty("tools").ValueKind == JsonValueKind.Null ? "" : " +tools")})");
            i++;
        }
    }

    /// <summary>The case's variables as the template sees them: every field but the template name and the expectation.</summary>
    public static (string Template, JsonElement Variables, string? Expected, string? Error) Load(int index)
    {
        string path = SharedData.Require("chat-templates/cases.jsonl");
        var line = File.ReadLines(path).Where(l => l.Length > 0).ElementAt(index);
        var node = System.Text.Json.Nodes.JsonNode.Parse(line)!.AsObject();
        string template = File.ReadAllText(Path.Combine(Path.GetDirectoryName(path)!, node["template"]!.GetValue<string>()));
        string? expected = node["expected"]?.GetValue<string>();
        string? error = node["message"]?.GetValue<string>();
        foreach (var k in new[] { "template", "conversation", "expected", "error", "message" }) node.Remove(k);
        return (template, JsonDocument.Parse(node.ToJsonString()).RootElement.Clone(), expected, error);
    }

    [TestCaseSource(nameof(Cases))]
    public void RendersAsJinja2Does(int index)
    {
        if (index < 0) SharedData.Require("chat-templates/cases.jsonl");
        var (source, variables, expected, error) = Load(index);
        var template = new ChatTemplate(source);
        if (error != null)
        {
            var e = Assert.Throws<TemplateException>(() => template.Render(variables));
            Assert.That(e!.Message, Is.EqualTo(error));
            Assert.That(e.RaisedByTemplate, Is.True);
            return;
        }
        Assert.That(template.Render(variables), Is.EqualTo(expected));
    }

    /// <summary>The same case through <c>ke template --template FILE --input CASE.json</c>: stdout is the text exactly, a
    /// raised message is <c>error: message</c> with exit code 1.</summary>
    [TestCaseSource(nameof(Cases))]
    public void RendersThroughKeTemplate(int index)
    {
        if (index < 0) SharedData.Require("chat-templates/cases.jsonl");
        var (source, variables, expected, error) = Load(index);
        string dir = Path.Combine(Path.GetTempPath(), $"ke-template-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllText(Path.Combine(dir, "t.jinja"), source);
            File.WriteAllText(Path.Combine(dir, "case.json"), variables.GetRawText());
            var r = Cli.CliRunner.Run("template", "--template", Path.Combine(dir, "t.jinja"), "--input", Path.Combine(dir, "case.json"));
            if (error != null)
            {
                Assert.That(r.ExitCode, Is.EqualTo(1));
                Assert.That(r.Stderr.TrimEnd('\n'), Is.EqualTo($"error: {error}"));
                return;
            }
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
            Assert.That(r.Stdout, Is.EqualTo(expected));
        }
        finally { Directory.Delete(dir, true); }
    }
}

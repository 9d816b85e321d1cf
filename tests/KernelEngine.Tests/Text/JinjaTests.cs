using System.Text.Json;
using KernelEngine.Text;
using NUnit.Framework;

namespace KernelEngine.Tests.Text;

/// <summary>
/// The Jinja interpreter against Python's jinja2 on the constructs chat templates use: jinja-cases.jsonl beside this file
/// holds templates (whitespace control, Python arithmetic and str/repr, slices, loop variables and scoping, namespace,
/// macros and call blocks, tests, filters, tojson, string and dict methods, errors, and real-world shaped templates —
/// Llama 3.1 and Mistral tool calling, Gemma, Qwen3 thinking) with what jinja2 3.1 rendered in transformers' setup
/// (regenerate: <c>python3 tools/scripts/jinja_cases.py</c>). Errors must be TemplateExceptions whose message starts
/// with jinja2's.
/// </summary>
public sealed class JinjaTests
{
    private static readonly DateTime Now = new(2026, 7, 26, 12, 34, 56);

    private static string CasesPath => Path.Combine(SharedData.RepoRoot, "tests", "KernelEngine.Tests", "Text", "jinja-cases.jsonl");

    public static IEnumerable<TestCaseData> Cases() =>
        File.ReadLines(CasesPath).Where(l => l.Length > 0).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("name").GetString()!)
            .Select(n => new TestCaseData(n).SetName($"Jinja({n})"));

    [TestCaseSource(nameof(Cases))]
    public void RendersAsJinja2Does(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadLines(CasesPath).First(l => l.Contains($"\"name\": \"{name}\"")));
        var c = doc.RootElement;
        string source = c.GetProperty("template").GetString()!;
        var vars = c.GetProperty("vars");
        if (c.TryGetProperty("expected", out var expected))
        {
            Assert.That(new ChatTemplate(source, () => Now).Render(vars), Is.EqualTo(expected.GetString()));
            return;
        }
        string message = c.GetProperty("message").GetString()!;
        var e = Assert.Throws<TemplateException>(() => new ChatTemplate(source, () => Now).Render(vars));
        Assert.That(e!.Message, Does.StartWith(message));
        Assert.That(e.RaisedByTemplate, Is.EqualTo(c.GetProperty("error").GetString() == "TemplateError"));
    }

    [TestCase("{% if x %}", "missing 'endif'", 1, 11)]
    [TestCase("line one\n{{ 1 + }}", "unexpected '}}'", 2, 8)]
    [TestCase("{% for x in y %}{% endif %}", "unexpected 'endif' inside the 'for'", 1, 17)]
    [TestCase("{% include 'x' %}", "unsupported tag 'include'", 1, 4)]
    [TestCase("ab\n  {{ 'unterminated }}", "unterminated string", 2, 6)]
    public void SyntaxErrors_NameLineAndColumn(string source, string message, int line, int column)
    {
        var e = Assert.Throws<TemplateException>(() => new ChatTemplate(source));
        Assert.That(e!.Message, Does.Contain(message));
        Assert.That((e.Line, e.Column), Is.EqualTo((line, column)), e.Message);
    }

    [Test]
    public void RuntimeErrors_NameTheirLine()
    {
        var e = Assert.Throws<TemplateException>(() => new ChatTemplate("ok\n{{ missing.attr }}").Render(new Dictionary<string, object?>()));
        Assert.That(e!.Line, Is.EqualTo(2));
        Assert.That(e.Message, Does.Contain("'missing' is undefined").And.Contain("line 2"));
    }

    /// <summary>The sandbox bounds runaway templates instead of hanging or exhausting memory.</summary>
    [TestCase("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", "steps")]
    [TestCase("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion")]
    [TestCase("{% set s = 'x' * 100000 %}{% for i in range(100000) %}{{ s }}{% endfor %}", "exceeds")]
    public void RunawayTemplates_AreStopped(string source, string message)
    {
        var e = Assert.Throws<TemplateException>(() => new ChatTemplate(source).Render(new Dictionary<string, object?>()));
        Assert.That(e!.Message, Does.Contain(message));
    }

    [Test]
    public void DotNetValues_BecomePythonValues()
    {
        var t = new ChatTemplate("{{ messages[0].content }}|{{ n + 1 }}|{{ f }}|{{ flag }}|{{ items | length }}|{{ none_value }}");
        var text = t.Render(new Dictionary<string, object?>
        {
            ["messages"] = new[] { new Dictionary<string, object?> { ["role"] = "user", ["content"] = "hi" } },
            ["n"] = 41, ["f"] = 2.5f, ["flag"] = true, ["items"] = new List<int> { 1, 2, 3 }, ["none_value"] = null,
        });
        Assert.That(text, Is.EqualTo("hi|42|2.5|True|3|None"));
    }
}

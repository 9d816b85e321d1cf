using System.Text.RegularExpressions;
using KernelEngine.Text;
using NUnit.Framework;

namespace KernelEngine.Tests.Text;

/// <summary>The source-generated pre-tokenizer regexes split text exactly as the runtime-compiled patterns do.</summary>
public sealed class PreTokenizerPatternTests
{
    private const string Text = "Hello world's 12345 tokens!!\n\n  It's   ÜBER-cool — naïve café 3.14159\t\r\nend   ";

    [TestCase(PreTokenizerPatterns.Gpt2)]
    [TestCase(PreTokenizerPatterns.Llama3)]
    [TestCase(PreTokenizerPatterns.Qwen2)]
    [TestCase(PreTokenizerPatterns.SmolLm)]
    public void Generated_SplitsAsTheCompiledPattern(string pattern)
    {
        var generated = PreTokenizerPatterns.For(pattern);
        Assert.That(generated.GetType(), Is.Not.EqualTo(typeof(Regex)), "a known pattern comes from the source generator");
        string[] Split(Regex r) => r.Matches(Text).Select(m => m.Value).ToArray();
        var expected = Split(new Regex(pattern));
        Assert.That(expected, Has.Length.GreaterThan(10));
        Assert.That(Split(generated), Is.EqualTo(expected));
    }

    [Test]
    public void UnknownPattern_IsCompiledAtLoad()
    {
        var r = PreTokenizerPatterns.For(@"\w+|\s+");
        Assert.That(r.Matches("a bc").Select(m => m.Value), Is.EqualTo(new[] { "a", " ", "bc" }));
    }
}

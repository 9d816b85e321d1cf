using System.Text.RegularExpressions;

namespace KernelEngine.Text;

/// <summary>
/// The byte-level BPE pre-tokenizer regexes models use (GPT-2's, llama3's, qwen2's, smollm's — llama.cpp's
/// <c>tokenizer.ggml.pre</c> names), compiled at build time by the regex source generator: a tokenizer load then costs
/// no regex compilation. A pattern not listed here is compiled when its tokenizer loads.
/// </summary>
internal static partial class PreTokenizerPatterns
{
    public const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    public const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string Qwen2 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string SmolLm = @"\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    [GeneratedRegex(Gpt2)] private static partial Regex Gpt2Regex();
    [GeneratedRegex(Llama3)] private static partial Regex Llama3Regex();
    [GeneratedRegex(Qwen2)] private static partial Regex Qwen2Regex();
    [GeneratedRegex(SmolLm)] private static partial Regex SmolLmRegex();

    /// <summary>The regex of <paramref name="pattern"/>: a generated one when it is a known pattern.</summary>
    public static Regex For(string pattern) => pattern switch
    {
        Gpt2 => Gpt2Regex(),
        Llama3 => Llama3Regex(),
        Qwen2 => Qwen2Regex(),
        SmolLm => SmolLmRegex(),
        _ => new Regex(pattern, RegexOptions.Compiled),
    };
}

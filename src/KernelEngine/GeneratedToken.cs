namespace KernelEngine;

/// <summary>
/// One generated token: id, the text it adds (multi-byte characters are completed before they are emitted, so a
/// token can add ""), its log-probability under the model (before temperature) and the entropy of that distribution.
/// </summary>
public sealed record GeneratedToken(int Id, string Text, int Position, double LogProb, double EntropyBits, float[]? Logits);

/// <summary>Why generation ended.</summary>
public enum StopReason { MaxTokens, Eos, StopString, ContextFull, Cancelled }

/// <summary>Timing and counts of one generation, the same for every decoding loop. Prefill = the prompt's batched
/// forward; decode = the rest. An end token is counted in <see cref="GeneratedTokens"/> but not emitted.</summary>
public sealed record GenerationStats
{
    public int PromptTokens { get; init; }
    public int ReusedPromptTokens { get; init; }
    public int GeneratedTokens { get; init; }
    public double PrefillSeconds { get; init; }
    public double DecodeSeconds { get; init; }
    public StopReason StopReason { get; init; }
    /// <summary>Counters of the decoding loop (speculative, prompt lookup, entropy-adaptive); null for plain decoding.</summary>
    public Decoding.DecodingStats? Loop { get; init; }
    public double PrefillTokensPerSecond => PrefillSeconds > 0 ? (PromptTokens - ReusedPromptTokens) / PrefillSeconds : 0;
    public double DecodeTokensPerSecond => DecodeSeconds > 0 && GeneratedTokens > 1 ? (GeneratedTokens - 1) / DecodeSeconds : 0;
}

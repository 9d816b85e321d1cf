namespace KernelEngine;

/// <summary>
/// One generated token: id, the text it adds (multi-byte characters are completed before they are emitted, so a
/// token can add ""), its log-probability under the model (before temperature) and the entropy of that distribution.
/// </summary>
public sealed record GeneratedToken(int Id, string Text, int Position, double LogProb, double EntropyBits, float[]? Logits);

/// <summary>Why generation ended.</summary>
public enum StopReason
{
    /// <summary>GenerationSettings.MaxTokens were generated.</summary>
    MaxTokens,
    /// <summary>An end-of-sequence token (not emitted).</summary>
    Eos,
    /// <summary>A stop string completed.</summary>
    StopString,
    /// <summary>The context is full (and no context shift was asked for).</summary>
    ContextFull,
    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <summary>Timing and counts of one generation, the same for every decoding loop. Prefill = the prompt's batched
/// forward; decode = the rest. An end token is counted in <see cref="GeneratedTokens"/> but not emitted.</summary>
public sealed record GenerationStats
{
    /// <summary>Tokens of the prompt.</summary>
    public int PromptTokens { get; init; }
    /// <summary>Prompt tokens already in the cache (not fed again).</summary>
    public int ReusedPromptTokens { get; init; }
    /// <summary>Tokens generated (an end token included).</summary>
    public int GeneratedTokens { get; init; }
    /// <summary>Time of the prompt's batched forward pass.</summary>
    public double PrefillSeconds { get; init; }
    /// <summary>Time of token generation after the prefill.</summary>
    public double DecodeSeconds { get; init; }
    /// <summary>Why generation ended.</summary>
    public StopReason StopReason { get; init; }
    /// <summary>Counters of the decoding loop (speculative, prompt lookup, entropy-adaptive); null for plain decoding.</summary>
    public Decoding.DecodingStats? Loop { get; init; }
    /// <summary>Prompt tokens fed per second.</summary>
    public double PrefillTokensPerSecond => PrefillSeconds > 0 ? (PromptTokens - ReusedPromptTokens) / PrefillSeconds : 0;
    /// <summary>Tokens generated per second after the first.</summary>
    public double DecodeTokensPerSecond => DecodeSeconds > 0 && GeneratedTokens > 1 ? (GeneratedTokens - 1) / DecodeSeconds : 0;
}

using KernelEngine.Decoding;

namespace KernelEngine;

/// <summary>What <see cref="Session.GenerateAsync(string, GenerationSettings?, CancellationToken)"/> does.</summary>
public sealed record GenerationSettings
{
    public int MaxTokens { get; init; } = 256;
    public SamplingSettings Sampling { get; init; } = new();
    /// <summary>Generation stops after a token whose text completes one of these (the stop string is kept in the text).</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Stop at the model's end-of-sequence tokens (default on).</summary>
    public bool StopAtEos { get; init; } = true;
    /// <summary>Prepend BOS to a text prompt where the model family uses it.</summary>
    public bool AddBos { get; init; } = true;
    /// <summary>Copy each step's full logits into <see cref="GeneratedToken.Logits"/> (allocates a vocab-sized array per token).</summary>
    public bool ReturnLogits { get; init; }
}

using KernelEngine.Decoding;

namespace KernelEngine;

/// <summary>What <see cref="Session.GenerateAsync(string, GenerationSettings?, CancellationToken)"/> does.</summary>
public sealed record GenerationSettings
{
    /// <summary>Most tokens to generate.</summary>
    public int MaxTokens { get; init; } = 256;
    /// <summary>How each token is chosen.</summary>
    public SamplingSettings Sampling { get; init; } = new();
    /// <summary>Generation stops after a token whose text completes one of these (the stop string is kept in the text).</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];
    /// <summary>Stop at the model's end-of-sequence tokens (default on).</summary>
    public bool StopAtEos { get; init; } = true;
    /// <summary>Prepend BOS to a text prompt where the model family uses it.</summary>
    public bool AddBos { get; init; } = true;
    /// <summary>When the context is full, keep going: keep the first <see cref="KeepTokens"/> tokens, drop the oldest half
    /// of the rest and re-rotate what moves (llama.cpp's context shift). Off: generation stops with
    /// <see cref="StopReason.ContextFull"/>. Plain sampling only (speculative loops stop at the full context).</summary>
    public bool ContextShift { get; init; }
    /// <summary>Tokens at the start that a context shift never drops (a system prompt; llama.cpp's --keep).</summary>
    public int KeepTokens { get; init; }
    /// <summary>Copy each step's full logits into <see cref="GeneratedToken.Logits"/> (allocates a vocab-sized array per token).</summary>
    public bool ReturnLogits { get; init; }
    /// <summary>Constrained decoding: a GBNF grammar (llama.cpp's format, start rule <c>root</c>) that the generated text
    /// must follow; every token outside it is masked before sampling. Plain sampling and batched generation.</summary>
    public string? Grammar { get; init; }
    /// <summary>Constrained decoding: a JSON Schema the generated text must be a document of (compiled to a grammar, see
    /// <see cref="Constraints.JsonSchemaGrammar"/>).</summary>
    public string? JsonSchema { get; init; }
    /// <summary>Test hook: the first tokens generated are these instead of the sampled ones (plain sampling only).</summary>
    internal IReadOnlyList<int>? PinnedTokens { get; init; }

    /// <summary>Checks every value (an <see cref="InvalidRequestException"/> names the bad one).</summary>
    public void Validate()
    {
        if (MaxTokens < 0) throw new InvalidRequestException($"max tokens {MaxTokens} must be >= 0");
        if (KeepTokens < 0) throw new InvalidRequestException($"keep tokens {KeepTokens} must be >= 0");
        if (Sampling == null) throw new InvalidRequestException("Sampling must not be null");
        Sampling.Validate();
        if (StopStrings == null) throw new InvalidRequestException("StopStrings must not be null");
        foreach (var s in StopStrings)
            if (s == null) throw new InvalidRequestException("a stop string is null");
        Constraints.GrammarCache.Of(this);   // compiles (and caches) the grammar: a bad one fails here
    }
}

namespace KernelEngine.Decoding;

/// <summary>One token a strategy proposes: its id, log p under the model (before temperature), the entropy of that
/// distribution in bits, and the step's logits when <see cref="GenerationSettings.ReturnLogits"/> asks for them.</summary>
internal readonly record struct StepToken(int Id, double LogProb, double EntropyBits, float[]? Logits);

/// <summary>
/// How the next tokens are found: plain sampling, speculative (draft model or prompt lookup), entropy-adaptive.
/// <see cref="Generator"/> owns everything else (end tokens, stop strings, the context limit, text, stats, cancellation),
/// so every loop stops and reports the same way.
/// </summary>
internal interface IDecodingStrategy
{
    /// <summary>The session whose stats the generation reports (the target / large model).</summary>
    Session Primary { get; }
    /// <summary>Every session the strategy drives: held for the whole generation (one call at a time).</summary>
    IReadOnlyList<Session> Sessions { get; }
    /// <summary>Tokens the context holds; a generation may produce tokens until prompt + generated = this + 1
    /// (the last token never needs to be fed).</summary>
    int ContextLength { get; }
    /// <summary>Checks settings the strategy cannot honour (before anything runs).</summary>
    void Validate(GenerationSettings settings);
    /// <summary>Processes the prompt (batched) and returns how many of its tokens were reused from the cache.</summary>
    int Prefill(IReadOnlyList<int> prompt, CancellationToken ct);
    /// <summary>Appends 1..<paramref name="maxNew"/> next tokens after <paramref name="committed"/> (prompt + generated).</summary>
    void Step(List<int> committed, int maxNew, List<StepToken> output, CancellationToken ct);
    /// <summary>Drops committed tokens [keep, keep + discard) from every session's cache (context shift); false when the
    /// loop cannot (then the generation stops at the full context).</summary>
    bool ShiftContext(int keep, int discard) => false;
    /// <summary>The loop's own counters (speculative acceptance, model switches), or null for plain sampling.</summary>
    DecodingStats? LoopStats { get; }
}

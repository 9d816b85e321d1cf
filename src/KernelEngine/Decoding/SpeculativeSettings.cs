namespace KernelEngine.Decoding;

/// <summary>Speculative decoding: how drafts are made and how many.</summary>
public sealed record SpeculativeSettings
{
    /// <summary>Draft tokens per step (gamma).</summary>
    public int Gamma { get; init; } = 4;
    /// <summary>Grow gamma after a step that accepts every draft, shrink it after one that rejects the first.</summary>
    public bool AdaptiveGamma { get; init; }
    /// <summary>Largest gamma <see cref="AdaptiveGamma"/> grows to.</summary>
    public int MaxGamma { get; init; } = 12;
    /// <summary>Draft branches per step (multi-draft, verified by recursive rejection sampling); first tokens are drawn without replacement.</summary>
    public int Drafts { get; init; } = 1;
    /// <summary>Prompt-lookup decoding: drafts are the tokens that followed the last match of the final n-gram (n = this, down to 1) in the text so far; no draft model.</summary>
    public int LookupNgram { get; init; }

    /// <summary>Throws <see cref="InvalidRequestException"/> naming the first out-of-range value.</summary>
    public void Validate(bool hasDraftModel)
    {
        if (Gamma < 1 || Gamma > 64) throw new InvalidRequestException($"gamma {Gamma} must be in 1..64");
        if (MaxGamma < Gamma) throw new InvalidRequestException($"max gamma {MaxGamma} must be >= gamma {Gamma}");
        if (Drafts < 1 || Drafts > 16) throw new InvalidRequestException($"drafts {Drafts} must be in 1..16");
        if (LookupNgram < 0) throw new InvalidRequestException($"lookup n-gram {LookupNgram} must be >= 0");
        if (LookupNgram > 0 && Drafts > 1) throw new InvalidRequestException("prompt lookup makes one draft per step (--drafts 1)");
        if (LookupNgram == 0 && !hasDraftModel) throw new InvalidRequestException("speculative decoding needs a draft model or --lookup N");
    }
}

/// <summary>Statistics of a decoding loop (speculative or entropy-adaptive), in the API and in ke's --json stats.</summary>
public sealed record DecodingStats
{
    /// <summary>Tokens emitted.</summary>
    public int GeneratedTokens { get; init; }
    /// <summary>Forward passes of the target (large) model.</summary>
    public int TargetPasses { get; init; }
    /// <summary>Forward passes of the draft (small) model.</summary>
    public int DraftPasses { get; init; }
    /// <summary>Seconds spent in the target model.</summary>
    public double TargetSeconds { get; init; }
    /// <summary>Seconds spent in the draft model.</summary>
    public double DraftSeconds { get; init; }
    /// <summary>accepted[i] / proposed[i]: how often the draft token at position i of a step was accepted.</summary>
    public double[] AcceptanceByPosition { get; init; } = [];
    /// <summary>Accepted draft tokens / proposed draft tokens.</summary>
    public double AcceptanceRate { get; init; }
    /// <summary>Target passes whose drafts were verified by the backend (<c>IBackend.VerifyDrafts</c>: on a GPU only the
    /// verdict and the emitted tokens' log-probabilities come back, not the logits): greedy, one branch, no grammar, no
    /// returned logits; the others are verified on the host.</summary>
    public int BackendVerifications { get; init; }
    /// <summary>Tokens emitted per target pass (1 without speculation).</summary>
    public double TokensPerTargetPass => TargetPasses == 0 ? 0 : GeneratedTokens / (double)TargetPasses;
    // Entropy-adaptive decoding
    /// <summary>Entropy-adaptive decoding: the fraction of tokens the large model chose.</summary>
    public double LargeModelFraction { get; init; }
    /// <summary>Entropy-adaptive decoding: switches between the models.</summary>
    public int Switches { get; init; }
}

namespace KernelEngine.Decoding;

/// <summary>
/// Scoring of a text. Bits per byte = Σ NLL (bits) / UTF-8 bytes of the text. Information capacity (the
/// "Information Capacity" paper, 2025): IC = (8·bytes/tokens − NLL bits per token + b) / log2(FLOPs per token),
/// FLOPs per token = 2·P_matmul + 4·L·n̄·d_attn (P_matmul: weights of every matrix product incl. the LM head,
/// L layers, n̄ the mean number of attended positions over the scored tokens, d_attn = heads·head_dim:
/// QKᵀ and AV are 2·n̄·d_attn each per layer).
/// </summary>
public sealed record ScoreResult
{
    /// <summary>One score per predicted token (every token after the first).</summary>
    public required IReadOnlyList<TokenScore> Tokens { get; init; }
    /// <summary>UTF-8 bytes of the scored text.</summary>
    public required long Bytes { get; init; }
    /// <summary>Floating-point operations per scored token (see the class summary).</summary>
    public required double FlopsPerToken { get; init; }
    /// <summary>The bias b of the information-capacity formula.</summary>
    public required double IcBias { get; init; }
    /// <summary>Sliding windows the text was scored in.</summary>
    public int Windows { get; init; }
    /// <summary>The window length used, in tokens.</summary>
    public int Context { get; init; }
    /// <summary>The window advance used, in tokens.</summary>
    public int Stride { get; init; }

    /// <summary>Counts and exact sums every figure below is read from (what <c>ke score --shard</c> writes).</summary>
    public required ScoreTotals Totals { get; init; }

    /// <summary>Tokens scored.</summary>
    public int TokenCount => Tokens.Count;
    /// <summary>Mean negative log-likelihood per token, in nats.</summary>
    public double MeanNll => Totals.MeanNll;
    /// <summary>Mean negative log-likelihood per token, in bits.</summary>
    public double BitsPerToken => Totals.BitsPerToken;
    /// <summary>Negative log-likelihood of the text in bits per UTF-8 byte.</summary>
    public double BitsPerByte => Totals.BitsPerByte;
    /// <summary>e^(mean NLL).</summary>
    public double Perplexity => Totals.Perplexity;
    /// <summary>Mean entropy of the predicted distributions, in bits.</summary>
    public double MeanEntropyBits => Totals.MeanEntropyBits;
    /// <summary>Bits of text per token (8 · bytes / tokens).</summary>
    public double TextBitsPerToken => Totals.TextBitsPerToken;
    /// <summary>Information capacity (see the class summary).</summary>
    public double InformationCapacity => Totals.InformationCapacity;
    /// <summary>Fraction of tokens that were the model's most likely prediction.</summary>
    public double Top1Accuracy => Totals.Top1Accuracy;

    // With a base model (KL(base || model)), as llama-perplexity --kl-divergence reports.
    /// <summary>True when a base model was compared (KL(base || model) per token).</summary>
    public bool HasBase => Totals.HasBase;
    /// <summary>Mean KL(base || model) per token, in nats.</summary>
    public double MeanKl => Totals.MeanKl;
    /// <summary>The p-th percentile (0-100) of the per-token KL, interpolated.</summary>
    public double KlPercentile(double p) => Totals.KlPercentile(p);
    /// <summary>Fraction of tokens where the base and the model agree on the most likely token.</summary>
    public double Top1Agreement => Totals.Top1Agreement;
    /// <summary>The base model's perplexity on the same tokens.</summary>
    public double BasePerplexity => Totals.BasePerplexity;
    /// <summary>Perplexity / base perplexity.</summary>
    public double PerplexityRatio => Totals.PerplexityRatio;
}

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

    /// <summary>Tokens scored.</summary>
    public int TokenCount => Tokens.Count;
    /// <summary>Mean negative log-likelihood per token, in nats.</summary>
    public double MeanNll => Tokens.Count == 0 ? double.NaN : -Tokens.Average(t => t.LogProb);
    /// <summary>Mean negative log-likelihood per token, in bits.</summary>
    public double BitsPerToken => MeanNll / Math.Log(2);
    /// <summary>Negative log-likelihood of the text in bits per UTF-8 byte.</summary>
    public double BitsPerByte => -Tokens.Sum(t => t.LogProb) / Math.Log(2) / Bytes;
    /// <summary>e^(mean NLL).</summary>
    public double Perplexity => Math.Exp(MeanNll);
    /// <summary>Mean entropy of the predicted distributions, in bits.</summary>
    public double MeanEntropyBits => Tokens.Average(t => t.EntropyBits);
    /// <summary>Bits of text per token (8 · bytes / tokens).</summary>
    public double TextBitsPerToken => 8.0 * Bytes / TokenCount;
    /// <summary>Information capacity (see the class summary).</summary>
    public double InformationCapacity => (TextBitsPerToken - BitsPerToken + IcBias) / Math.Log2(FlopsPerToken);
    /// <summary>Fraction of tokens that were the model's most likely prediction.</summary>
    public double Top1Accuracy => Tokens.Count(t => t.Rank == 0) / (double)TokenCount;

    // With a base model (KL(base || model)), as llama-perplexity --kl-divergence reports.
    /// <summary>True when a base model was compared (KL(base || model) per token).</summary>
    public bool HasBase => Tokens.Count > 0 && !double.IsNaN(Tokens[0].KlDivergence);
    /// <summary>Mean KL(base || model) per token, in nats.</summary>
    public double MeanKl => Tokens.Average(t => t.KlDivergence);
    /// <summary>The p-th percentile (0-100) of the per-token KL, interpolated.</summary>
    public double KlPercentile(double p)
    {
        var sorted = Tokens.Select(t => t.KlDivergence).Order().ToArray();
        double idx = p / 100 * (sorted.Length - 1);
        int lo = (int)Math.Floor(idx), hi = (int)Math.Ceiling(idx);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (idx - lo);
    }
    /// <summary>Fraction of tokens where the base and the model agree on the most likely token.</summary>
    public double Top1Agreement => Tokens.Count(t => t.Top1Agrees == true) / (double)TokenCount;
    /// <summary>The base model's perplexity on the same tokens.</summary>
    public double BasePerplexity => Math.Exp(-Tokens.Average(t => t.BaseLogProb));
    /// <summary>Perplexity / base perplexity.</summary>
    public double PerplexityRatio => Perplexity / BasePerplexity;
}

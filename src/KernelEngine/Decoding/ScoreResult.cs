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
    public required IReadOnlyList<TokenScore> Tokens { get; init; }
    public required long Bytes { get; init; }
    public required double FlopsPerToken { get; init; }
    public required double IcBias { get; init; }
    public int Windows { get; init; }

    public int TokenCount => Tokens.Count;
    public double MeanNll => Tokens.Count == 0 ? double.NaN : -Tokens.Average(t => t.LogProb);
    public double BitsPerToken => MeanNll / Math.Log(2);
    public double BitsPerByte => -Tokens.Sum(t => t.LogProb) / Math.Log(2) / Bytes;
    public double Perplexity => Math.Exp(MeanNll);
    public double MeanEntropyBits => Tokens.Average(t => t.EntropyBits);
    public double TextBitsPerToken => 8.0 * Bytes / TokenCount;
    public double InformationCapacity => (TextBitsPerToken - BitsPerToken + IcBias) / Math.Log2(FlopsPerToken);
    public double Top1Accuracy => Tokens.Count(t => t.Rank == 0) / (double)TokenCount;

    // With a base model (KL(base || model)), as llama-perplexity --kl-divergence reports.
    public bool HasBase => Tokens.Count > 0 && !double.IsNaN(Tokens[0].KlDivergence);
    public double MeanKl => Tokens.Average(t => t.KlDivergence);
    public double KlPercentile(double p)
    {
        var sorted = Tokens.Select(t => t.KlDivergence).Order().ToArray();
        double idx = p / 100 * (sorted.Length - 1);
        int lo = (int)Math.Floor(idx), hi = (int)Math.Ceiling(idx);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (idx - lo);
    }
    public double Top1Agreement => Tokens.Count(t => t.Top1Agrees == true) / (double)TokenCount;
    public double BasePerplexity => Math.Exp(-Tokens.Average(t => t.BaseLogProb));
    public double PerplexityRatio => Perplexity / BasePerplexity;
}

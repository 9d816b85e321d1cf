namespace KernelEngine.Decoding;

/// <summary>
/// What a score is computed from: counts and exact sums over the scored tokens, plus the model's shape for the FLOPs
/// count. Totals of disjoint sets of windows add up (<see cref="Add(ScoreTotals)"/>) to the totals of the whole text exactly, so the
/// figures read from them are the same to the last digit however the text was split (<c>ke score --shard / --merge</c>).
/// </summary>
public sealed class ScoreTotals
{
    /// <summary>Tokens scored.</summary>
    public long Tokens { get; set; }
    /// <summary>UTF-8 bytes of the whole text.</summary>
    public long Bytes { get; set; }
    /// <summary>Windows scored.</summary>
    public long Windows { get; set; }
    /// <summary>Tokens that were the model's most likely prediction.</summary>
    public long Top1 { get; set; }
    /// <summary>Σ positions attended over the scored tokens (for the mean attention span in the FLOPs count).</summary>
    public long Attended { get; set; }
    /// <summary>Σ log p of the true tokens, nats.</summary>
    public ExactSum LogProb { get; set; } = new();
    /// <summary>Σ entropy of the predictions, bits.</summary>
    public ExactSum EntropyBits { get; set; } = new();
    /// <summary>The bias b of the information-capacity formula.</summary>
    public double IcBias { get; set; }
    /// <summary>Weights of every matrix product per token (incl. the LM head).</summary>
    public double MatmulParams { get; set; }
    /// <summary>Layers × heads × head_dim: attention FLOPs per attended position are 4 × this.</summary>
    public double AttentionWidth { get; set; }

    /// <summary>Whether a KL base was compared.</summary>
    public bool HasBase { get; set; }
    /// <summary>Σ KL(base || model), nats.</summary>
    public ExactSum Kl { get; set; } = new();
    /// <summary>Σ log p of the true tokens under the base, nats.</summary>
    public ExactSum BaseLogProb { get; set; } = new();
    /// <summary>Tokens where base and model agree on the most likely token.</summary>
    public long Top1Agree { get; set; }
    /// <summary>Every scored token's KL (percentiles need them all).</summary>
    public List<double> KlValues { get; set; } = new();

    /// <summary>Takes one scored token.</summary>
    public void Add(in TokenScore t)
    {
        Tokens++;
        LogProb.Add(t.LogProb);
        EntropyBits.Add(t.EntropyBits);
        if (t.Rank == 0) Top1++;
        Attended += t.ContextTokens;
        if (double.IsNaN(t.KlDivergence)) return;
        HasBase = true;
        Kl.Add(t.KlDivergence);
        KlValues.Add(t.KlDivergence);
        BaseLogProb.Add(t.BaseLogProb);
        if (t.Top1Agrees == true) Top1Agree++;
    }

    /// <summary>Adds the totals of other windows of the same text, model and settings.</summary>
    public void Add(ScoreTotals o)
    {
        Tokens += o.Tokens; Windows += o.Windows; Top1 += o.Top1; Attended += o.Attended;
        LogProb.Add(o.LogProb); EntropyBits.Add(o.EntropyBits);
        HasBase |= o.HasBase; Kl.Add(o.Kl); BaseLogProb.Add(o.BaseLogProb); Top1Agree += o.Top1Agree; KlValues.AddRange(o.KlValues);
    }

    /// <summary>Mean negative log-likelihood per token, nats.</summary>
    public double MeanNll => Tokens == 0 ? double.NaN : -LogProb.Value / Tokens;
    /// <summary>Mean negative log-likelihood per token, bits.</summary>
    public double BitsPerToken => MeanNll / Math.Log(2);
    /// <summary>Negative log-likelihood in bits per UTF-8 byte of the text.</summary>
    public double BitsPerByte => -LogProb.Value / Math.Log(2) / Bytes;
    /// <summary>e^(mean NLL).</summary>
    public double Perplexity => Math.Exp(MeanNll);
    /// <summary>Mean entropy of the predictions, bits.</summary>
    public double MeanEntropyBits => EntropyBits.Value / Tokens;
    /// <summary>Fraction of tokens that were the model's most likely prediction.</summary>
    public double Top1Accuracy => Top1 / (double)Tokens;
    /// <summary>FLOPs per scored token: 2 · matmul weights + 4 · layers · mean attended positions · heads · head_dim.</summary>
    public double FlopsPerToken => 2 * MatmulParams + 4.0 * AttentionWidth * (Attended / (double)Tokens);
    /// <summary>Bits of text per token (8 · bytes / tokens).</summary>
    public double TextBitsPerToken => 8.0 * Bytes / Tokens;
    /// <summary>Information capacity (see <see cref="ScoreResult"/>).</summary>
    public double InformationCapacity => (TextBitsPerToken - BitsPerToken + IcBias) / Math.Log2(FlopsPerToken);
    /// <summary>Mean KL(base || model), nats.</summary>
    public double MeanKl => Kl.Value / Tokens;
    /// <summary>Fraction of tokens where base and model agree on the most likely token.</summary>
    public double Top1Agreement => Top1Agree / (double)Tokens;
    /// <summary>The base's perplexity on the same tokens.</summary>
    public double BasePerplexity => Math.Exp(-BaseLogProb.Value / Tokens);
    /// <summary>Perplexity / base perplexity.</summary>
    public double PerplexityRatio => Perplexity / BasePerplexity;

    /// <summary>The p-th percentile (0-100) of the per-token KL, interpolated.</summary>
    public double KlPercentile(double p)
    {
        var sorted = KlValues.Order().ToArray();
        double idx = p / 100 * (sorted.Length - 1);
        int lo = (int)Math.Floor(idx), hi = (int)Math.Ceiling(idx);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (idx - lo);
    }
}

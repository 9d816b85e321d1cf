namespace KernelEngine.Decoding;

/// <summary>How well the model predicted one token: log p (nats), the entropy of the prediction (bits), the rank of the true token (0 = top-1).</summary>
public readonly record struct TokenScore(int Position, int TokenId, double LogProb, double EntropyBits, int Rank, int ContextTokens)
{
    /// <summary>KL(base || model) at this position in nats (NaN without a base).</summary>
    public double KlDivergence { get; init; } = double.NaN;
    /// <summary>Whether base and model agree on the most likely token (null without a base).</summary>
    public bool? Top1Agrees { get; init; }
    /// <summary>log p of the true token under the base model (NaN without a base).</summary>
    public double BaseLogProb { get; init; } = double.NaN;
}

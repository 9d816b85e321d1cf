using KernelEngine.Kernels.SoftmaxEntropy;
using KernelEngine.Text;

namespace KernelEngine.Decoding;

/// <summary>
/// How plain decoding picks the next token from a row of logits, the same for a session and for a batched sequence:
/// greedy without a penalty, returned logits or a grammar stays on the device (<see cref="OnDevice"/>, the fused
/// softmax-entropy's argmax); otherwise the grammar's mask (on a copy), the sampler, and log p and entropy of the
/// model's own distribution.
/// </summary>
internal sealed class TokenChooser
{
    private readonly Sampler? _sampler;
    private readonly Constraints.GrammarMatcher? _grammar;
    private readonly bool _returnLogits;
    private readonly float[]? _masked;

    public TokenChooser(GenerationSettings settings, Tokenizer tokenizer, int vocab)
    {
        _grammar = Constraints.GrammarCache.Of(settings) is { } g ? new(g, tokenizer) : null;
        _returnLogits = settings.ReturnLogits;
        OnDevice = settings.Sampling.IsGreedy && settings.Sampling.RepetitionPenalty == 1f && !settings.ReturnLogits && _grammar == null;
        if (OnDevice) return;
        _sampler = new Sampler(settings.Sampling, vocab);
        if (_grammar != null) _masked = new float[vocab];
    }

    /// <summary>The choice is the device's argmax: read <see cref="FromDevice"/> instead of the logits.</summary>
    public bool OnDevice { get; }

    /// <summary>The token of a device-side softmax-entropy (or <paramref name="pinned"/>).</summary>
    public static StepToken FromDevice(in SoftmaxStats s, int? pinned = null) => new(pinned ?? s.ArgMax, s.Max - s.LogSumExp, s.EntropyBits, null);

    /// <summary>Picks from host logits after <paramref name="history"/>, with <paramref name="tokensLeft"/> of the budget
    /// left (the grammar closes a document near its end); <paramref name="pinned"/> replaces the sampled token (tests).</summary>
    public StepToken Choose(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, int tokensLeft, int? pinned = null)
    {
        int next;
        if (_grammar != null)
        {
            logits.CopyTo(_masked);
            _grammar.Mask(_masked, tokensLeft);
            next = _sampler!.Sample(_masked, history);
            _grammar.Accept(next);
        }
        else next = pinned ?? _sampler!.Sample(logits, history);
        var stats = SoftmaxEntropyCpu.Compute(logits, 1f, next);
        return new StepToken(next, stats.TokenLogProb, stats.EntropyBits, _returnLogits ? logits.ToArray() : null);
    }
}

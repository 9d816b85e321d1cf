using System.Diagnostics;
using KernelEngine.Kernels.SoftmaxEntropy;
using KernelEngine.Text;

namespace KernelEngine.Decoding;

/// <summary>Entropy-adaptive decoding: when the small model may generate.</summary>
public sealed record EntropyAdaptiveSettings
{
    /// <summary>The small model generates while the rolling mean of its next-token entropy (bits, before temperature) is below this.</summary>
    public double ThresholdBits { get; init; } = 1.5;
    /// <summary>Tokens in the rolling mean.</summary>
    public int Window { get; init; } = 4;
    /// <summary>Tokens a model keeps generating after a switch before the next switch may happen.</summary>
    public int MinStay { get; init; } = 4;

    public void Validate()
    {
        if (double.IsNaN(ThresholdBits) || ThresholdBits < 0) throw new InvalidRequestException($"entropy threshold {ThresholdBits} must be >= 0");
        if (Window < 1) throw new InvalidRequestException($"entropy window {Window} must be >= 1");
        if (MinStay < 1) throw new InvalidRequestException($"minimum stay {MinStay} must be >= 1");
    }
}

/// <summary>
/// Entropy-adaptive decoding (EAD): a small and a large model share one token stream. The small model generates
/// while the rolling mean of its own next-token entropy stays below the threshold; above it, the large model takes
/// over, for at least MinStay tokens. Both KV caches stay in sync: the idle model catches up on the tokens it
/// missed in one batched pass (which also yields the small model's entropies for those positions). Threshold 0
/// gives the large model's output, an infinite threshold the small model's.
/// </summary>
public sealed class EntropyAdaptiveDecoder
{
    private readonly Session _large, _small;
    private readonly EntropyAdaptiveSettings _s;

    public EntropyAdaptiveDecoder(Session large, Session small, EntropyAdaptiveSettings settings)
    {
        settings.Validate();
        if (large.Model.Config.VocabSize != small.Model.Config.VocabSize)
            throw new InvalidRequestException($"small model vocabulary {small.Model.Config.VocabSize} differs from the large model's {large.Model.Config.VocabSize}");
        _large = large; _small = small; _s = settings;
    }

    public DecodingStats? Stats { get; private set; }

    public IEnumerable<GeneratedToken> Generate(IReadOnlyList<int> promptIds, GenerationSettings settings, bool atStartOfText = false, CancellationToken ct = default)
    {
        settings.Sampling.Validate();
        if (promptIds.Count == 0) throw new InvalidRequestException("empty prompt");
        int ctx = Math.Min(_large.ContextLength, _small.ContextLength);
        if (promptIds.Count >= ctx) throw new InvalidRequestException($"prompt of {promptIds.Count} tokens does not fit the context length {ctx}");
        return Run(promptIds.ToList(), settings, atStartOfText, ctx, ct);
    }

    private IEnumerable<GeneratedToken> Run(List<int> committed, GenerationSettings settings, bool atStartOfText, int ctx, CancellationToken ct)
    {
        int vocab = _large.Model.Config.VocabSize;
        var sampler = new Sampler(settings.Sampling, vocab);
        var text = new TextStream(_large.Model.Tokenizer, atStartOfText);
        var window = new Queue<double>();
        double windowSum = 0;
        float[] all = [];
        int generated = 0, largeTokens = 0, switches = 0, stay = 0, largePasses = 0, smallPasses = 0;
        int start = committed.Count;
        Session? active = null;
        var largeTime = new Stopwatch(); var smallTime = new Stopwatch();

        void Push(double bits)
        {
            window.Enqueue(bits); windowSum += bits;
            if (window.Count > _s.Window) windowSum -= window.Dequeue();
        }

        // Feeds the small model everything it missed; each fed position's entropy joins the rolling window.
        ReadOnlySpan<float> CatchUpSmall()
        {
            SpeculativeDecoder.Sync(_small, committed);
            int missing = committed.Count - _small.Position;
            if (all.Length < missing * vocab) all = new float[missing * vocab];
            smallTime.Start();
            _small.FeedAll(committed.GetRange(committed.Count - missing, missing).ToArray(), all.AsSpan(0, missing * vocab));
            smallTime.Stop();
            smallPasses++;
            for (int i = 0; i < missing; i++) Push(SoftmaxEntropyCpu.Compute(all.AsSpan(i * vocab, vocab)).EntropyBits);
            return _small.Logits;
        }

        while (generated < settings.MaxTokens && committed.Count < ctx && !ct.IsCancellationRequested)
        {
            bool mayDecide = active == null || stay >= _s.MinStay;
            bool smallUpToDate = false;
            if (active == _small || mayDecide) { CatchUpSmall(); smallUpToDate = true; }
            if (mayDecide)
            {
                var want = windowSum / window.Count < _s.ThresholdBits ? _small : _large;
                if (want != active)
                {
                    if (active != null) switches++;
                    active = want;
                    stay = 0;
                }
            }
            ReadOnlySpan<float> logits;
            if (active == _small)
            {
                if (!smallUpToDate) CatchUpSmall();
                logits = _small.Logits;
            }
            else
            {
                SpeculativeDecoder.Sync(_large, committed);
                largeTime.Start();
                logits = _large.Feed(committed.GetRange(_large.Position, committed.Count - _large.Position).ToArray());
                largeTime.Stop();
                largePasses++;
                largeTokens++;
            }
            int id = sampler.Sample(logits, default);
            var s = SoftmaxEntropyCpu.Compute(logits, 1f, id);
            float[]? copy = settings.ReturnLogits ? logits.ToArray() : null;
            committed.Add(id);
            generated++;
            stay++;
            if (settings.StopAtEos && _large.Model.Tokenizer.IsEos(id)) break;
            string piece = text.Push(id);
            yield return new GeneratedToken(id, piece, committed.Count - 1, s.TokenLogProb, s.EntropyBits, copy);
            bool stop = false;
            foreach (var st in settings.StopStrings) if (st.Length > 0 && piece.Contains(st, StringComparison.Ordinal)) stop = true;
            if (stop) break;
        }
        Stats = new DecodingStats
        {
            GeneratedTokens = committed.Count - start, TargetPasses = largePasses, DraftPasses = smallPasses,
            TargetSeconds = largeTime.Elapsed.TotalSeconds, DraftSeconds = smallTime.Elapsed.TotalSeconds,
            LargeModelFraction = generated == 0 ? 0 : largeTokens / (double)generated, Switches = switches,
        };
    }
}

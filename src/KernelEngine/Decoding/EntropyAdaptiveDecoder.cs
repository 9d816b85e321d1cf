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

    /// <summary>Throws <see cref="InvalidRequestException"/> naming the first out-of-range value.</summary>
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

    /// <summary>A decoder that runs <paramref name="small"/> while its entropy is low and <paramref name="large"/> otherwise; both sessions need the same tokenizer.</summary>
    public EntropyAdaptiveDecoder(Session large, Session small, EntropyAdaptiveSettings settings)
    {
        ArgumentNullException.ThrowIfNull(large);
        ArgumentNullException.ThrowIfNull(small);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        if (ReferenceEquals(large, small)) throw new InvalidRequestException("the small and the large model need separate sessions");
        if (large.Model.Config.VocabSize != small.Model.Config.VocabSize)
            throw new InvalidRequestException($"small model vocabulary {small.Model.Config.VocabSize} differs from the large model's {large.Model.Config.VocabSize}");
        _large = large; _small = small; _s = settings;
    }

    /// <summary>Counters of the last generation (also in the large session's <see cref="Session.LastStats"/>.Loop).</summary>
    public DecodingStats? Stats => _large.LastStats?.Loop;

    /// <summary>Streams tokens after <paramref name="promptIds"/>, as <see cref="Session.Generate(IReadOnlyList{int}, GenerationSettings, bool, CancellationToken)"/> does.</summary>
    public IEnumerable<GeneratedToken> Generate(IReadOnlyList<int> promptIds, GenerationSettings settings, bool atStartOfText = false, CancellationToken ct = default) =>
        Generator.Run(new Strategy(this, settings), promptIds, settings, atStartOfText, ct);

    /// <summary>The same tokens as <see cref="Generate"/>, computed off the caller's thread.</summary>
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> promptIds, GenerationSettings settings, bool atStartOfText = false, CancellationToken ct = default) =>
        Generator.Async(() => Generate(promptIds, settings, atStartOfText, ct), ct);

    private sealed class Strategy : IDecodingStrategy
    {
        private readonly Session _large, _small;
        private readonly EntropyAdaptiveSettings _s;
        private readonly int _vocab;
        private readonly bool _returnLogits;
        private readonly Sampler _sampler;
        private readonly Queue<double> _window = new();
        private readonly Stopwatch _largeTime = new(), _smallTime = new();
        private double _windowSum;
        private float[] _all = [];
        private int _generated, _largeTokens, _switches, _stay, _largePasses, _smallPasses;
        private Session? _active;

        public Strategy(EntropyAdaptiveDecoder d, GenerationSettings settings)
        {
            _large = d._large; _small = d._small; _s = d._s;
            _vocab = _large.Model.Config.VocabSize;
            _returnLogits = settings.ReturnLogits;
            _sampler = new Sampler(settings.Sampling, _vocab);
            Sessions = [_large, _small];
        }

        public Session Primary => _large;
        public IReadOnlyList<Session> Sessions { get; }
        public int ContextLength => Math.Min(_large.ContextLength, _small.ContextLength);
        public void Validate(GenerationSettings settings)
        {
            if (settings.Grammar != null || settings.JsonSchema != null) throw new InvalidRequestException("grammar- and schema-constrained decoding run with plain sampling, not with entropy-adaptive decoding yet");
        }

        private void Push(double bits)
        {
            _window.Enqueue(bits); _windowSum += bits;
            if (_window.Count > _s.Window) _windowSum -= _window.Dequeue();
        }

        /// <summary>The small model takes the prompt but its last token (whose logits the first step needs), pushing the
        /// entropy of every fed position into the rolling window.</summary>
        public int Prefill(IReadOnlyList<int> prompt, CancellationToken ct)
        {
            var committed = prompt as List<int> ?? prompt.ToList();
            SpeculativeDecoder.Sync(_small, committed);
            int reused = _small.Position;
            int missing = committed.Count - _small.Position - 1;
            if (missing > 0) FeedSmall(committed.GetRange(_small.Position, missing).ToArray(), ct);
            return reused;
        }

        private void FeedSmall(int[] tokens, CancellationToken ct)
        {
            if (_all.Length < tokens.Length * _vocab) _all = new float[tokens.Length * _vocab];
            _smallTime.Start();
            _small.FeedAllCore(tokens, _all.AsSpan(0, tokens.Length * _vocab), ct);
            _smallTime.Stop();
            _smallPasses++;
            for (int i = 0; i < tokens.Length; i++) Push(SoftmaxEntropyCpu.Compute(_all.AsSpan(i * _vocab, _vocab)).EntropyBits);
        }

        /// <summary>Feeds the small model everything it missed; each fed position's entropy joins the rolling window.</summary>
        private void CatchUpSmall(List<int> committed, CancellationToken ct)
        {
            SpeculativeDecoder.Sync(_small, committed);
            int missing = committed.Count - _small.Position;
            FeedSmall(committed.GetRange(committed.Count - missing, missing).ToArray(), ct);
        }

        public void Step(List<int> committed, int maxNew, List<StepToken> output, CancellationToken ct)
        {
            bool mayDecide = _active == null || _stay >= _s.MinStay;
            bool smallUpToDate = false;
            if (_active == _small || mayDecide) { CatchUpSmall(committed, ct); smallUpToDate = true; }
            if (mayDecide)
            {
                var want = _windowSum / _window.Count < _s.ThresholdBits ? _small : _large;
                if (want != _active)
                {
                    if (_active != null) _switches++;
                    _active = want;
                    _stay = 0;
                }
            }
            ReadOnlySpan<float> logits;
            if (_active == _small)
            {
                if (!smallUpToDate) CatchUpSmall(committed, ct);
                logits = _small.Logits;
            }
            else
            {
                SpeculativeDecoder.Sync(_large, committed);
                _largeTime.Start();
                logits = _large.FeedCore(committed.GetRange(_large.Position, committed.Count - _large.Position).ToArray(), ct);
                _largeTime.Stop();
                _largePasses++;
                _largeTokens++;
            }
            int id = _sampler.Sample(logits, default);
            var s = SoftmaxEntropyCpu.Compute(logits, 1f, id);
            output.Add(new StepToken(id, s.TokenLogProb, s.EntropyBits, _returnLogits ? logits.ToArray() : null));
            _generated++;
            _stay++;
        }

        public DecodingStats LoopStats => new()
        {
            GeneratedTokens = _generated, TargetPasses = _largePasses, DraftPasses = _smallPasses,
            TargetSeconds = _largeTime.Elapsed.TotalSeconds, DraftSeconds = _smallTime.Elapsed.TotalSeconds,
            LargeModelFraction = _generated == 0 ? 0 : _largeTokens / (double)_generated, Switches = _switches,
        };
    }
}

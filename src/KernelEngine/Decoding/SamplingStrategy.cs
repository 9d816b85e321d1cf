using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KernelEngine.Decoding;

/// <summary>
/// Plain decoding: one forward pass per token, then greedy or sampled choice. Greedy decoding without a repetition
/// penalty or returned logits stays on the device (argmax, entropy and log p from the fused softmax-entropy kernel).
/// </summary>
internal sealed class SamplingStrategy(Session session, GenerationSettings settings) : IDecodingStrategy
{
    private readonly TokenChooser _chooser = new(settings, session.Model.Tokenizer, session.Config.VocabSize);
    private readonly Session[] _sessions = [session];
    private int _steps;

    public Session Primary => session;
    public IReadOnlyList<Session> Sessions => _sessions;
    public int ContextLength => session.ContextLength;
    public DecodingStats? LoopStats => null;
    public void Validate(GenerationSettings s) { }

    public bool ShiftContext(int keep, int discard)
    {
        session.ShiftContextCore(keep, Math.Min(discard, session.Position - keep));
        return true;
    }

    public int Prefill(IReadOnlyList<int> prompt, CancellationToken ct)
    {
        // Reuse the cached prefix; at least the last prompt token is fed again to get its logits.
        var cached = session.Tokens;
        int common = 0;
        while (common < cached.Count && common < prompt.Count - 1 && cached[common] == prompt[common]) common++;
        session.RewindCore(common);
        var rest = new int[prompt.Count - common];
        for (int i = 0; i < rest.Length; i++) rest[i] = prompt[common + i];
        Feed(rest, ct);
        return common;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Feed(ReadOnlySpan<int> tokens, CancellationToken ct)
    {
        if (_chooser.OnDevice) session.FeedOnDevice(tokens, ct);
        else session.FeedCore(tokens, ct);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Step(List<int> committed, int maxNew, List<StepToken> output, CancellationToken ct)
    {
        int fed = session.Position;
        if (fed < committed.Count) Feed(CollectionsMarshal.AsSpan(committed)[fed..], ct);
        int? pinned = settings.PinnedTokens is { } pins && _steps < pins.Count ? pins[_steps] : null;
        _steps++;
        output.Add(_chooser.OnDevice ? TokenChooser.FromDevice(session.NextTokenStatsCore(), pinned)
            : _chooser.Choose(session.Logits, CollectionsMarshal.AsSpan(committed), maxNew, pinned));
    }
}

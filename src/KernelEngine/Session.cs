using System.Diagnostics;
using System.Runtime.CompilerServices;
using KernelEngine.Backends;
using KernelEngine.Decoding;
using KernelEngine.Kernels.SoftmaxEntropy;
using KernelEngine.Models;
using KernelEngine.Text;

namespace KernelEngine;

/// <summary>
/// One conversation with a model: a KV cache, activation buffers and the tokens it holds. Not thread-safe
/// itself; use one session per concurrent request. A new prompt reuses the cached prefix it shares with the
/// tokens already in the cache.
/// </summary>
public sealed class Session : IDisposable
{
    private readonly Model _model;
    private readonly Transformer _t;
    private readonly KvCache _cache;
    private readonly RunState _state;
    private readonly List<int> _tokens = new();
    private readonly float[] _logits;       // (vocab) last row read back
    private RunState? _scoreState;           // (batch, vocab) logits, created on first ForwardAll

    internal Session(Model model)
    {
        _model = model;
        _t = model.Transformer;
        var c = model.Config;
        _cache = new KvCache(model.Backend, c.Layers, model.ContextLength, c.KvDim, model.Options.F16KvCache);
        try { _state = new RunState(model.Backend, c, Math.Min(model.Options.PrefillBatch, model.ContextLength), 1); }
        catch { _cache.Dispose(); throw; }
        _logits = new float[c.VocabSize];
    }

    public Model Model => _model;
    /// <summary>Tokens whose keys and values are in the cache.</summary>
    public IReadOnlyList<int> Tokens => _tokens;
    public int Position => _tokens.Count;
    public int ContextLength => _cache.ContextLength;
    /// <summary>Most tokens one batched pass takes (<see cref="ModelOptions.PrefillBatch"/>).</summary>
    public int BatchCapacity => _state.Capacity;
    public GenerationStats? LastStats { get; private set; }

    /// <summary>Logits (vocab) after the last token fed by Feed/FeedAll (greedy generation keeps them on the device
    /// unless GenerationSettings.ReturnLogits is set). Valid until the next call.</summary>
    public ReadOnlySpan<float> Logits => _logits;

    /// <summary>Drops cached tokens from <paramref name="position"/> on (speculative rollback, prompt edits).</summary>
    public void Rewind(int position)
    {
        if (position < 0 || position > _tokens.Count) throw new ArgumentOutOfRangeException(nameof(position));
        _tokens.RemoveRange(position, _tokens.Count - position);
    }

    public void Reset() => _tokens.Clear();

    /// <summary>Feeds tokens in batched passes; afterwards <see cref="Logits"/> holds the next-token logits.</summary>
    public ReadOnlySpan<float> Feed(scoped ReadOnlySpan<int> tokens)
    {
        FeedOnDevice(tokens);
        _t.Backend.Read(_state.Logits, 0, 1, _logits);
        return _logits;
    }

    /// <summary>Feeds tokens; the next-token logits stay on the device (see <see cref="NextTokenStats"/>).</summary>
    private void FeedOnDevice(scoped ReadOnlySpan<int> tokens)
    {
        if (tokens.IsEmpty) throw new InvalidRequestException("no tokens to feed");
        CheckFits(tokens.Length);
        foreach (int id in tokens) CheckToken(id);
        for (int i = 0; i < tokens.Length; i += _state.Capacity)
        {
            var chunk = tokens.Slice(i, Math.Min(_state.Capacity, tokens.Length - i));
            _t.Forward(_state, _cache, chunk, _tokens.Count, allLogits: false);
            foreach (int id in chunk) _tokens.Add(id);
        }
    }

    /// <summary>
    /// Softmax-entropy summary of the next-token logits computed where they are (one fused kernel on a GPU): argmax,
    /// log-sum-exp, entropy and log p(token), with no copy of the logits to the host.
    /// </summary>
    public SoftmaxStats NextTokenStats(float temperature = 1f, int token = -1) => _t.Backend.SoftmaxEntropy(_state.Logits, 0, temperature, token);

    /// <summary>
    /// Feeds tokens and returns the logits of every one of them: row i (vocab) predicts the token after tokens[i].
    /// Runs as batched prefill passes (scoring, speculative verification).
    /// </summary>
    public void FeedAll(ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int vocab = _model.Config.VocabSize;
        if (logits.Length < tokens.Length * vocab) throw new ArgumentException($"logits needs {tokens.Length} x {vocab} floats");
        CheckFits(tokens.Length);
        foreach (int id in tokens) CheckToken(id);
        _scoreState ??= new RunState(_t.Backend, _model.Config, _state.Capacity, _state.Capacity);
        for (int i = 0; i < tokens.Length; i += _scoreState.Capacity)
        {
            var chunk = tokens.Slice(i, Math.Min(_scoreState.Capacity, tokens.Length - i));
            _t.Forward(_scoreState, _cache, chunk, _tokens.Count, allLogits: true);
            _t.Backend.Read(_scoreState.Logits, 0, chunk.Length, logits.Slice(i * vocab, chunk.Length * vocab));
            foreach (int id in chunk) _tokens.Add(id);
        }
        logits.Slice((tokens.Length - 1) * vocab, vocab).CopyTo(_logits);
    }

    /// <summary>
    /// Runs draft branches after the cached tokens without committing them: tokens holds branches of
    /// <paramref name="branchLength"/> tokens back to back; each branch sees the cache and its own earlier tokens.
    /// Row r of logits (vocab) predicts the token after tokens[r]. One batched pass (speculative verification).
    /// </summary>
    public void FeedBranches(ReadOnlySpan<int> tokens, int branchLength, Span<float> logits)
    {
        int vocab = _model.Config.VocabSize;
        if (branchLength <= 0 || tokens.Length % branchLength != 0) throw new ArgumentException("tokens must be whole branches");
        _scoreState ??= new RunState(_t.Backend, _model.Config, _state.Capacity, _state.Capacity);
        if (tokens.Length > _scoreState.Capacity) throw new InvalidRequestException($"{tokens.Length} draft tokens exceed the batch of {_scoreState.Capacity}");
        CheckFits(tokens.Length);
        foreach (int id in tokens) CheckToken(id);
        _t.Forward(_scoreState, _cache, tokens, _tokens.Count, allLogits: true, branch: branchLength);
        _t.Backend.Read(_scoreState.Logits, 0, tokens.Length, logits[..(tokens.Length * vocab)]);
    }

    /// <summary>Commits the first tokens of branch b fed by <see cref="FeedBranches"/> (moving its keys and values into place).</summary>
    public void CommitBranch(int branch, int branchLength, ReadOnlySpan<int> tokens)
    {
        int start = _tokens.Count;
        if (tokens.Length > branchLength) throw new ArgumentException("more tokens than the branch holds");
        if (branch > 0 && tokens.Length > 0) _t.Backend.CopyKv(_cache, start + branch * branchLength, start, tokens.Length);
        foreach (int id in tokens) _tokens.Add(id);
    }

    private void CheckFits(int count)
    {
        if (_tokens.Count + count > _cache.ContextLength)
            throw new InvalidRequestException($"{_tokens.Count + count} tokens exceed the context length {_cache.ContextLength}");
    }

    private void CheckToken(int id)
    {
        if ((uint)id >= (uint)_model.Config.VocabSize)
            throw new InvalidRequestException($"token id {id} is outside the model's vocabulary (0..{_model.Config.VocabSize - 1})");
    }

    /// <summary>Encodes a prompt as the model expects: BOS (Llama family) + text; an empty prompt is BOS alone.</summary>
    public int[] EncodePrompt(string prompt, bool addBos = true)
    {
        var tok = _model.Tokenizer;
        if (prompt.Length == 0)
        {
            int? start = tok.BosId ?? _model.Config.BosTokenId;
            return start is int b ? [b] : throw new InvalidRequestException("empty prompt and the model has no BOS token");
        }
        return tok.Encode(prompt, addBos);
    }

    public IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerationSettings? settings = null, CancellationToken cancellationToken = default)
    {
        settings ??= new GenerationSettings();
        return GenerateAsync(EncodePrompt(prompt, settings.AddBos), settings, cancellationToken, atStartOfText: prompt.Length == 0);
    }

    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> promptIds, GenerationSettings? settings = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default, bool atStartOfText = false)
    {
        await Task.Yield(); // the forward passes run off the caller's thread
        foreach (var t in Generate(promptIds, settings ?? new GenerationSettings(), atStartOfText, cancellationToken))
            yield return t;
    }

    /// <summary>Synchronous generation; the async API wraps this.</summary>
    public IEnumerable<GeneratedToken> Generate(IReadOnlyList<int> promptIds, GenerationSettings settings, bool atStartOfText = false,
        CancellationToken cancellationToken = default)
    {
        settings.Sampling.Validate();
        if (promptIds.Count == 0) throw new InvalidRequestException("empty prompt: pass at least one token (BOS)");
        if (promptIds.Count >= _cache.ContextLength)
            throw new InvalidRequestException($"prompt of {promptIds.Count} tokens does not fit the context length {_cache.ContextLength} (it needs room for at least one generated token)");
        if (settings.MaxTokens < 0) throw new InvalidRequestException($"max tokens {settings.MaxTokens} must be >= 0");
        foreach (int id in promptIds) CheckToken(id);
        return GenerateCore(promptIds, settings, atStartOfText, cancellationToken);
    }

    private IEnumerable<GeneratedToken> GenerateCore(IReadOnlyList<int> promptIds, GenerationSettings settings, bool atStartOfText, CancellationToken ct)
    {
        var sampler = new Sampler(settings.Sampling, _model.Config.VocabSize);
        var text = new TextStream(_model.Tokenizer, atStartOfText);
        var tail = new System.Text.StringBuilder();
        int maxStop = settings.StopStrings.Count == 0 ? 0 : settings.StopStrings.Max(s => s.Length);

        // Reuse the cached prefix; at least the last prompt token is fed again to get its logits.
        int common = 0;
        while (common < _tokens.Count && common < promptIds.Count - 1 && _tokens[common] == promptIds[common]) common++;
        Rewind(common);
        var sw = Stopwatch.StartNew();
        var rest = new int[promptIds.Count - common];
        for (int i = 0; i < rest.Length; i++) rest[i] = promptIds[common + i];
        Feed(rest);
        double prefill = sw.Elapsed.TotalSeconds;
        sw.Restart();

        int generated = 0;
        var reason = StopReason.MaxTokens;
        bool onDevice = settings.Sampling.IsGreedy && settings.Sampling.RepetitionPenalty == 1f && !settings.ReturnLogits;
        while (generated < settings.MaxTokens)
        {
            if (ct.IsCancellationRequested) { reason = StopReason.Cancelled; break; }
            int next;
            SoftmaxStats stats;
            if (onDevice)
            {
                // Greedy: argmax, entropy and log p on the device; the logits never come back.
                stats = NextTokenStats();
                next = stats.ArgMax;
                stats = stats with { TokenLogProb = stats.Max - stats.LogSumExp };
            }
            else
            {
                var history = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_tokens);
                next = sampler.Sample(_logits, history);
                stats = SoftmaxEntropyCpu.Compute(_logits, 1f, next);
            }
            generated++;
            bool eos = settings.StopAtEos && _model.Tokenizer.IsEos(next);
            string piece = eos ? "" : text.Push(next);
            var token = new GeneratedToken(next, piece, _tokens.Count, stats.TokenLogProb, stats.EntropyBits,
                settings.ReturnLogits ? (float[])_logits.Clone() : null);
            if (eos) { reason = StopReason.Eos; break; }
            bool stop = false;
            if (maxStop > 0)
            {
                tail.Append(piece);
                if (tail.Length > 2 * maxStop) tail.Remove(0, tail.Length - maxStop);
                string recent = tail.ToString();
                foreach (var s in settings.StopStrings) if (s.Length > 0 && recent.Contains(s, StringComparison.Ordinal)) stop = true;
            }
            yield return token;
            if (stop) { reason = StopReason.StopString; break; }
            if (generated >= settings.MaxTokens) break;
            if (_tokens.Count + 1 > _cache.ContextLength) { reason = StopReason.ContextFull; break; }
            if (onDevice) FeedOnDevice([next]); else Feed([next]);
        }
        LastStats = new GenerationStats
        {
            PromptTokens = promptIds.Count, ReusedPromptTokens = common, GeneratedTokens = generated,
            PrefillSeconds = prefill, DecodeSeconds = sw.Elapsed.TotalSeconds, StopReason = reason,
        };
    }

    public void Dispose()
    {
        _state.Dispose();
        _scoreState?.Dispose();
        _cache.Dispose();
    }
}

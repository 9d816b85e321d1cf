using System.Runtime.CompilerServices;
using KernelEngine.Backends;
using KernelEngine.Decoding;
using KernelEngine.Formats;
using KernelEngine.Kernels.SoftmaxEntropy;
using KernelEngine.Models;

namespace KernelEngine;

/// <summary>
/// One conversation with a model: a KV cache, activation buffers, device scratch and the tokens it holds. A new
/// prompt reuses the cached prefix it shares with the tokens already in the cache.
/// <para>One call at a time: a second thread that calls into a session while a call (or a generation being enumerated)
/// is running gets an <see cref="InvalidOperationException"/>; use one session per concurrent request. After
/// <see cref="Dispose"/> (or the model's) every member throws <see cref="ObjectDisposedException"/>.</para>
/// </summary>
public sealed class Session : IDisposable
{
    private readonly Model _model;
    private readonly ModelConfig _config;
    private readonly Transformer _t;
    private readonly IBackend _backend;      // this session's view of the model's backend (own scratch on GPUs)
    private readonly KvCache _cache;
    private readonly RunState _state;
    private readonly List<int> _tokens = new();
    private readonly float[] _logits;       // (vocab) last row read back
    private RunState? _scoreState;           // (batch, vocab) logits, created on first ForwardAll
    private int _busy;                       // 1 while a call or a generation runs
    private int _disposed;                   // 1 once Dispose was called
    private int _released;                   // 1 once the device state is freed
    private GenerationStats? _lastStats;

    internal Session(Model model)
    {
        _model = model;
        _t = model.Transformer;
        _config = model.Config;
        var c = _config;
        _backend = model.Backend.ForSession();
        try
        {
            int batch = Math.Min(model.Options.PrefillBatch, model.ContextLength);
            // Sliding-window layers hold only their window plus one batch (every pass writes at most a batch).
            _cache = new KvCache(_backend, c.Layers, model.ContextLength, c.KvDim, model.Options.ResolvedKvCacheType, c.HeadDim,
                _t.WindowedLayers, _t.AttentionWindow, batch);
            try { _state = new RunState(_backend, c, batch, 1); }
            catch { _cache.Dispose(); throw; }
        }
        catch
        {
            if (!ReferenceEquals(_backend, model.Backend)) _backend.Dispose();
            throw;
        }
        _logits = new float[c.VocabSize];
    }

    /// <summary>The model this session runs.</summary>
    public Model Model => _model;
    /// <summary>Tokens whose keys and values are in the cache.</summary>
    public IReadOnlyList<int> Tokens => Alive()._tokens;
    /// <summary>Tokens in the cache (the next position).</summary>
    public int Position => Alive()._tokens.Count;
    /// <summary>Positions the cache holds.</summary>
    public int ContextLength => Alive()._cache.ContextLength;
    /// <summary>This session's KV cache (tests, diagnostics).</summary>
    internal KvCache Cache => Alive()._cache;
    /// <summary>Most tokens one batched pass takes (<see cref="ModelOptions.PrefillBatch"/>).</summary>
    public int BatchCapacity => Alive()._state.Capacity;
    /// <summary>Counts, timings and stop reason of the last generation that ran on this session (any decoding loop).</summary>
    public GenerationStats? LastStats { get => Alive()._lastStats; internal set => _lastStats = value; }
    internal ModelConfig Config => _config;

    /// <summary>Logits (vocab) after the last token fed by Feed/FeedAll (greedy generation keeps them on the device
    /// unless GenerationSettings.ReturnLogits is set). Valid until the next call.</summary>
    public ReadOnlySpan<float> Logits => Alive()._logits;

    private Session Alive()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0 || Volatile.Read(ref _released) != 0, this);
        return this;
    }

    // ---- one call at a time ---------------------------------------------------------------------------------

    /// <summary>Holds the session (and keeps its model alive) for one call or one whole generation.</summary>
    internal readonly struct Scope(Session session, Model.Lease lease) : IDisposable
    {
        public void Dispose()
        {
            lease.Dispose();
            session?.Exit();
        }
    }

    /// <summary>The managed thread that entered the last call (tests: async calls stay off the caller's context).</summary>
    internal int LastCallThreadId { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal Scope Enter()
    {
        Alive();
        if (Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
            throw new InvalidOperationException("this session is already in use by another call or an unfinished generation; a session runs one call at a time (use one session per concurrent request)");
        try
        {
            Alive();
            LastCallThreadId = Environment.CurrentManagedThreadId;
            return new Scope(this, _model.Acquire());
        }
        catch
        {
            Exit();
            throw;
        }
    }

    private void Exit()
    {
        Volatile.Write(ref _busy, 0);
        // A Dispose that came while this call ran left the freeing to us.
        if (Volatile.Read(ref _disposed) != 0 && Interlocked.CompareExchange(ref _busy, 1, 0) == 0) ReleaseDeviceState();
    }

    // ---- feeding tokens -------------------------------------------------------------------------------------

    /// <summary>Drops cached tokens from <paramref name="position"/> on (speculative rollback, prompt edits).</summary>
    public void Rewind(int position)
    {
        using var scope = Enter();
        RewindCore(position);
    }

    internal void RewindCore(int position)
    {
        if (position < 0 || position > _tokens.Count) throw new ArgumentOutOfRangeException(nameof(position), position, $"position must be in 0..{_tokens.Count}");
        if (!_cache.CanResumeAt(position))
        {
            // The sliding-window layers no longer hold the window before position: run the kept tokens again.
            var kept = _tokens.GetRange(0, position).ToArray();
            _tokens.Clear();
            if (kept.Length > 0) FeedOnDevice(kept);
            return;
        }
        _tokens.RemoveRange(position, _tokens.Count - position);
    }

    /// <summary>
    /// Context shift (llama.cpp's, with <c>--keep</c>): forgets the cached tokens at [keep, keep + discard) and moves
    /// the later ones down, their keys re-rotated to their new positions, so a full context can keep going. The model
    /// no longer sees the dropped tokens; <see cref="Tokens"/> drops them too.
    /// </summary>
    public void ShiftContext(int keep, int discard)
    {
        using var scope = Enter();
        ShiftContextCore(keep, discard);
    }

    internal void ShiftContextCore(int keep, int discard)
    {
        if (keep < 0 || discard < 1 || (long)keep + discard > _tokens.Count)
            throw new InvalidRequestException($"context shift of {discard} tokens after the first {keep} needs 0 <= keep, 1 <= discard and keep + discard <= {_tokens.Count} (the cached tokens)");
        _t.ShiftCache(_cache, keep, discard, _tokens.Count - keep - discard);
        _tokens.RemoveRange(keep, discard);
    }

    /// <summary>Forgets the cached tokens (the next prompt is fed from the start).</summary>
    public void Reset()
    {
        using var scope = Enter();
        _tokens.Clear();
    }

    /// <summary>Feeds tokens in batched passes; afterwards <see cref="Logits"/> holds the next-token logits.</summary>
    public ReadOnlySpan<float> Feed(scoped ReadOnlySpan<int> tokens, CancellationToken cancellationToken = default)
    {
        using var scope = Enter();
        return FeedCore(tokens, cancellationToken);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal ReadOnlySpan<float> FeedCore(scoped ReadOnlySpan<int> tokens, CancellationToken ct = default)
    {
        FeedOnDevice(tokens, ct);
        _backend.Read(_state.Logits, 0, 1, _logits);
        return _logits;
    }

    /// <summary>Feeds tokens; the next-token logits stay on the device (see <see cref="NextTokenStats"/>). Cancellation is
    /// checked between batches and between layers; tokens of a batch that did not finish are not committed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void FeedOnDevice(scoped ReadOnlySpan<int> tokens, CancellationToken ct = default)
    {
        if (tokens.IsEmpty) throw new InvalidRequestException("no tokens to feed");
        CheckFits(tokens.Length);
        foreach (int id in tokens) CheckToken(id);
        for (int i = 0; i < tokens.Length; i += _state.Capacity)
        {
            ct.ThrowIfCancellationRequested();
            var chunk = tokens.Slice(i, Math.Min(_state.Capacity, tokens.Length - i));
            _t.Forward(_state, _cache, chunk, _tokens.Count, allLogits: false, ct: ct);
            foreach (int id in chunk) _tokens.Add(id);
        }
    }

    /// <summary>
    /// A text embedding from its tokens: the model's final-normed hidden states, mean-pooled over the tokens
    /// (<paramref name="meanPooling"/>) or the last token's, scaled to unit length. Starts from an empty cache; afterwards
    /// the cache holds these tokens.
    /// </summary>
    public float[] Embed(ReadOnlySpan<int> tokens, bool meanPooling = true, CancellationToken cancellationToken = default)
    {
        using var scope = Enter();
        if (tokens.IsEmpty) throw new InvalidRequestException("no tokens to embed");
        _tokens.Clear();
        CheckFits(tokens.Length);
        foreach (int id in tokens) CheckToken(id);
        int dim = _config.HiddenSize;
        var sum = new double[dim];
        var rows = new float[_state.Capacity * dim];
        for (int i = 0; i < tokens.Length; i += _state.Capacity)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = tokens.Slice(i, Math.Min(_state.Capacity, tokens.Length - i));
            _t.Forward(_state, _cache, chunk, _tokens.Count, allLogits: false, ct: cancellationToken, hiddenOnly: true);
            _backend.Read(_state.Xb, 0, chunk.Length, rows.AsSpan(0, chunk.Length * dim));
            foreach (int id in chunk) _tokens.Add(id);
            int first = meanPooling ? 0 : chunk.Length - 1;
            if (!meanPooling) Array.Clear(sum);
            for (int r = first; r < chunk.Length; r++)
                for (int d = 0; d < dim; d++) sum[d] += rows[r * dim + d];
        }
        double norm = Math.Sqrt(sum.Sum(x => x * x));
        var e = new float[dim];
        for (int d = 0; d < dim; d++) e[d] = norm > 0 ? (float)(sum[d] / norm) : 0f;
        return e;
    }

    /// <summary>
    /// Softmax-entropy summary of the next-token logits computed where they are (one fused kernel on a GPU): argmax,
    /// log-sum-exp, entropy and log p(token), with no copy of the logits to the host.
    /// </summary>
    public SoftmaxStats NextTokenStats(float temperature = 1f, int token = -1)
    {
        using var scope = Enter();
        return NextTokenStatsCore(temperature, token);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal SoftmaxStats NextTokenStatsCore(float temperature = 1f, int token = -1) => _backend.SoftmaxEntropy(_state.Logits, 0, temperature, token);

    /// <summary>
    /// Feeds tokens and returns the logits of every one of them: row i (vocab) predicts the token after tokens[i].
    /// Runs as batched prefill passes (scoring, speculative verification).
    /// </summary>
    public void FeedAll(ReadOnlySpan<int> tokens, Span<float> logits, CancellationToken cancellationToken = default)
    {
        using var scope = Enter();
        FeedAllCore(tokens, logits, cancellationToken);
    }

    internal void FeedAllCore(ReadOnlySpan<int> tokens, Span<float> logits, CancellationToken ct = default)
    {
        int vocab = _config.VocabSize;
        if (tokens.IsEmpty) throw new InvalidRequestException("no tokens to feed");
        if (logits.Length < (long)tokens.Length * vocab) throw new ArgumentException($"logits needs {tokens.Length} x {vocab} floats", nameof(logits));
        CheckFits(tokens.Length);
        foreach (int id in tokens) CheckToken(id);
        _scoreState ??= new RunState(_backend, _config, _state.Capacity, _state.Capacity);
        for (int i = 0; i < tokens.Length; i += _scoreState.Capacity)
        {
            ct.ThrowIfCancellationRequested();
            var chunk = tokens.Slice(i, Math.Min(_scoreState.Capacity, tokens.Length - i));
            _t.Forward(_scoreState, _cache, chunk, _tokens.Count, allLogits: true, ct: ct);
            _backend.Read(_scoreState.Logits, 0, chunk.Length, logits.Slice(i * vocab, chunk.Length * vocab));
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
        using var scope = Enter();
        FeedBranchesCore(tokens, branchLength, logits);
    }

    internal void FeedBranchesCore(ReadOnlySpan<int> tokens, int branchLength, Span<float> logits)
    {
        int vocab = _config.VocabSize;
        if (logits.Length < (long)tokens.Length * vocab) throw new ArgumentException($"logits needs {tokens.Length} x {vocab} floats", nameof(logits));
        var onDevice = FeedBranchesOnDevice(tokens, branchLength);
        _backend.Read(onDevice, 0, tokens.Length, logits[..(tokens.Length * vocab)]);
    }

    /// <summary><see cref="FeedBranchesCore"/> without the read-back: row r of the returned device tensor holds row r's
    /// logits (valid until the next pass), for verification on the device.</summary>
    internal DeviceTensor FeedBranchesOnDevice(ReadOnlySpan<int> tokens, int branchLength)
    {
        if (branchLength <= 0 || tokens.IsEmpty || tokens.Length % branchLength != 0) throw new ArgumentException("tokens must be whole branches", nameof(tokens));
        _scoreState ??= new RunState(_backend, _config, _state.Capacity, _state.Capacity);
        if (tokens.Length > _scoreState.Capacity) throw new InvalidRequestException($"{tokens.Length} draft tokens exceed the batch of {_scoreState.Capacity}");
        CheckFits(tokens.Length);
        foreach (int id in tokens) CheckToken(id);
        _t.Forward(_scoreState, _cache, tokens, _tokens.Count, allLogits: true, branch: branchLength);
        return _scoreState.Logits;
    }

    /// <summary>The backend this session's tensors live on.</summary>
    internal IBackend Backend => Alive()._backend;

    /// <summary>Commits the first tokens of branch b fed by <see cref="FeedBranches"/> (moving its keys and values into place).</summary>
    public void CommitBranch(int branch, int branchLength, ReadOnlySpan<int> tokens)
    {
        using var scope = Enter();
        CommitBranchCore(branch, branchLength, tokens);
    }

    internal void CommitBranchCore(int branch, int branchLength, ReadOnlySpan<int> tokens)
    {
        int start = _tokens.Count;
        if (tokens.Length > branchLength) throw new ArgumentException("more tokens than the branch holds", nameof(tokens));
        if (branch < 0 || (long)start + (long)(branch + 1) * branchLength > _cache.ContextLength)
            throw new ArgumentOutOfRangeException(nameof(branch), branch, "the branch is not in the cache");
        foreach (int id in tokens) CheckToken(id);
        if (branch > 0 && tokens.Length > 0) _backend.CopyKv(_cache, start + branch * branchLength, start, tokens.Length);
        foreach (int id in tokens) _tokens.Add(id);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void CheckFits(int count)
    {
        if ((long)_tokens.Count + count > _cache.ContextLength)
            throw new InvalidRequestException($"{_tokens.Count + (long)count} tokens exceed the context length {_cache.ContextLength}");
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void CheckToken(int id)
    {
        if ((uint)id >= (uint)_config.VocabSize)
            throw new InvalidRequestException($"token id {id} is outside the model's vocabulary (0..{_config.VocabSize - 1})");
    }

    // ---- generation -----------------------------------------------------------------------------------------

    /// <summary>Encodes a prompt as the model expects: BOS (Llama family) + text; an empty prompt is BOS alone.</summary>
    public int[] EncodePrompt(string prompt, bool addBos = true)
    {
        Alive();
        return _model.EncodePrompt(prompt, addBos);
    }

    /// <summary>Streams tokens generated after a text prompt (encoded with <see cref="EncodePrompt"/>).</summary>
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerationSettings? settings = null, CancellationToken cancellationToken = default)
    {
        settings ??= new GenerationSettings();
        return GenerateAsync(EncodePrompt(prompt, settings.AddBos), settings, cancellationToken, atStartOfText: prompt.Length == 0);
    }

    /// <summary>
    /// Streams generated tokens. The forward passes never run on the caller's <see cref="SynchronizationContext"/> (a UI
    /// thread stays free); cancellation throws <see cref="OperationCanceledException"/> within one prefill batch or one
    /// token, and <see cref="LastStats"/> then reports <see cref="StopReason.Cancelled"/>.
    /// </summary>
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> promptIds, GenerationSettings? settings = null,
        CancellationToken cancellationToken = default, bool atStartOfText = false) =>
        Generator.Async(() => Generate(promptIds, settings ?? new GenerationSettings(), atStartOfText, cancellationToken), cancellationToken);

    /// <summary>Synchronous generation (plain sampling or greedy); cancellation ends it with <see cref="StopReason.Cancelled"/>.</summary>
    public IEnumerable<GeneratedToken> Generate(IReadOnlyList<int> promptIds, GenerationSettings settings, bool atStartOfText = false,
        CancellationToken cancellationToken = default)
    {
        Alive();
        return Generator.Run(new SamplingStrategy(this, settings), promptIds, settings, atStartOfText, cancellationToken);
    }

    // ---- lifetime -------------------------------------------------------------------------------------------

    /// <summary>Frees the KV cache and buffers (after the call in flight, if any, returns).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _model.Forget(this);
        if (Interlocked.CompareExchange(ref _busy, 1, 0) == 0) ReleaseDeviceState();
    }

    /// <summary>Frees the device state once (called by Dispose, by the last call after a Dispose, or by the model's Dispose).</summary>
    internal void ReleaseDeviceState()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        _state.Dispose();
        _scoreState?.Dispose();
        _cache.Dispose();
        if (!ReferenceEquals(_backend, _model.BackendUnchecked)) _backend.Dispose();
    }
}

using System.Diagnostics;
using System.Runtime.InteropServices;
using KernelEngine.Backends;
using KernelEngine.Decoding;
using KernelEngine.Kernels.SoftmaxEntropy;
using KernelEngine.Models;

namespace KernelEngine;

/// <summary>
/// Continuous batching: many sequences generated at once on one model, their next tokens computed in one forward pass
/// per step (the weights are read once for the whole batch). Requests are admitted between steps as slots and KV pages
/// free up; long prompts are prefilled a chunk at a time between decode steps. Each sequence owns a KV cache sized in
/// pages to its prompt plus its token budget, freed the step after it ends, is cancelled, or its reader leaves.
/// On the CPU a sequence gets the tokens it would get alone in a <see cref="Session"/> (same seed, same settings):
/// every op of a decode step computes each row as it computes a single token.
/// <code>
/// await using var batch = new BatchedGenerator(model, new() { MaxBatch = 8 });
/// await foreach (var t in batch.GenerateAsync("Once upon a time", settings)) Console.Write(t.Text);
/// </code>
/// Thread-safe: submit from any thread. Stop strings, end tokens and token budgets work as in a session; context shift
/// and speculative loops are session-only (a sequence stops at its context).
/// </summary>
public sealed class BatchedGenerator : IDisposable, IAsyncDisposable
{
    private readonly Model _model;
    private readonly Transformer _t;
    private readonly IBackend _backend;
    private readonly RunState _decode, _prefill;
    private readonly SoftmaxStats[] _stats;   // (MaxBatch) a decode step's greedy rows
    private readonly BatchedGeneratorOptions _o;
    private readonly int _context, _chunk, _pages;
    private readonly object _gate = new();   // guards the queue, the active list and the page count
    private readonly Queue<Sequence> _queue = new();
    private readonly List<Sequence> _active = new();
    private readonly List<FreeCache> _free = new();   // caches of ended sequences, kept for the next ones (not in use)
    private readonly Thread _thread;
    private int _pagesInUse, _pagesFree, _lastBatch;
    private long _sharedPositions;
    private long _steps;
    private long _fullBatchSteps, _fullBatchTicks;   // iterations that decoded a full batch (under _gate)
    private bool _closing, _draining;

    /// <summary>Starts the engine thread of a batched generator on <paramref name="model"/>.</summary>
    public BatchedGenerator(Model model, BatchedGeneratorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _o = options ?? new BatchedGeneratorOptions();
        _o.Validate();
        using var lease = model.Acquire();
        _model = model;
        _t = model.Transformer;
        _context = _o.ContextLength == 0 ? model.ContextLength : Math.Min(_o.ContextLength, model.ContextLength);
        _chunk = Math.Min(_o.PrefillChunk == 0 ? model.Options.PrefillBatch : _o.PrefillChunk, _context);
        int pagesPerSequence = PagesFor(_context);
        _pages = _o.KvPages == 0 ? _o.MaxBatch * pagesPerSequence : _o.KvPages;
        _backend = model.Backend.ForSession();
        try
        {
            _decode = new RunState(_backend, model.Config, _o.MaxBatch, _o.MaxBatch, rowViews: true);
            _stats = new SoftmaxStats[_o.MaxBatch];
            try { _prefill = new RunState(_backend, model.Config, _chunk, 1); }
            catch { _decode.Dispose(); throw; }
        }
        catch
        {
            if (!ReferenceEquals(_backend, model.Backend)) _backend.Dispose();
            throw;
        }
        _thread = new Thread(Run) { IsBackground = true, Name = "ke-batch" };
        _thread.Start();
    }

    /// <summary>The longest a sequence may grow (prompt + generated).</summary>
    public int ContextLength => _context;
    /// <summary>The options it runs with.</summary>
    public BatchedGeneratorOptions Options => _o;

    /// <summary>Sequences, queue and KV pages now.</summary>
    public BatchedGeneratorStats Stats
    {
        get
        {
            lock (_gate)
                return new BatchedGeneratorStats(_active.Count, _queue.Count, _pagesInUse, _pages, Interlocked.Read(ref _steps), _lastBatch, _pagesFree)
                {
                    SharedPrefixPositions = _sharedPositions, KvPagesShared = _active.Sum(s => s.Pages - s.HeldPages),
                    FullBatchSteps = _fullBatchSteps, FullBatchSeconds = (double)_fullBatchTicks / Stopwatch.Frequency,
                };
        }
    }

    /// <summary>Streams tokens generated after a text prompt (encoded as <see cref="Session.EncodePrompt"/> does).</summary>
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(string prompt, GenerationSettings? settings = null, CancellationToken cancellationToken = default)
    {
        settings ??= new GenerationSettings();
        return Submit(_model.EncodePrompt(prompt, settings.AddBos), settings, cancellationToken, atStartOfText: prompt.Length == 0).Tokens;
    }

    /// <summary>Streams tokens generated after <paramref name="promptIds"/>.</summary>
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> promptIds, GenerationSettings? settings = null, CancellationToken cancellationToken = default) =>
        Submit(promptIds, settings, cancellationToken).Tokens;

    /// <summary>
    /// Queues a request; a bad one throws here (<see cref="InvalidRequestException"/>), as does a full queue
    /// (<see cref="QueueFullException"/>). Its tokens start to flow once it holds a slot and its KV pages.
    /// </summary>
    public BatchedRequest Submit(IReadOnlyList<int> promptIds, GenerationSettings? settings = null, CancellationToken cancellationToken = default,
        bool atStartOfText = false)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        settings ??= new GenerationSettings();
        settings.Validate();
        if (promptIds.Count == 0) throw new InvalidRequestException("empty prompt: pass at least one token (BOS)");
        if (promptIds.Count >= _context)
            throw new InvalidRequestException($"prompt of {promptIds.Count} tokens does not fit the context length {_context} (it needs room for at least one generated token)");
        int vocab = _model.Config.VocabSize;
        foreach (int id in promptIds)
            if ((uint)id >= (uint)vocab) throw new InvalidRequestException($"token id {id} is outside the vocabulary (0..{vocab - 1})");
        int length = (int)Math.Min(_context, (long)promptIds.Count + settings.MaxTokens);
        int pages = PagesFor(length);
        if (pages > _pages) throw new InvalidRequestException($"a sequence of {length} positions needs {pages} KV pages of {_o.KvPageSize}; the generator has {_pages}");
        var request = new BatchedRequest(promptIds.Count, cancellationToken);
        var s = new Sequence(request, promptIds.ToArray(), settings, atStartOfText, length, pages, _model);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_closing, this);
            if (_draining) throw new InvalidOperationException("the generator is draining: it takes no new requests");
            // requests beyond the free slots wait; the engine may not have admitted the earlier ones yet
            if (_queue.Count >= _o.MaxQueue + Math.Max(0, _o.MaxBatch - _active.Count))
                throw new QueueFullException($"{_queue.Count} requests are waiting (MaxQueue {_o.MaxQueue}) behind {_active.Count} running; try again later");
            _queue.Enqueue(s);
            Diagnostics.Telemetry.QueueDepth.Add(1);
            Monitor.Pulse(_gate);
        }
        return request;
    }

    /// <summary>Stops taking requests and completes when every queued and running one has ended.</summary>
    public async Task DrainAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate) _draining = true;
        while (true)
        {
            lock (_gate) if (_queue.Count == 0 && _active.Count == 0) return;
            await Task.Delay(10, cancellationToken).ConfigureAwait(false);
        }
    }

    private int PagesFor(int positions) => (positions + _o.KvPageSize - 1) / _o.KvPageSize;

    // ---- the engine thread ----------------------------------------------------------------------------------

    private void Run()
    {
        var batch = new List<Sequence>(_o.MaxBatch);
        var caches = new List<KvCache>(_o.MaxBatch);
        var tokens = new int[_o.MaxBatch];
        var positions = new int[_o.MaxBatch];
        int next = 0;   // round robin over prefilling sequences
        while (true)
        {
            lock (_gate)
            {
                while (true)
                {
                    Admit();
                    if (_active.Count > 0) break;
                    if (_closing) return;
                    Monitor.Wait(_gate);
                }
            }
            long started = Stopwatch.GetTimestamp();
            bool full = false;
            try
            {
                using var lease = _model.Acquire();
                foreach (var s in _active)
                    if (s.Request.Aborted.IsCancellationRequested) End(s, StopReason.Cancelled);
                // Each iteration: one prefill chunk (when some sequence is prefilling) and one decode step for all the others.
                var prefilling = _active.Where(s => !s.Ended && s.Cache != null && s.Fed < s.Prompt.Length).ToList();
                if (prefilling.Count > 0) PrefillChunk(prefilling[next++ % prefilling.Count]);
                batch.Clear(); caches.Clear();
                foreach (var s in _active)
                    if (!s.Ended && s.Pending >= 0) { batch.Add(s); caches.Add(s.Cache!); }
                if (batch.Count > 0) DecodeStep(batch, caches, tokens, positions);
                // a prompt's last chunk joins the decode step of its own iteration: that iteration is not steady state
                full = batch.Count == _o.MaxBatch && prefilling.Count == 0;
            }
            catch (Exception e)
            {
                // The device or the model failed (or the model was disposed): every running sequence ends with the error.
                foreach (var s in _active) if (!s.Ended) Fail(s, e);
            }
            lock (_gate)
            {
                if (full)
                {
                    _fullBatchSteps++;
                    _fullBatchTicks += Stopwatch.GetTimestamp() - started;
                }
                for (int i = _active.Count - 1; i >= 0; i--)
                    if (_active[i].Ended) Release(_active[i], i);
            }
        }
    }

    /// <summary>Moves queued requests into free slots while their pages fit (in order: a large request is not overtaken).
    /// Called under the lock.</summary>
    private void Admit()
    {
        while (_queue.Count > 0)
        {
            var s = _queue.Peek();
            if (s.Request.Aborted.IsCancellationRequested || _closing)
            {
                _queue.Dequeue();
                Diagnostics.Telemetry.QueueDepth.Add(-1);
                s.Request.Finish(s.Stats(StopReason.Cancelled, 0));
                continue;
            }
            if (_active.Count >= _o.MaxBatch) return;
            s.Pages = ClassOf(s.Pages);
            var plan = PlanCache(s);
            // pages mapped from a running sequence's cache are that sequence's: s holds only the rest
            int held = s.Pages - plan.Mapped / _o.KvPageSize;
            if (_pagesInUse + held > _pages) return;
            _queue.Dequeue();
            Diagnostics.Telemetry.QueueDepth.Add(-1);
            try { TakeCache(s, plan); }
            catch (Exception e)
            {
                s.Request.Fail(e);
                continue;
            }
            s.HeldPages = s.Pages - s.Cache!.MappedPositionCount / _o.KvPageSize;
            _pagesInUse += s.HeldPages;
            Diagnostics.Telemetry.KvPagesInUse.Add(s.HeldPages);
            s.Admitted.Start();
            _active.Add(s);
        }
    }

    /// <summary>Caches come in whole powers of two of pages (up to a full context), so that an ended sequence's cache
    /// fits the next request of its class.</summary>
    private int ClassOf(int pages) => Math.Min(Math.Min((int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)pages), PagesFor(_context)), _pages);

    /// <summary>How s gets its cache: a kept one (and the prompt positions it holds already) or a new one, and the
    /// running sequence whose cache holds a longer prefix of s's prompt, how many positions that is, and how many of
    /// them s maps from its pages (the rest is copied).</summary>
    private readonly record struct CachePlan(FreeCache? Kept, int Reuse, Sequence? Donor, int Shared, int Mapped);

    private CachePlan PlanCache(Sequence s)
    {
        var (kept, reuse) = BestKeptCache(s);
        var (donor, shared) = LongestRunningPrefix(s);
        if (donor == null || shared <= reuse) return new CachePlan(kept, reuse, null, 0, 0);
        // every cache of this generator has one shape, so the donor's granule is s's
        int mapped = _o.ShareKvPages ? donor.Cache!.MappablePositions(donor.Cache, shared) : 0;
        return new CachePlan(kept, reuse, donor, shared, mapped > reuse ? mapped : 0);
    }

    /// <summary>
    /// Gives s a cache of its class: a kept one when there is one (the one whose tokens share the longest prefix with
    /// s's prompt, which then is not fed again: prefix reuse across requests), else a new one, after freeing kept
    /// caches for room. When a running sequence already holds a longer prefix of s's prompt, s's cache maps the pages
    /// that hold it (copy-on-write: prefix sharing between requests in flight, no copy and no memory of its own; where
    /// the backend cannot map pages, or for a part smaller than a page, a copy per layer instead of the prefill). Reuse
    /// starts at a multiple of the prefill chunk, so every chunk s prefills is the chunk it would prefill alone (the same
    /// logits). Called under the lock, on the engine thread.
    /// </summary>
    private void TakeCache(Sequence s, CachePlan plan)
    {
        TakeKeptOrNewCache(s, plan.Kept, plan.Reuse);
        if (plan.Donor == null) return;
        try
        {
            int mapped = plan.Mapped > 0 ? s.Cache!.ShareFrom(_backend, plan.Donor.Cache!, plan.Mapped) : 0;
            if (plan.Shared > mapped) _backend.CopyKvPrefix(plan.Donor.Cache!, s.Cache!, plan.Shared, Math.Max(mapped, s.Fed));
        }
        catch
        {
            s.Cache!.Dispose();
            s.Cache = null;
            throw;
        }
        s.Fed = s.Reused = plan.Shared;
        _sharedPositions += plan.Shared;
    }

    /// <summary>The running sequence whose prefilled prompt shares the most whole chunks with s's prompt, and how many
    /// positions that is (0 when none; caches with sliding-window layers are not shared).</summary>
    private (Sequence? Donor, int Positions) LongestRunningPrefix(Sequence s)
    {
        Sequence? donor = null;
        int best = 0;
        foreach (var a in _active)
        {
            if (a.Ended || a.Cache == null || a.Cache.Window != 0) continue;
            // only positions a prefilled as whole chunks of its prompt are computed as s would compute them
            int limit = Math.Min(Math.Min(a.Fed, a.Prompt.Length / _chunk * _chunk), s.Prompt.Length - 1);
            int common = 0;
            while (common < limit && a.Prompt[common] == s.Prompt[common]) common++;
            common -= common % _chunk;
            if (common > best) { donor = a; best = common; }
        }
        return (donor, best);
    }

    /// <summary>The kept cache of s's class whose tokens share the longest prefix with s's prompt, and how many positions
    /// of it s reuses (null, 0: none); among equals one whose memory suits s (<see cref="WantsShareable"/>), and one that does
    /// not only for a prefix it holds. A kept cache
    /// whose positions running sequences map is taken only by a request that keeps them (reuses at least as many), as s
    /// writes from there on.</summary>
    private (FreeCache? Cache, int Reuse) BestKeptCache(Sequence s)
    {
        FreeCache? best = null;
        int bestReuse = -1;
        bool bestSuits = false, shareable = WantsShareable(s);
        foreach (var f in _free)
        {
            if (f.Pages != s.Pages) continue;
            int common = 0, limit = Math.Min(f.Tokens.Length, s.Prompt.Length - 1);
            while (common < limit && f.Tokens[common] == s.Prompt[common]) common++;
            common -= common % _chunk;
            if (!f.Cache.CanResumeAt(common)) common = 0;
            if (common < f.Cache.PinnedPositions) continue;
            // one of the other memory is taken only for a prefix it holds (else a new cache of the right memory)
            bool suits = (f.Cache.MapGranule > 0) == shareable;
            if (!suits && common == 0) continue;
            if (common > bestReuse || common == bestReuse && suits && !bestSuits) { best = f; bestReuse = common; bestSuits = suits; }
        }
        return (best, Math.Max(0, bestReuse));
    }

    /// <summary>Whether s's cache should be one whose pages others can map: only a prompt of at least one whole prefill chunk
    /// can lend a prefix or map one (<see cref="LongestRunningPrefix"/>), and such memory (a memory file) gets no
    /// transparent huge pages where the host keeps them off shared memory (shmem_enabled "never", a common default), which
    /// made decode attention ~30 % slower there (README: "Batched decoding"). Other caches take huge pages.</summary>
    private bool WantsShareable(Sequence s) => _o.ShareKvPages && s.Prompt.Length >= _chunk;

    private void TakeKeptOrNewCache(Sequence s, FreeCache? kept, int reuse)
    {
        if (kept != null)
        {
            _free.Remove(kept);
            _pagesFree -= kept.Pages;
            s.Cache = kept.Cache;
            s.Fed = s.Reused = reuse;
            return;
        }
        // a new cache: kept ones go first while everything would not fit the page budget (not those running sequences map)
        while (_pagesInUse + _pagesFree + s.Pages > _pages && _free.Where(f => f.Cache.PinnedPositions == 0).MaxBy(f => f.Pages) is { } victim)
        {
            _free.Remove(victim);
            _pagesFree -= victim.Pages;
            victim.Cache.Dispose();
        }
        var c = _model.Config;
        s.Cache = new KvCache(_backend, c.Layers, Math.Min(s.Pages * _o.KvPageSize, _context), c.KvDim, _model.Options.ResolvedKvCacheType, c.HeadDim,
            _t.WindowedLayers, _t.AttentionWindow, _chunk, shareable: WantsShareable(s));
    }

    /// <summary>Ends s's hold on its slot and pages; its cache is kept for the next request (dropped when s failed: its
    /// content is unknown). Called under the lock.</summary>
    private void Release(Sequence s, int index)
    {
        _active.RemoveAt(index);
        if (s.Cache != null)
        {
            if (s.Failed || _closing) s.Cache.Dispose();
            else
            {
                // Only whole prefill chunks of the prompt can be reused: a position written by a decode step, or in a
                // partial chunk, was computed along another path than a fresh prefill computes it. A cache that mapped
                // another's pages gives them back (unpinning them) and keeps no prefix.
                int reusable = Math.Min(s.Fed, s.Prompt.Length / _chunk * _chunk);
                if (s.Cache.MappedPositions > 0)
                {
                    s.Cache.Unshare(_backend);
                    reusable = 0;
                }
                _free.Add(new FreeCache(s.Cache, s.Pages, s.Prompt.AsSpan(0, reusable).ToArray()));
                _pagesFree += s.Pages;
            }
        }
        s.Cache = null;
        _pagesInUse -= s.HeldPages;
        Diagnostics.Telemetry.KvPagesInUse.Add(-s.HeldPages);
        s.HeldPages = 0;
    }

    /// <summary>An ended sequence's cache and the tokens it holds.</summary>
    private sealed record FreeCache(KvCache Cache, int Pages, int[] Tokens);

    private void PrefillChunk(Sequence s)
    {
        int n = Math.Min(_chunk, s.Prompt.Length - s.Fed);
        try { _t.Forward(_prefill, s.Cache!, s.Prompt.AsSpan(s.Fed, n), s.Fed, allLogits: false, ct: s.Request.Aborted); }
        catch (OperationCanceledException) { End(s, StopReason.Cancelled); return; }
        s.Fed += n;
        Interlocked.Increment(ref _steps);
        if (s.Fed < s.Prompt.Length) return;
        s.PrefillSeconds = s.Admitted.Elapsed.TotalSeconds;
        s.Admitted.Restart();
        if (s.Settings.MaxTokens == 0) { End(s, StopReason.MaxTokens); return; }
        Choose(s, _prefill.Logits, 0);
    }

    private void DecodeStep(List<Sequence> batch, List<KvCache> caches, int[] tokens, int[] positions)
    {
        int n = batch.Count;
        for (int r = 0; r < n; r++) { tokens[r] = batch[r].Pending; positions[r] = batch[r].Fed; }
        _t.ForwardDecode(_decode, tokens.AsSpan(0, n), positions.AsSpan(0, n), caches);
        Interlocked.Increment(ref _steps);
        _lastBatch = n;
        Diagnostics.Telemetry.BatchSize.Record(n);
        // greedy rows' softmax-entropy for the whole batch in one launch (the CPU runs the rows in parallel)
        int onDevice = 0;
        for (int r = 0; r < n; r++) if (batch[r].Chooser.OnDevice) onDevice++;
        var stats = _stats.AsSpan(0, onDevice > 1 ? n : 0);
        if (onDevice > 1) _backend.SoftmaxEntropyRows(_decode.Logits, 1f, stats);
        for (int r = 0; r < n; r++)
        {
            batch[r].Fed++;
            batch[r].Pending = -1;
            Choose(batch[r], _decode.Logits, r, onDevice > 1 ? stats[r] : null);
        }
    }

    /// <summary>Picks sequence s's next token from row <paramref name="row"/> of the logits, as a session's plain sampling
    /// does (greedy without penalty on the device), and emits it or ends the sequence.</summary>
    private void Choose(Sequence s, DeviceTensor logits, int row, SoftmaxStats? computed = null)
    {
        StepToken t;
        if (s.Chooser.OnDevice) t = TokenChooser.FromDevice(computed ?? _backend.SoftmaxEntropy(logits, row, 1f, -1));
        else
        {
            _backend.Read(logits, row, 1, s.Logits);
            int tokensLeft = Math.Min(s.Settings.MaxTokens - s.Emitter.Generated, s.Length + 1 - s.Committed.Count);
            try { t = s.Chooser.Choose(s.Logits, CollectionsMarshal.AsSpan(s.Committed), tokensLeft); }
            catch (InvalidRequestException e) { Fail(s, e); return; }   // a grammar the vocabulary cannot continue
        }
        GeneratedToken? emitted;
        StopReason? stop;
        try { s.Emitter.Accept(t, s.Committed.Count, out emitted, out stop); }
        catch (ModelOutputException e) { Fail(s, e); return; }
        s.Committed.Add(t.Id);
        if (emitted != null)
        {
            if (s.FirstTokenSeconds < 0) s.FirstTokenSeconds = s.PrefillSeconds + s.Admitted.Elapsed.TotalSeconds;
            s.Request.Emit(emitted);
        }
        if (stop is { } reason) End(s, reason);
        else if (s.Emitter.Generated >= s.Settings.MaxTokens) End(s, StopReason.MaxTokens);
        else if (s.Committed.Count > s.Length) End(s, StopReason.ContextFull);
        else s.Pending = t.Id;
    }

    private static void End(Sequence s, StopReason reason)
    {
        if (s.Ended) return;
        s.Ended = true;
        var stats = s.Stats(reason, s.Admitted.Elapsed.TotalSeconds);
        Diagnostics.Telemetry.Record(stats, s.FirstTokenSeconds);
        s.Request.Finish(stats);
    }

    private static void Fail(Sequence s, Exception e)
    {
        if (s.Ended) return;
        s.Ended = true;
        s.Failed = true;
        s.Request.Fail(e);
    }

    // ---- lifetime -------------------------------------------------------------------------------------------

    /// <summary>Cancels what is queued or running, stops the engine thread and frees the caches and buffers.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_closing) return;
            _closing = true;
            foreach (var s in _active) s.Request.Cancel();
            Monitor.PulseAll(_gate);
        }
        _thread.Join();
        lock (_gate)
        {
            Admit();   // finishes the queued ones as cancelled
            for (int i = _active.Count - 1; i >= 0; i--)
            {
                End(_active[i], StopReason.Cancelled);
                Release(_active[i], i);
            }
        }
        foreach (var f in _free) f.Cache.Dispose();
        _free.Clear();
        _pagesFree = 0;
        _decode.Dispose();
        _prefill.Dispose();
        if (!ReferenceEquals(_backend, _model.BackendUnchecked)) _backend.Dispose();
    }

    /// <summary>As <see cref="Dispose"/>, off the caller's thread.</summary>
    public ValueTask DisposeAsync() => new(Task.Run(Dispose));

    /// <summary>One request's state on the engine thread.</summary>
    private sealed class Sequence(BatchedRequest request, int[] prompt, GenerationSettings settings, bool atStartOfText, int length, int pages, Model model)
    {
        public readonly BatchedRequest Request = request;
        public readonly int[] Prompt = prompt;
        public readonly GenerationSettings Settings = settings;
        public readonly int Length = length;          // positions it may use (prompt + budget, at most the context)
        public int Pages = pages;                     // needed at submit; the cache class once admitted
        public int HeldPages;                         // pages of the budget it holds: its class less the pages it maps
        public readonly List<int> Committed = new(prompt);
        public readonly TokenEmitter Emitter = new(model.Tokenizer, settings, atStartOfText);
        public readonly TokenChooser Chooser = new(settings, model.Tokenizer, model.Config.VocabSize);
        /// <summary>The row of logits sampling reads (host side; allocated once, for sampled sequences only).</summary>
        public float[] Logits => _logits ??= new float[_vocab];
        private float[]? _logits;
        private readonly int _vocab = model.Config.VocabSize;
        public readonly Stopwatch Admitted = new();   // prefill time, then decode time
        public KvCache? Cache;
        public int Fed;                 // positions in the cache
        public int Pending = -1;        // the token to feed next (decoding), or -1
        public bool Ended, Failed;
        public int Reused;              // prompt tokens found in a kept cache or copied from a running sequence
        public double PrefillSeconds, FirstTokenSeconds = -1;

        public GenerationStats Stats(StopReason reason, double decodeSeconds) => new()
        {
            PromptTokens = Prompt.Length, ReusedPromptTokens = Reused, GeneratedTokens = Emitter.Generated, PrefillSeconds = PrefillSeconds,
            DecodeSeconds = Fed >= Prompt.Length ? decodeSeconds : 0, StopReason = reason,
        };
    }
}

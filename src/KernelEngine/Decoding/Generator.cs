using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using KernelEngine.Text;

namespace KernelEngine.Decoding;

/// <summary>
/// The one generation loop. A strategy proposes tokens; the generator emits them and decides when to stop, the same
/// way for every loop: end tokens (not emitted, counted), stop strings across token boundaries (kept in the text), the
/// context limit, the token budget and cancellation; it streams the text and writes <see cref="Session.LastStats"/>.
/// </summary>
internal static class Generator
{
    /// <summary>Validates eagerly (a bad request throws at the call), then returns the lazy token stream.</summary>
    public static IEnumerable<GeneratedToken> Run(IDecodingStrategy strategy, IReadOnlyList<int> promptIds, GenerationSettings settings,
        bool atStartOfText, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        strategy.Validate(settings);
        if (promptIds.Count == 0) throw new InvalidRequestException("empty prompt: pass at least one token (BOS)");
        if (promptIds.Count >= strategy.ContextLength)
            throw new InvalidRequestException($"prompt of {promptIds.Count} tokens does not fit the context length {strategy.ContextLength} (it needs room for at least one generated token)");
        foreach (int id in promptIds) strategy.Primary.CheckToken(id);
        return RunCore(strategy, promptIds.ToArray(), settings, atStartOfText, ct);
    }

    private static IEnumerable<GeneratedToken> RunCore(IDecodingStrategy strategy, int[] prompt, GenerationSettings settings, bool atStartOfText, CancellationToken ct)
    {
        var scopes = new List<Session.Scope>();
        try
        {
            foreach (var s in strategy.Sessions) scopes.Add(s.Enter());
        }
        catch
        {
            foreach (var sc in scopes) sc.Dispose();
            throw;
        }
        var emitter = new TokenEmitter(strategy.Primary.Model.Tokenizer, settings, atStartOfText);
        var committed = new List<int>(prompt.Length + Math.Min(settings.MaxTokens, strategy.ContextLength) + 1);
        committed.AddRange(prompt);
        var step = new List<StepToken>();
        int generated = 0, reused = 0;
        var reason = StopReason.MaxTokens;
        bool finished = false;
        double prefillSeconds = 0, firstToken = -1;
        bool prefilled = false;
        var sw = Stopwatch.StartNew();
        var span = Diagnostics.Telemetry.StartDetached("ke.generate");
        span?.SetTag("ke.prompt_tokens", prompt.Length);
        try
        {
            bool cancelled = false;
            var prefillSpan = Diagnostics.Telemetry.StartDetached("ke.prefill", span);
            try { reused = strategy.Prefill(prompt, ct); }
            catch (OperationCanceledException) { cancelled = true; }
            finally
            {
                prefillSpan?.SetTag("ke.reused_tokens", reused);
                prefillSpan?.Stop();
            }
            if (cancelled)
            {
                reason = StopReason.Cancelled;
                finished = true;
                yield break;
            }
            prefillSeconds = sw.Elapsed.TotalSeconds;
            prefilled = true;
            sw.Restart();
            while (generated < settings.MaxTokens)
            {
                if (ct.IsCancellationRequested) { reason = StopReason.Cancelled; break; }
                int room = strategy.ContextLength + 1 - committed.Count;
                if (room <= 0 && settings.ContextShift && TryShift(strategy, committed, settings.KeepTokens)) room = strategy.ContextLength + 1 - committed.Count;
                if (room <= 0) { reason = StopReason.ContextFull; break; }
                step.Clear();
                int maxNew = Math.Min(settings.MaxTokens - generated, room);
                try { strategy.Step(committed, maxNew, step, ct); }
                catch (OperationCanceledException) { cancelled = true; }
                if (cancelled) { reason = StopReason.Cancelled; break; }
                if (step.Count == 0 || step.Count > maxNew) throw new InvalidOperationException($"decoding strategy returned {step.Count} tokens (1..{maxNew} expected)");
                bool stop = false;
                foreach (var t in step)
                {
                    emitter.Accept(t, committed.Count, out var emitted, out var stopReason);
                    committed.Add(t.Id);
                    generated++;
                    if (emitted != null)
                    {
                        if (firstToken < 0) firstToken = prefillSeconds + sw.Elapsed.TotalSeconds;
                        yield return emitted;
                    }
                    if (stopReason is { } r) { reason = r; stop = true; break; }
                }
                if (stop) break;
            }
            finished = true;
        }
        finally
        {
            foreach (var sc in scopes) sc.Dispose();
            var stats = new GenerationStats
            {
                PromptTokens = prompt.Length, ReusedPromptTokens = reused, GeneratedTokens = generated,
                PrefillSeconds = prefillSeconds, DecodeSeconds = prefilled ? sw.Elapsed.TotalSeconds : 0,
                StopReason = finished ? reason : StopReason.Cancelled, Loop = strategy.LoopStats,
            };
            strategy.Primary.LastStats = stats;
            Diagnostics.Telemetry.Record(stats, firstToken);
            span?.SetTag("ke.generated_tokens", generated);
            span?.SetTag("ke.stop_reason", stats.StopReason.ToString());
            span?.Stop();
        }
    }

    /// <summary>Context shift at a full context: keeps the first keep tokens (at most all but two of the cache), drops
    /// half of the rest, oldest first, from the caches and from the committed list.</summary>
    private static bool TryShift(IDecodingStrategy strategy, List<int> committed, int keepTokens)
    {
        int cached = strategy.ContextLength;              // full: committed = cached tokens + the one not yet fed
        int keep = Math.Min(keepTokens, cached - 2);
        int discard = (cached - keep) / 2;
        if (discard < 1 || !strategy.ShiftContext(keep, discard)) return false;
        committed.RemoveRange(keep, discard);
        return true;
    }

    /// <summary>
    /// The async form of a synchronous generation: each step runs off the caller's synchronization context (on the
    /// thread pool when there is one to leave), and a cancelled generation ends in <see cref="OperationCanceledException"/>.
    /// </summary>
    public static async IAsyncEnumerable<T> Async<T>(Func<IEnumerable<T>> start, [EnumeratorCancellation] CancellationToken ct = default)
    {
        IEnumerator<T>? e = null;
        try
        {
            while (true)
            {
                bool has;
                if (SynchronizationContext.Current == null && TaskScheduler.Current == TaskScheduler.Default)
                {
                    e ??= start().GetEnumerator();
                    has = e.MoveNext();
                }
                else
                {
                    has = await Task.Run(() => (e ??= start().GetEnumerator()).MoveNext(), CancellationToken.None).ConfigureAwait(false);
                }
                if (!has) break;
                yield return e!.Current;
            }
            ct.ThrowIfCancellationRequested();
        }
        finally
        {
            e?.Dispose();
        }
    }
}

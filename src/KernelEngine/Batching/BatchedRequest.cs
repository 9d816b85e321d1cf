using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace KernelEngine;

/// <summary>One request submitted to a <see cref="BatchedGenerator"/>: its token stream and, when it ends, its stats.</summary>
public sealed class BatchedRequest
{
    private readonly Channel<GeneratedToken> _tokens;
    private readonly TaskCompletionSource<GenerationStats> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _abort;

    internal BatchedRequest(int promptTokens, CancellationToken ct)
    {
        PromptTokens = promptTokens;
        _tokens = Channel.CreateUnbounded<GeneratedToken>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        _abort = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Aborted = _abort.Token;
    }

    /// <summary>Prompt tokens of the request.</summary>
    public int PromptTokens { get; }

    /// <summary>Completes with the generation's stats when it ends (also when cancelled: <see cref="StopReason.Cancelled"/>);
    /// faults when the model failed.</summary>
    public Task<GenerationStats> Completion => _done.Task;

    /// <summary>The generated tokens as they come. Leaving the enumeration early (a client that disconnects) ends the
    /// sequence and frees its KV pages at the next step; cancellation throws <see cref="OperationCanceledException"/>.</summary>
    public IAsyncEnumerable<GeneratedToken> Tokens => Read(CancellationToken.None);

    /// <summary>Ends the sequence (its pages are freed at the next step).</summary>
    public void Cancel()
    {
        try { _abort.Cancel(); } catch (ObjectDisposedException) { }   // already finished
    }

    /// <summary>Cancelled by the caller's token, by <see cref="Cancel"/> or by a reader that left.</summary>
    internal CancellationToken Aborted { get; }

    internal void Emit(GeneratedToken t) => _tokens.Writer.TryWrite(t);

    internal void Finish(GenerationStats stats)
    {
        _tokens.Writer.TryComplete(stats.StopReason == StopReason.Cancelled ? new OperationCanceledException("the request was cancelled") : null);
        _done.TrySetResult(stats);
        _abort.Dispose();
    }

    internal void Fail(Exception e)
    {
        _tokens.Writer.TryComplete(e);
        _done.TrySetException(e);
        _abort.Dispose();
    }

    private async IAsyncEnumerable<GeneratedToken> Read([EnumeratorCancellation] CancellationToken ct)
    {
        bool completed = false;
        try
        {
            await foreach (var t in _tokens.Reader.ReadAllAsync(ct).ConfigureAwait(false)) yield return t;
            completed = true;
        }
        finally
        {
            if (!completed && !_done.Task.IsCompleted) Cancel();
        }
    }
}

namespace KernelEngine;

/// <summary>How a <see cref="BatchedGenerator"/> schedules its sequences and sizes their KV caches.</summary>
public sealed record BatchedGeneratorOptions
{
    /// <summary>Sequences decoded together in one forward pass (1 to 16).</summary>
    public int MaxBatch { get; init; } = 8;
    /// <summary>Requests that may wait for a slot; one more is refused with <see cref="QueueFullException"/>.</summary>
    public int MaxQueue { get; init; } = 64;
    /// <summary>The longest a sequence may grow (prompt + generated); 0: the model's context length.</summary>
    public int ContextLength { get; init; }
    /// <summary>Positions per KV page: a sequence's cache holds whole pages, as many as its prompt plus its token budget
    /// need rounded up to a power of two; an ended sequence's cache is kept for the next request of its size (which
    /// reuses its prompt prefix where they share one).</summary>
    public int KvPageSize { get; init; } = 256;
    /// <summary>KV pages in all; a request waits in the queue until its pages are free. 0: enough for
    /// <see cref="MaxBatch"/> sequences of the full context.</summary>
    public int KvPages { get; init; }
    /// <summary>Prompt tokens per prefill pass; a long prompt is split into passes that alternate with decode steps, so
    /// one long prefill does not stall the other sequences. 0: the model's <see cref="ModelOptions.PrefillBatch"/>
    /// (which keeps a sequence's logits identical to a session's).</summary>
    public int PrefillChunk { get; init; }

    /// <summary>Whether a request whose prompt starts with what a running sequence holds maps that sequence's KV pages
    /// (copy-on-write, no memory of its own for them; where the backend can: the CPU on Linux) rather than copying them.
    /// Either way it gets the tokens it gets alone.</summary>
    public bool ShareKvPages { get; init; } = true;

    internal void Validate()
    {
        if (MaxBatch is < 1 or > Kernels.MatMul.MatVecCpu.MaxRows) throw new InvalidRequestException($"MaxBatch {MaxBatch} must be 1..{Kernels.MatMul.MatVecCpu.MaxRows}");
        if (MaxQueue < 0) throw new InvalidRequestException($"MaxQueue {MaxQueue} must be >= 0");
        if (ContextLength < 0) throw new InvalidRequestException($"ContextLength {ContextLength} must be >= 0");
        if (KvPageSize < 1) throw new InvalidRequestException($"KvPageSize {KvPageSize} must be >= 1");
        if (KvPages < 0) throw new InvalidRequestException($"KvPages {KvPages} must be >= 0");
        if (PrefillChunk < 0) throw new InvalidRequestException($"PrefillChunk {PrefillChunk} must be >= 0");
    }
}

/// <summary>A <see cref="BatchedGenerator"/>'s state at one moment.</summary>
/// <param name="Active">sequences holding a slot (prefilling or decoding)</param>
/// <param name="Queued">requests waiting for a slot or for KV pages</param>
/// <param name="KvPagesInUse">pages held by active sequences</param>
/// <param name="KvPages">pages in all</param>
/// <param name="Steps">forward passes run (prefill chunks and decode steps)</param>
/// <param name="LastBatchSize">sequences in the last decode step</param>
/// <param name="KvPagesCached">pages of ended sequences' caches kept for the next requests (and their prompt prefixes);
/// freed when a new cache needs the room</param>
public sealed record BatchedGeneratorStats(int Active, int Queued, int KvPagesInUse, int KvPages, long Steps, int LastBatchSize, int KvPagesCached)
{
    /// <summary>Prompt positions taken from running sequences' caches instead of prefilled (mapped or copied; since the
    /// generator started).</summary>
    public long SharedPrefixPositions { get; init; }
    /// <summary>Pages active sequences map from other sequences' caches now (copy-on-write prefix sharing): KV memory
    /// they use without holding it, not counted in <see cref="KvPagesInUse"/>.</summary>
    public int KvPagesShared { get; init; }
    /// <summary>Iterations that decoded a full batch (<see cref="BatchedGeneratorOptions.MaxBatch"/> sequences) and prefilled
    /// nothing, since the generator started: the steady state of batched decoding.</summary>
    public long FullBatchSteps { get; init; }
    /// <summary>Wall time of those iterations (sampling and bookkeeping included): MaxBatch · <see cref="FullBatchSteps"/> /
    /// FullBatchSeconds is the aggregate decode tok/s of a full batch (llama-batched-bench's S_TG).</summary>
    public double FullBatchSeconds { get; init; }
}

using KernelEngine.Backends;
using KernelEngine.Formats;

namespace KernelEngine.Models;

/// <summary>
/// Activation buffers of one session (llama2.c's RunState), sized for a batch of up to <see cref="Capacity"/>
/// tokens so prefill runs as matrix-matrix products. Allocated once; nothing is allocated per token.
/// </summary>
internal sealed class RunState : IDisposable
{
    /// <param name="rowViews">also make one view per row of q, k, v and the attention output (<see cref="Rows"/>):
    /// batched decoding, where each row belongs to another sequence</param>
    public RunState(IBackend b, ModelConfig c, int capacity, int logitRows, bool rowViews = false)
    {
        Capacity = capacity;
        Backend = b;
        int d = c.HiddenSize, qd = c.QDim;
        long floats = checked((long)capacity * (2L * d + 2L * qd + 2L * c.KvDim + 2L * c.IntermediateSize) + (long)logitRows * c.VocabSize);
        MemoryBudget.Check(b.Device, MemoryBudget.Bytes(floats, 4), $"activation buffers for a batch of {capacity} tokens (logits for {logitRows})",
            "lower ModelOptions.PrefillBatch");
        var all = new List<DeviceTensor>();
        DeviceTensor A(int rows, int cols) { var t = b.Allocate(rows, cols); all.Add(t); return t; }
        try
        {
            X = A(capacity, d); Xb = A(capacity, d); Q = A(capacity, qd); K = A(capacity, c.KvDim); V = A(capacity, c.KvDim);
            Att = A(capacity, qd); Gate = A(capacity, c.IntermediateSize); Up = A(capacity, c.IntermediateSize);
            Logits = A(logitRows, c.VocabSize);
            if (rowViews)
            {
                _rows = new SequenceRow[capacity];
                for (int r = 0; r < capacity; r++)
                    _rows[r] = new SequenceRow(b.RowView(Q, r, 1), b.RowView(K, r, 1), b.RowView(V, r, 1), b.RowView(Att, r, 1));
            }
        }
        catch
        {
            foreach (var t in all) t.Dispose();
            throw;
        }
        _all = all;
        Positions = new int[capacity];
    }

    private readonly List<DeviceTensor> _all;
    private readonly SequenceRow[]? _rows;

    /// <summary>Each row's q, k, v and attention output as tensors of one row (made when the state was created with row views).</summary>
    public IReadOnlyList<SequenceRow> Rows => _rows ?? throw new InvalidOperationException("this run state has no row views");
    public int Capacity { get; }
    /// <summary>The session's backend: every op of a forward pass over this state is issued through it.</summary>
    public IBackend Backend { get; }
    public DeviceTensor X { get; }       // (capacity, dim) residual stream
    public DeviceTensor Xb { get; }      // (capacity, dim) normed input / block output
    public DeviceTensor Q { get; }       // (capacity, heads * headDim)
    public DeviceTensor K { get; }       // (capacity, kvHeads * headDim)
    public DeviceTensor V { get; }       // (capacity, kvHeads * headDim)
    public DeviceTensor Att { get; }     // (capacity, heads * headDim) attention output
    public DeviceTensor Gate { get; }    // (capacity, hidden)
    public DeviceTensor Up { get; }      // (capacity, hidden)
    public DeviceTensor Logits { get; }  // (logitRows, vocab)
    public int[] Positions { get; }      // (capacity)

    public void Dispose()
    {
        foreach (var t in _all) t.Dispose();
    }
}

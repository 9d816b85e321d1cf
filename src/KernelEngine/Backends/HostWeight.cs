using KernelEngine.Kernels;

namespace KernelEngine.Backends;

/// <summary>
/// A weight as it sits in host memory before upload: a pointer into a memory-mapped file (zero copy) or into
/// an array owned by this object (for weights the loader had to re-lay, e.g. GPT-2's transposed Conv1D).
/// </summary>
internal sealed unsafe class HostWeight
{
    private readonly byte[]? _owned;

    public HostWeight(string name, int rows, int cols, WeightType type, byte* data)
    {
        Name = name; Rows = rows; Cols = cols; Type = type; Data = data;
    }

    public HostWeight(string name, int rows, int cols, WeightType type, byte[] owned)
    {
        if (owned.Length != rows * type.RowBytes(cols)) throw new ArgumentException($"{name}: {owned.Length} bytes for ({rows}, {cols}) {type}");
        _owned = GC.AllocateUninitializedArray<byte>(owned.Length, pinned: true);
        owned.CopyTo(_owned, 0);
        Name = name; Rows = rows; Cols = cols; Type = type;
        fixed (byte* p = _owned) Data = p; // pinned array: the address is stable for its lifetime
    }

    public static HostWeight FromFloats(string name, float[] values, int rows, int cols)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return new HostWeight(name, rows, cols, WeightType.F32, bytes);
    }

    /// <summary>Rows [row, row + rows) as a weight of its own (a part of a fused tensor, e.g. q of qkv_proj): the same
    /// bytes in the same type, so a quantized tensor stays quantized; zero copy when the data is file-mapped.</summary>
    public HostWeight RowRange(string name, int row, int rows)
    {
        if (row < 0 || rows <= 0 || row + rows > Rows) throw new ArgumentOutOfRangeException(nameof(rows), $"{Name}: rows {row}..{row + rows} of {Rows}");
        long rowBytes = Type.RowBytes(Cols);
        return _owned == null
            ? new HostWeight(name, rows, Cols, Type, Data + row * rowBytes) { GatherOnly = GatherOnly }
            : new HostWeight(name, rows, Cols, Type, Span.Slice(checked((int)(row * rowBytes)), checked((int)(rows * rowBytes))).ToArray());
    }

    public string Name { get; }
    public int Rows { get; }
    public int Cols { get; }
    public WeightType Type { get; }
    public byte* Data { get; }
    public long Bytes => Rows * Type.RowBytes(Cols);
    public ReadOnlySpan<byte> Span => new(Data, checked((int)Bytes));
    /// <summary>Only rows are gathered from this table (an embedding not tied to the LM head): a backend may read it where
    /// it is instead of copying or repacking it for matrix products.</summary>
    public bool GatherOnly { get; internal set; }
    /// <summary>True when <see cref="Data"/> points into a memory-mapped file (not an array this object owns).</summary>
    public bool IsFileMapped => _owned == null;
}

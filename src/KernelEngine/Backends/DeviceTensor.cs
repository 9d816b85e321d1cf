using KernelEngine.Kernels;

namespace KernelEngine.Backends;

/// <summary>An activation buffer on a backend: (Rows, Cols) row-major, F32 (KV caches: F32, F16 or a block format).</summary>
internal abstract class DeviceTensor : IDisposable
{
    protected DeviceTensor(int rows, int cols, WeightType type) { Rows = rows; Cols = cols; Type = type; }
    public int Rows { get; }
    public int Cols { get; }
    /// <summary>Element type (everything but a KV cache is F32).</summary>
    public WeightType Type { get; }
    public bool IsF16 => Type == WeightType.F16;
    /// <summary>Bytes of one row.</summary>
    public long RowBytes => Type.RowBytes(Cols);
    public long Bytes => Rows * RowBytes;
    public abstract void Dispose();
}

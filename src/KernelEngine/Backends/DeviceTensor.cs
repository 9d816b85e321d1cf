namespace KernelEngine.Backends;

/// <summary>An activation buffer on a backend: (Rows, Cols) row-major, F32 (or F16 for KV caches).</summary>
public abstract class DeviceTensor : IDisposable
{
    protected DeviceTensor(int rows, int cols, bool f16) { Rows = rows; Cols = cols; IsF16 = f16; }
    public int Rows { get; }
    public int Cols { get; }
    public bool IsF16 { get; }
    public long Bytes => (long)Rows * Cols * (IsF16 ? 2 : 4);
    public abstract void Dispose();
}

using KernelEngine.Kernels;

namespace KernelEngine.Backends;

/// <summary>A weight matrix (Rows = output features, Cols = input features) resident on a backend in its stored type.</summary>
internal abstract class DeviceWeight : IDisposable
{
    protected DeviceWeight(string name, int rows, int cols, WeightType type) { Name = name; Rows = rows; Cols = cols; Type = type; }
    public string Name { get; }
    public int Rows { get; }
    public int Cols { get; }
    public WeightType Type { get; }
    public long Bytes => Rows * Type.RowBytes(Cols);
    public abstract void Dispose();
}

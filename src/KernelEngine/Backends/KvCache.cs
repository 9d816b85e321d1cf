namespace KernelEngine.Backends;

/// <summary>Keys and values of every layer for one session: K, V each (layers * contextLength, kvHeads * headDim).</summary>
public sealed class KvCache : IDisposable
{
    public KvCache(IBackend backend, int layers, int contextLength, int kvDim, bool f16)
    {
        Layers = layers; ContextLength = contextLength; KvDim = kvDim;
        K = backend.Allocate(layers * contextLength, kvDim, f16);
        try { V = backend.Allocate(layers * contextLength, kvDim, f16); }
        catch { K.Dispose(); throw; }
    }

    public int Layers { get; }
    public int ContextLength { get; }
    public int KvDim { get; }
    public DeviceTensor K { get; }   // (layer, position, kvDim)
    public DeviceTensor V { get; }   // (layer, position, kvDim)
    public long Bytes => K.Bytes + V.Bytes;

    public void Dispose() { K.Dispose(); V.Dispose(); }
}

using KernelEngine.Kernels;
using KernelEngine.Kernels.Attention;

namespace KernelEngine.Backends;

/// <summary>Keys and values of every layer for one session: K, V each (layers * contextLength, kvHeads * headDim), stored as
/// <see cref="Type"/> (F32, F16, or on the CPU a block format such as Q8_0, quantized as each row is written).</summary>
internal sealed class KvCache : IDisposable
{
    public KvCache(IBackend backend, int layers, int contextLength, int kvDim, bool f16)
        : this(backend, layers, contextLength, kvDim, f16 ? WeightType.F16 : WeightType.F32, kvDim) { }

    public KvCache(IBackend backend, int layers, int contextLength, int kvDim, WeightType type, int headDim)
    {
        Layers = layers; ContextLength = contextLength; KvDim = kvDim; Type = type;
        Rows = KvRows.Supports(type, headDim) ? new KvRows(type) : default;
        if (headDim < 1 || kvDim % headDim != 0 || !backend.SupportsKvCache(type, headDim))
            throw new InvalidRequestException($"KV cache type {type.Name()} does not run on {backend.Device.Id} with heads of {headDim} (types there: {string.Join(", ", KvCacheTypes.Names(backend, headDim))})");
        long rows = (long)layers * contextLength;
        long bytes = MemoryBudget.Bytes(2, rows, type.RowBytes(kvDim));
        if (rows > int.MaxValue) throw new DeviceException($"a KV cache of {layers} layers x {contextLength} positions is too large; lower the context length (ModelOptions.ContextLength, --context)");
        MemoryBudget.Check(backend.Device, bytes, $"the KV cache ({layers} layers x {contextLength} positions x {kvDim} x 2, {type.Name()})",
            "lower the context length (ModelOptions.ContextLength, --context) or pick a smaller --kv-type");
        K = backend.Allocate((int)rows, kvDim, type);
        try { V = backend.Allocate((int)rows, kvDim, type); }
        catch { K.Dispose(); throw; }
        Diagnostics.Telemetry.KvCacheBytes.Add(Bytes);
    }

    public int Layers { get; }
    public int ContextLength { get; }
    public int KvDim { get; }
    public WeightType Type { get; }
    /// <summary>How the CPU kernels address and convert this cache's rows.</summary>
    internal KvRows Rows { get; }
    public DeviceTensor K { get; }   // (layer, position, kvDim)
    public DeviceTensor V { get; }   // (layer, position, kvDim)
    public long Bytes => K.Bytes + V.Bytes;

    /// <summary>
    /// Context shift: drops positions [keep, keep + discard) by moving the <paramref name="count"/> positions after them
    /// down to keep (in runs of at most discard positions, so that no copy overlaps the one it reads from) and rotating
    /// the moved keys back by discard positions (<paramref name="rope"/> null: learned positions, nothing to rotate).
    /// </summary>
    public void Shift(IBackend backend, int keep, int discard, int count, RopeTable? rope)
    {
        if (keep < 0 || discard < 1 || count < 0 || (long)keep + discard + count > ContextLength)
            throw new ArgumentOutOfRangeException(nameof(discard), $"keep {keep}, discard {discard}, count {count} in a cache of {ContextLength}");
        for (int done = 0; done < count; done += discard)
            backend.CopyKv(this, keep + discard + done, keep + done, Math.Min(discard, count - done));
        if (rope != null && count > 0) backend.RotateKeys(this, keep, count, -discard, rope);
    }

    private int _disposed;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        K.Dispose(); V.Dispose();
        Diagnostics.Telemetry.KvCacheBytes.Add(-Bytes);
    }
}

using System.Diagnostics;
using KernelEngine.Kernels.DraftVerify;
using KernelEngine.Kernels.SoftmaxEntropy;

namespace KernelEngine.Backends;

/// <summary>One timed op of a profile.</summary>
public readonly record struct ProfileEvent(string Kernel, string Detail, double StartMicroseconds, double DurationMicroseconds, long Bytes, long Launches);

/// <summary>
/// Wraps a backend and times every op of the kernel contract (synchronizing after each, so GPU times are kernel
/// times), with the bytes it moves (weights read plus activations touched) and the launches it issued. The model
/// code is unchanged: the forward pass runs against this wrapper.
/// </summary>
public sealed class ProfilingBackend(IBackend inner) : IBackend
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<ProfileEvent> _events = new();

    public bool Enabled { get; set; } = true;
    public IReadOnlyList<ProfileEvent> Events => _events;
    public void Clear() => _events.Clear();
    public IBackend Inner => inner;
    public DeviceInfo Device => inner.Device;
    public long Launches => inner.Launches;

    private void Time(string kernel, string detail, long bytes, Action run)
    {
        if (!Enabled) { run(); return; }
        long launches = inner.Launches;
        double t0 = _clock.Elapsed.TotalMicroseconds;
        run();
        inner.Synchronize();
        double t1 = _clock.Elapsed.TotalMicroseconds;
        _events.Add(new ProfileEvent(kernel, detail, t0, t1 - t0, bytes, inner.Launches - launches));
    }

    private static long F(DeviceTensor t, int rows) => 4L * rows * t.Cols;

    public DeviceTensor Allocate(int rows, int cols, bool f16 = false) => inner.Allocate(rows, cols, f16);
    public DeviceWeight Upload(HostWeight weight) => inner.Upload(weight);

    public void Embed(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x)
    {
        var a = ids.ToArray();
        Time("embed", table.Name, 2 * F(x, a.Length), () => inner.Embed(table, a, x));
    }

    public void AddEmbed(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x)
    {
        var a = ids.ToArray();
        Time("embed", table.Name, 3 * F(x, a.Length), () => inner.AddEmbed(table, a, x));
    }

    public void RmsNorm(DeviceTensor x, DeviceWeight weight, DeviceTensor y, int rows, float eps) =>
        Time("rmsnorm", weight.Name, 2 * F(x, rows) + weight.Bytes, () => inner.RmsNorm(x, weight, y, rows, eps));

    public void LayerNorm(DeviceTensor x, DeviceWeight weight, DeviceWeight bias, DeviceTensor y, int rows, float eps) =>
        Time("layernorm", weight.Name, 2 * F(x, rows) + 2 * weight.Bytes, () => inner.LayerNorm(x, weight, bias, y, rows, eps));

    public void MatMul(DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor y, int rows) =>
        Time(rows == 1 ? $"matvec {w.Type.ToString().ToLowerInvariant()}" : $"matmul {w.Type.ToString().ToLowerInvariant()}", w.Name,
            w.Bytes + F(x, rows) + F(y, rows), () => inner.MatMul(x, w, bias, y, rows));

    public void Rope(DeviceTensor x, int rows, int heads, ReadOnlySpan<int> positions, RopeTable rope)
    {
        var p = positions.ToArray();
        Time("rope", "", 2 * F(x, rows), () => inner.Rope(x, rows, heads, p, rope));
    }

    public void StoreKv(DeviceTensor k, DeviceTensor v, KvCache cache, int layer, int start, int rows) =>
        Time("store-kv", $"layer {layer}", 2 * (F(k, rows) + (long)rows * cache.KvDim * (cache.K.IsF16 ? 2 : 4)), () => inner.StoreKv(k, v, cache, layer, start, rows));

    public void Attention(DeviceTensor q, KvCache cache, int layer, int start, int rows, DeviceTensor output, AttentionShape shape, int branch = 0) =>
        Time("attention", $"layer {layer}", 2L * (start + rows) * cache.KvDim * (cache.K.IsF16 ? 2 : 4) + 2 * F(q, rows),
            () => inner.Attention(q, cache, layer, start, rows, output, shape, branch));

    public void CopyKv(KvCache cache, int src, int dst, int count) =>
        Time("copy-kv", "", 4L * cache.Layers * count * cache.KvDim * (cache.K.IsF16 ? 2 : 4), () => inner.CopyKv(cache, src, dst, count));

    public void SiluMul(DeviceTensor gate, DeviceTensor up, int rows) => Time("silu-mul", "", 3 * F(gate, rows), () => inner.SiluMul(gate, up, rows));
    public void Gelu(DeviceTensor x, int rows) => Time("gelu", "", 2 * F(x, rows), () => inner.Gelu(x, rows));
    public void Add(DeviceTensor x, DeviceTensor y, int rows) => Time("add", "", 3 * F(x, rows), () => inner.Add(x, y, rows));
    public void CopyRows(DeviceTensor src, int srcRow, DeviceTensor dst, int dstRow, int rows) =>
        Time("copy", "", 2 * F(src, rows), () => inner.CopyRows(src, srcRow, dst, dstRow, rows));

    public void Read(DeviceTensor t, int row, int rows, Span<float> dst)
    {
        if (!Enabled) { inner.Read(t, row, rows, dst); return; }
        double t0 = _clock.Elapsed.TotalMicroseconds;
        inner.Read(t, row, rows, dst);
        _events.Add(new ProfileEvent("read", "", t0, _clock.Elapsed.TotalMicroseconds - t0, F(t, rows), 0));
    }

    public SoftmaxStats SoftmaxEntropy(DeviceTensor logits, int row, float temperature, int token)
    {
        SoftmaxStats r = default;
        Time("softmax-entropy", "", 4L * logits.Cols, () => r = inner.SoftmaxEntropy(logits, row, temperature, token));
        return r;
    }

    public Verdict VerifyDrafts(DeviceTensor p, DeviceTensor q, ReadOnlySpan<int> drafts, ReadOnlySpan<double> uniforms, bool greedy, bool multi, bool withoutReplacement)
    {
        var d = drafts.ToArray(); var u = uniforms.ToArray();
        Verdict r = default;
        Time("draft-verify", "", 4L * (p.Cols * (d.Length + 1) + q.Cols * d.Length), () => r = inner.VerifyDrafts(p, q, d, u, greedy, multi, withoutReplacement));
        return r;
    }

    public void Synchronize() => inner.Synchronize();
    public void Dispose() => inner.Dispose();
}

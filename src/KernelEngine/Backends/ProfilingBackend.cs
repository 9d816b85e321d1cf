using System.Diagnostics;
using KernelEngine.Kernels;
using KernelEngine.Kernels.DraftVerify;
using KernelEngine.Kernels.SoftmaxEntropy;

namespace KernelEngine.Backends;

/// <summary>One timed op of a profile.</summary>
public readonly record struct ProfileEvent(string Kernel, string Detail, double StartMicroseconds, double DurationMicroseconds, long Bytes, long Launches, long Flops = 0);

/// <summary>
/// Wraps a backend and times every op of the kernel contract (synchronizing after each, so GPU times are kernel
/// times), with the bytes it moves (weights read plus activations touched) and the launches it issued. The model
/// code is unchanged: the forward pass runs against this wrapper.
/// </summary>
internal sealed class ProfilingBackend(IBackend inner) : IBackend
{
    private ProfilingBackend? _parent;   // a session's wrapper records into its model's profiler
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly List<ProfileEvent> _events = new();
    private bool _enabled = true;

    private ProfilingBackend Root => _parent ?? this;
    public bool Enabled { get => Root._enabled; set => Root._enabled = value; }
    public IReadOnlyList<ProfileEvent> Events => Root._events;
    public void Clear() { lock (Root._events) Root._events.Clear(); }

    /// <summary>A session's view: the inner backend's session scratch, events recorded into this profiler.</summary>
    public IBackend ForSession()
    {
        var s = inner.ForSession();
        return ReferenceEquals(s, inner) ? this : new ProfilingBackend(s) { _parent = Root };
    }

    private void Record(ProfileEvent e)
    {
        var root = Root;
        lock (root._events) root._events.Add(e);
    }
    public IBackend Inner => inner;
    public DeviceInfo Device => inner.Device;
    public long Launches => inner.Launches;

    // Begin/End instead of a closure per op: the profiler itself must not allocate or it shows up as unattributed time.
    private (double T0, long Launches) Begin() => (Root._clock.Elapsed.TotalMicroseconds, inner.Launches);

    /// <param name="flops">floating-point operations of the op (the matmuls' and attention's multiply-adds as 2; 0 for the
    /// element-wise ops, which only move bytes)</param>
    private void End((double T0, long Launches) start, string kernel, string detail, long bytes, long flops = 0)
    {
        if (!Enabled) return;
        inner.Synchronize();
        double t1 = Root._clock.Elapsed.TotalMicroseconds;
        Record(new ProfileEvent(kernel, detail, start.T0, t1 - start.T0, bytes, inner.Launches - start.Launches, flops));
    }

    /// <summary>2 · rows · out · in: the multiply-adds of x (rows, in) · wᵀ.</summary>
    private static long Mm(DeviceWeight w, int rows) => 2L * rows * w.Rows * w.Cols;

    private static long F(DeviceTensor t, int rows) => 4L * rows * t.Cols;
    private static readonly string[] LayerNames = Enumerable.Range(0, 256).Select(l => $"layer {l}").ToArray();
    private static string Layer(int l) => l < LayerNames.Length ? LayerNames[l] : $"layer {l}";

    public DeviceTensor Allocate(int rows, int cols, WeightType type = WeightType.F32) => inner.Allocate(rows, cols, type);
    public bool SupportsKvCache(WeightType type, int headDim) => inner.SupportsKvCache(type, headDim);
    public DeviceWeight Upload(HostWeight weight) => inner.Upload(weight);
    public DeviceTensor RowView(DeviceTensor t, int row, int rows) => inner.RowView(t, row, rows);

    public void Embed(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x)
    {
        var t = Begin();
        inner.Embed(table, ids, x);
        End(t, "embed", table.Name, 2 * F(x, ids.Length));
    }

    public void AddEmbed(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x)
    {
        var t = Begin();
        inner.AddEmbed(table, ids, x);
        End(t, "embed", table.Name, 3 * F(x, ids.Length));
    }

    public void RmsNorm(DeviceTensor x, DeviceWeight weight, DeviceTensor y, int rows, float eps)
    {
        var t = Begin();
        inner.RmsNorm(x, weight, y, rows, eps);
        End(t, "rmsnorm", weight.Name, 2 * F(x, rows) + weight.Bytes);
    }

    public void RmsNormHeads(DeviceTensor x, DeviceWeight weight, int rows, int heads, float eps)
    {
        var t = Begin();
        inner.RmsNormHeads(x, weight, rows, heads, eps);
        End(t, "rmsnorm-heads", weight.Name, 2 * F(x, rows) + weight.Bytes);
    }

    public void LayerNorm(DeviceTensor x, DeviceWeight weight, DeviceWeight bias, DeviceTensor y, int rows, float eps)
    {
        var t = Begin();
        inner.LayerNorm(x, weight, bias, y, rows, eps);
        End(t, "layernorm", weight.Name, 2 * F(x, rows) + 2 * weight.Bytes);
    }

    private static readonly string[] MatVecNames = Enum.GetNames<Kernels.WeightType>().Select(n => "matvec " + n.ToLowerInvariant()).ToArray();
    private static readonly string[] MatMulNames = Enum.GetNames<Kernels.WeightType>().Select(n => "matmul " + n.ToLowerInvariant()).ToArray();
    // fused ops (on the CPU: their ops, timed together)
    private static readonly string[] MatVecAddNames = With(MatVecNames, "+add"), MatMulAddNames = With(MatMulNames, "+add");
    private static readonly string[] MatVecSiluNames = With(MatVecNames, "+silu"), MatMulSiluNames = With(MatMulNames, "+silu");
    private static readonly string[] MatVecGeluNames = With(MatVecNames, "+gelu"), MatMulGeluNames = With(MatMulNames, "+gelu");
    private static readonly string[] MatVecNormNames = With(MatVecNames, "+norm"), MatMulNormNames = With(MatMulNames, "+norm");
    private static readonly string[] MatVecNormSiluNames = With(MatVecNames, "+norm+silu"), MatMulNormSiluNames = With(MatMulNames, "+norm+silu");
    private static readonly string[] MatVecNormGeluNames = With(MatVecNames, "+norm+gelu"), MatMulNormGeluNames = With(MatMulNames, "+norm+gelu");
    private static readonly string[] MatVecAttentionNames = With(MatVecNames, "+norm+rope+attention");
    private static string[] With(string[] names, string suffix) => names.Select(n => n + suffix).ToArray();

    public void MatMul(DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor y, int rows)
    {
        var t = Begin();
        inner.MatMul(x, w, bias, y, rows);
        End(t, (rows == 1 ? MatVecNames : MatMulNames)[(int)w.Type], w.Name, w.Bytes + F(x, rows) + F(y, rows), Mm(w, rows));
    }

    public void MatMul(DeviceTensor x, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias, ReadOnlySpan<DeviceTensor> y, int rows)
    {
        var t = Begin();
        inner.MatMul(x, w, bias, y, rows);
        long bytes = F(x, rows), flops = 0;
        for (int i = 0; i < w.Length; i++) { bytes += w[i].Bytes + F(y[i], rows); flops += Mm(w[i], rows); }
        End(t, (rows == 1 ? MatVecNames : MatMulNames)[(int)w[0].Type], w[0].Name, bytes, flops);
    }

    public void Rope(DeviceTensor x, int rows, int heads, ReadOnlySpan<int> positions, RopeTable rope)
    {
        var t = Begin();
        inner.Rope(x, rows, heads, positions, rope);
        End(t, "rope", "", 2 * F(x, rows));
    }

    public void StoreKv(DeviceTensor k, DeviceTensor v, KvCache cache, int layer, int start, int rows)
    {
        var t = Begin();
        inner.StoreKv(k, v, cache, layer, start, rows);
        End(t, "store-kv", Layer(layer), 2 * (F(k, rows) + rows * cache.K.RowBytes));
    }

    public void Attention(DeviceTensor q, KvCache cache, int layer, int start, int rows, DeviceTensor output, AttentionShape shape, int branch = 0)
    {
        var t = Begin();
        inner.Attention(q, cache, layer, start, rows, output, shape, branch);
        End(t, "attention", Layer(layer), 2L * (start + rows) * cache.K.RowBytes + 2 * F(q, rows), 4L * rows * shape.Heads * shape.HeadDim * (start + rows));
    }

    public void AttentionRows(IReadOnlyList<SequenceRow> rows, IReadOnlyList<KvCache> caches, ReadOnlySpan<int> positions, int layer, AttentionShape shape,
        RopeTable? rope = null)
    {
        var t = Begin();
        inner.AttentionRows(rows, caches, positions, layer, shape, rope);
        long bytes = 0, flops = 0;
        for (int r = 0; r < positions.Length; r++)
        {
            bytes += 2L * (positions[r] + 2) * caches[r].K.RowBytes + 2 * F(rows[r].Q, 1);
            flops += 4L * shape.Heads * shape.HeadDim * (positions[r] + 1);
        }
        End(t, rope == null ? "attention-rows" : "rope+attention-rows", Layer(layer), bytes, flops);
    }

    public void RotateKeys(KvCache cache, int position, int count, int delta, RopeTable rope, KvLayers layers = KvLayers.All)
    {
        var t = Begin();
        inner.RotateKeys(cache, position, count, delta, rope, layers);
        End(t, "rotate-keys", "", 2L * cache.LayerCount(layers) * count * cache.K.RowBytes);
    }

    public void CopyKv(KvCache cache, int src, int dst, int count, KvLayers layers = KvLayers.All)
    {
        var t = Begin();
        inner.CopyKv(cache, src, dst, count, layers);
        End(t, "copy-kv", "", 4L * cache.LayerCount(layers) * count * cache.K.RowBytes);
    }

    public void CopyKvPrefix(KvCache from, KvCache to, int count, int start = 0)
    {
        var t = Begin();
        inner.CopyKvPrefix(from, to, count, start);
        End(t, "copy-kv", "", 4L * from.Layers * (count - start) * from.K.RowBytes);
    }

    public void MatMulAdd(DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor scratch, DeviceTensor residual, int rows)
    {
        var t = Begin();
        inner.MatMulAdd(x, w, bias, scratch, residual, rows);
        End(t, (rows == 1 ? MatVecAddNames : MatMulAddNames)[(int)w.Type], w.Name, F(x, rows) + w.Bytes + 3 * F(residual, rows), Mm(w, rows));
    }

    public void GatedMatMul(DeviceTensor x, DeviceWeight gate, DeviceWeight up, DeviceWeight? upBias, DeviceTensor gateOut, DeviceTensor upOut, int rows, bool gelu)
    {
        var t = Begin();
        inner.GatedMatMul(x, gate, up, upBias, gateOut, upOut, rows, gelu);
        End(t, (gelu ? rows == 1 ? MatVecGeluNames : MatMulGeluNames : rows == 1 ? MatVecSiluNames : MatMulSiluNames)[(int)gate.Type], gate.Name, F(x, rows) + gate.Bytes + up.Bytes + 3 * F(gateOut, rows),
            Mm(gate, rows) + Mm(up, rows));
    }

    public void NormMatMul(DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias,
        ReadOnlySpan<DeviceTensor> y, int rows)
    {
        var t = Begin();
        inner.NormMatMul(x, norm, eps, normed, w, bias, y, rows);
        long bytes = F(x, rows) + norm.Bytes, flops = 0;
        for (int i = 0; i < w.Length; i++) { bytes += w[i].Bytes + F(y[i], rows); flops += Mm(w[i], rows); }
        End(t, (rows == 1 ? MatVecNormNames : MatMulNormNames)[(int)w[0].Type], w[0].Name, bytes, flops);
    }

    public void NormGatedMatMul(DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, DeviceWeight gate, DeviceWeight up, DeviceWeight? upBias,
        DeviceTensor gateOut, DeviceTensor upOut, int rows, bool gelu)
    {
        var t = Begin();
        inner.NormGatedMatMul(x, norm, eps, normed, gate, up, upBias, gateOut, upOut, rows, gelu);
        End(t, (gelu ? rows == 1 ? MatVecNormGeluNames : MatMulNormGeluNames : rows == 1 ? MatVecNormSiluNames : MatMulNormSiluNames)[(int)gate.Type], gate.Name,
            F(x, rows) + norm.Bytes + gate.Bytes + up.Bytes + F(gateOut, rows), Mm(gate, rows) + Mm(up, rows));
    }

    public void RopeStoreKv(DeviceTensor q, DeviceTensor k, DeviceTensor v, int rows, int heads, int kvHeads, ReadOnlySpan<int> positions, RopeTable rope,
        KvCache cache, int layer, int start)
    {
        var t = Begin();
        inner.RopeStoreKv(q, k, v, rows, heads, kvHeads, positions, rope, cache, layer, start);
        End(t, "rope+store-kv", "", 2 * (F(q, rows) + F(k, rows)) + F(v, rows) + 2L * rows * cache.K.RowBytes);
    }

    public bool TryDecodeAttention(DeviceTensor x, DeviceWeight norm, float eps, ReadOnlySpan<DeviceWeight> qkv, ReadOnlySpan<DeviceWeight?> bias,
        ReadOnlySpan<DeviceTensor> y, ReadOnlySpan<int> positions, RopeTable rope, KvCache cache, int layer, int start, DeviceTensor output, AttentionShape shape)
    {
        var t = Begin();
        if (!inner.TryDecodeAttention(x, norm, eps, qkv, bias, y, positions, rope, cache, layer, start, output, shape)) return false;   // the caller's ops record themselves
        long bytes = F(x, 1) + norm.Bytes + 2L * (start + 1) * cache.K.RowBytes + F(output, 1), flops = 4L * shape.Heads * shape.HeadDim * (start + 1);
        for (int i = 0; i < qkv.Length; i++) { bytes += qkv[i].Bytes + 2 * F(y[i], 1); flops += Mm(qkv[i], 1); }
        End(t, MatVecAttentionNames[(int)qkv[0].Type], Layer(layer), bytes, flops);
        return true;
    }

    public int KvShareGranuleBytes => inner.KvShareGranuleBytes;
    public bool RotatesInAttentionRows => inner.RotatesInAttentionRows;
    public DeviceTensor AllocateShareable(int rows, int cols, WeightType type) => inner.AllocateShareable(rows, cols, type);
    public void MapKv(KvCache owner, KvCache to, int start, int end) => inner.MapKv(owner, to, start, end);
    public void UnmapKv(KvCache cache, int start, int end) => inner.UnmapKv(cache, start, end);

    public void SiluMul(DeviceTensor gate, DeviceTensor up, int rows)
    {
        var t = Begin();
        inner.SiluMul(gate, up, rows);
        End(t, "silu-mul", "", 3 * F(gate, rows));
    }
    public void Gelu(DeviceTensor x, int rows)
    {
        var t = Begin();
        inner.Gelu(x, rows);
        End(t, "gelu", "", 2 * F(x, rows));
    }
    public void GeluMul(DeviceTensor gate, DeviceTensor up, int rows)
    {
        var t = Begin();
        inner.GeluMul(gate, up, rows);
        End(t, "gelu-mul", "", 3 * F(gate, rows));
    }
    public void Scale(DeviceTensor x, int rows, float factor)
    {
        var t = Begin();
        inner.Scale(x, rows, factor);
        End(t, "scale", "", 2 * F(x, rows));
    }
    public void SoftCap(DeviceTensor x, int rows, float cap)
    {
        var t = Begin();
        inner.SoftCap(x, rows, cap);
        End(t, "softcap", "", 2 * F(x, rows));
    }
    public void Add(DeviceTensor x, DeviceTensor y, int rows)
    {
        var t = Begin();
        inner.Add(x, y, rows);
        End(t, "add", "", 3 * F(x, rows));
    }
    public void CopyRows(DeviceTensor src, int srcRow, DeviceTensor dst, int dstRow, int rows)
    {
        var t = Begin();
        inner.CopyRows(src, srcRow, dst, dstRow, rows);
        End(t, "copy", "", 2 * F(src, rows));
    }

    public void Read(DeviceTensor t, int row, int rows, Span<float> dst)
    {
        if (!Enabled) { inner.Read(t, row, rows, dst); return; }
        double t0 = Root._clock.Elapsed.TotalMicroseconds;
        inner.Read(t, row, rows, dst);
        Record(new ProfileEvent("read", "", t0, Root._clock.Elapsed.TotalMicroseconds - t0, F(t, rows), 0));
    }

    public SoftmaxStats SoftmaxEntropy(DeviceTensor logits, int row, float temperature, int token)
    {
        var t = Begin();
        var r = inner.SoftmaxEntropy(logits, row, temperature, token);
        End(t, "softmax-entropy", "", 4L * logits.Cols);
        return r;
    }

    public void SoftmaxEntropyRows(DeviceTensor logits, float temperature, Span<SoftmaxStats> stats)
    {
        var t = Begin();
        inner.SoftmaxEntropyRows(logits, temperature, stats);
        End(t, "softmax-entropy-rows", "", 4L * logits.Cols * stats.Length);
    }

    public Verdict VerifyDrafts(DeviceTensor p, DeviceTensor q, ReadOnlySpan<int> drafts, ReadOnlySpan<double> uniforms, bool greedy, bool multi, bool withoutReplacement)
    {
        var t = Begin();
        var r = inner.VerifyDrafts(p, q, drafts, uniforms, greedy, multi, withoutReplacement);
        End(t, "draft-verify", "", 4L * (p.Cols * (drafts.Length + 1) + q.Cols * drafts.Length));
        return r;
    }

    public void Synchronize() => inner.Synchronize();
    public void Dispose() => inner.Dispose();
}

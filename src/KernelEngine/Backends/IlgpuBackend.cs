using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Activation;
using KernelEngine.Kernels.Attention;
using KernelEngine.Kernels.DraftVerify;
using KernelEngine.Kernels.MatMul;
using KernelEngine.Kernels.Memory;
using KernelEngine.Kernels.Norm;
using KernelEngine.Kernels.Rope;
using KernelEngine.Kernels.SoftmaxEntropy;

namespace KernelEngine.Backends;

/// <summary>
/// The GPU path: the ILGPU kernels of <c>kernels/</c> on a CUDA or OpenCL accelerator, or on ILGPU's CPU
/// accelerator (a simulator with warp 32, for tests). Weights are uploaded once in their stored type; activations,
/// the KV cache and every intermediate stay on the device, and only what <see cref="Read"/> asks for comes back.
/// Kernels are compiled on first use and cached for the life of the backend. Ops are queued on the default stream.
/// </summary>
public sealed unsafe class IlgpuBackend : IBackend
{
    private readonly Context _context;
    private readonly Accelerator _acc;
    private readonly Dictionary<string, Delegate> _kernels = new();
    private readonly Dictionary<RopeTable, MemoryBuffer1D<float, Stride1D.Dense>> _ropeTables = new(ReferenceEqualityComparer.Instance);
    private MemoryBuffer1D<int, Stride1D.Dense> _ints;
    private MemoryBuffer1D<float, Stride1D.Dense> _scratch;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _none;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _counter;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _resultInts;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _resultFloats;
    private long _launches;

    /// <summary>
    /// Threads per group of the reduction kernels (a power of two up to DeviceMath.GroupSize): 128 on GPUs; one warp
    /// on ILGPU's CPU accelerator, where every simulated thread is an OS thread and each barrier a context switch.
    /// </summary>
    private readonly int _group;

    /// <summary>
    /// Use the group (shared-memory) kernels for MatMul, norms and attention. On by default on GPUs; off on the CPU
    /// accelerator, which then runs the barrier-free v0 kernels (one thread per output, row or query); tests turn it
    /// on to check the GPU kernels on the simulator.
    /// </summary>
    public bool GroupKernels { get; set; }

    /// <summary>Positions per Flash-Decoding chunk.</summary>
    public int DecodeChunk { get; set; } = 256;

    public IlgpuBackend(DeviceKind kind)
    {
        _context = Context.Create(b => b.Default().EnableAlgorithms().Optimize(OptimizationLevel.O1));
        try
        {
            _acc = kind switch
            {
                DeviceKind.IlgpuCpu => new CPUDevice(32, 8, 1).CreateAccelerator(_context),
                DeviceKind.Cuda => (_context.Devices.FirstOrDefault(d => d.AcceleratorType == AcceleratorType.Cuda)
                    ?? throw new DeviceException("cuda: no CUDA device found (is the NVIDIA driver installed?)")).CreateAccelerator(_context),
                DeviceKind.OpenCL => (_context.Devices.FirstOrDefault(d => d.AcceleratorType == AcceleratorType.OpenCL)
                    ?? throw new DeviceException("opencl: no OpenCL device found")).CreateAccelerator(_context),
                _ => throw new DeviceException($"{kind} is not an ILGPU device"),
            };
        }
        catch (Exception e) when (e is not DeviceException)
        {
            _context.Dispose();
            throw new DeviceException($"{kind}: cannot create the accelerator ({e.Message})", e);
        }
        _group = kind == DeviceKind.IlgpuCpu ? 32 : Kernels.Ilgpu.DeviceMath.GroupSize;
        GroupKernels = kind != DeviceKind.IlgpuCpu;
        Device = new DeviceInfo(kind, _acc.Name, _acc.MemorySize, $"warp {_acc.WarpSize}, max group {_acc.MaxNumThreadsPerGroup}, {_acc.NumMultiprocessors} multiprocessors");
        _ints = _acc.Allocate1D<int>(1024);
        _scratch = _acc.Allocate1D<float>(4096);
        _none = _acc.Allocate1D<float>(1);
        _counter = _acc.Allocate1D<int>(1);
        _counter.MemSetToZero();
        _resultInts = _acc.Allocate1D<int>(4);
        _resultFloats = _acc.Allocate1D<float>(4);
    }

    public DeviceInfo Device { get; }
    public Accelerator Accelerator => _acc;
    /// <summary>Kernel launches so far (a decode step's count is the difference around it).</summary>
    public long Launches => _launches;

    private sealed class Tensor : DeviceTensor
    {
        public MemoryBuffer1D<byte, Stride1D.Dense>? Buffer;
        public Tensor(MemoryBuffer1D<byte, Stride1D.Dense> b, int rows, int cols, bool f16) : base(rows, cols, f16) => Buffer = b;
        public ArrayView<byte> View => Buffer!.View;
        public ArrayView<float> F => View.Cast<float>();
        public override void Dispose() { Buffer?.Dispose(); Buffer = null; }
    }

    private sealed class Weight : DeviceWeight
    {
        public MemoryBuffer1D<byte, Stride1D.Dense>? Buffer;
        public Weight(HostWeight h, MemoryBuffer1D<byte, Stride1D.Dense> b) : base(h.Name, h.Rows, h.Cols, h.Type) => Buffer = b;
        public ArrayView<byte> View => Buffer!.View;
        public ArrayView<float> F => View.Cast<float>();
        public override void Dispose() { Buffer?.Dispose(); Buffer = null; }
    }

    private static Tensor T(DeviceTensor t) => (Tensor)t;
    private static Weight W(DeviceWeight w) => (Weight)w;

    private MemoryBuffer1D<byte, Stride1D.Dense> AllocateBytes(long bytes, string what)
    {
        try { return _acc.Allocate1D<byte>(Math.Max(4, (bytes + 3) & ~3L)); }
        catch (Exception e) when (e is OutOfMemoryException or AcceleratorException or InvalidOperationException)
        {
            throw new DeviceException($"{Device.Id}: out of device memory allocating {what} ({bytes:N0} bytes; device has {_acc.MemorySize:N0})", e);
        }
    }

    public DeviceTensor Allocate(int rows, int cols, bool f16 = false)
    {
        var b = AllocateBytes((long)rows * cols * (f16 ? 2 : 4), $"a ({rows}, {cols}) tensor");
        b.MemSetToZero();
        return new Tensor(b, rows, cols, f16);
    }

    public DeviceWeight Upload(HostWeight weight)
    {
        var b = AllocateBytes(weight.Bytes, $"weight '{weight.Name}'");
        if (weight.Bytes > 0) b.View.SubView(0, weight.Bytes).CopyFromCPU(ref Unsafe.AsRef<byte>(weight.Data), weight.Bytes);
        return new Weight(weight, b);
    }

    private TDelegate Kernel<TDelegate>(string name, Func<TDelegate> load) where TDelegate : Delegate
    {
        lock (_kernels)
        {
            if (!_kernels.TryGetValue(name, out var d)) _kernels[name] = d = load();
            return (TDelegate)d;
        }
    }

    private Action<KernelConfig, TArgs> Explicit<TArgs>(string name, Action<TArgs> kernel) where TArgs : struct =>
        Kernel(name, () => _acc.LoadStreamKernel(kernel));

    private void Launch<TArgs>(string name, Action<TArgs> kernel, int groups, int groupSize, TArgs args) where TArgs : struct
    {
        if (groups <= 0) return;
        Explicit(name, kernel)(new KernelConfig(groups, groupSize), args);
        _launches++;
    }

    private ArrayView<int> Ints(ReadOnlySpan<int> values)
    {
        if (_ints.Length < values.Length) { _ints.Dispose(); _ints = _acc.Allocate1D<int>(values.Length * 2); }
        var view = _ints.View.SubView(0, values.Length);
        view.CopyFromCPU(ref MemoryMarshal.GetReference(values), values.Length);
        return view;
    }

    private ArrayView<float> Scratch(long floats)
    {
        if (_scratch.Length < floats) { _scratch.Dispose(); _scratch = _acc.Allocate1D<float>(floats * 2); }
        return _scratch.View;
    }

    public void Embed(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x) => EmbedRows(table, ids, x, 0);
    public void AddEmbed(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x) => EmbedRows(table, ids, x, 1);

    private void EmbedRows(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x, int add)
    {
        var w = W(table);
        foreach (int id in ids)
            if ((uint)id >= (uint)w.Rows) throw new InvalidRequestException($"{w.Name}: row {id} is outside (0..{w.Rows - 1})");
        var k = Kernel("embed", () => _acc.LoadAutoGroupedStreamKernel<Index1D, EmbedArgs>(MemoryIlgpu.Embed));
        k(ids.Length * w.Cols, new EmbedArgs { Table = w.View, Ids = Ints(ids), X = T(x).F, Type = (int)w.Type, Dim = w.Cols, Add = add, RowBytes = w.Type.RowBytes(w.Cols) });
        _launches++;
    }

    public void RmsNorm(DeviceTensor x, DeviceWeight weight, DeviceTensor y, int rows, float eps)
    {
        var args = new NormArgs { X = T(x).F, W = W(weight).F, B = _none.View, Y = T(y).F, Dim = x.Cols, Eps = eps };
        if (GroupKernels) Launch("rmsnorm", NormIlgpu.RmsNorm, rows, _group, args);
        else Implicit("rmsnorm-per-row", NormIlgpu.RmsNormPerRow, rows, args);
    }

    public void LayerNorm(DeviceTensor x, DeviceWeight weight, DeviceWeight bias, DeviceTensor y, int rows, float eps)
    {
        var args = new NormArgs { X = T(x).F, W = W(weight).F, B = W(bias).F, Y = T(y).F, Dim = x.Cols, Eps = eps };
        if (GroupKernels) Launch("layernorm", NormIlgpu.LayerNorm, rows, _group, args);
        else Implicit("layernorm-per-row", NormIlgpu.LayerNormPerRow, rows, args);
    }

    private void Implicit<TArgs>(string name, Action<Index1D, TArgs> kernel, int threads, TArgs args) where TArgs : struct
    {
        if (threads <= 0) return;
        Kernel(name, () => _acc.LoadAutoGroupedStreamKernel(kernel))(threads, args);
        _launches++;
    }

    public void MatMul(DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor y, int rows)
    {
        var ww = W(w);
        if (x.Cols != ww.Cols || y.Cols != ww.Rows)
            throw new InvalidOperationException($"{ww.Name}: matmul shape mismatch x (.., {x.Cols}) w ({ww.Rows}, {ww.Cols}) y (.., {y.Cols})");
        var args = new MatMulArgs
        {
            X = T(x).F, W = ww.View, Bias = bias == null ? _none.View : W(bias).F, Y = T(y).F,
            Rows = rows, InDim = ww.Cols, OutDim = ww.Rows, Type = (int)ww.Type, HasBias = bias == null ? 0 : 1, RowBytes = ww.Type.RowBytes(ww.Cols),
        };
        if (!GroupKernels) Implicit("matmul-per-element", MatMulIlgpu.PerElement, rows * ww.Rows, args);
        else if (rows == 1) Launch("matvec", MatMulIlgpu.MatVec, ww.Rows, _group, args);
        else
        {
            int t = MatMulIlgpu.Tile;
            Launch("matmul-tiled", MatMulIlgpu.Tiled, (rows + t - 1) / t * ((ww.Rows + t - 1) / t), t * t, args);
        }
    }

    public void Rope(DeviceTensor x, int rows, int heads, ReadOnlySpan<int> positions, RopeTable rope)
    {
        if (!_ropeTables.TryGetValue(rope, out var inv))
        {
            inv = _acc.Allocate1D(rope.InvFreq);
            _ropeTables[rope] = inv;
        }
        var k = Kernel("rope", () => _acc.LoadAutoGroupedStreamKernel<Index1D, RopeArgs>(RopeIlgpu.Apply));
        k(rows * heads * (rope.HeadDim / 2), new RopeArgs
        {
            X = T(x).F, Positions = Ints(positions[..rows]), InvFreq = inv.View, Heads = heads, HeadDim = rope.HeadDim,
            Interleaved = rope.Layout == RopeLayout.Interleaved ? 1 : 0,
        });
        _launches++;
    }

    public void StoreKv(DeviceTensor k, DeviceTensor v, KvCache cache, int layer, int start, int rows)
    {
        var kern = Kernel("store-kv", () => _acc.LoadAutoGroupedStreamKernel<Index1D, KvArgs>(MemoryIlgpu.StoreKv));
        kern(rows * cache.KvDim, new KvArgs
        {
            K = T(k).F, V = T(v).F, CacheK = T(cache.K).View, CacheV = T(cache.V).View, F16 = cache.K.IsF16 ? 1 : 0,
            Offset = ((long)layer * cache.ContextLength + start) * cache.KvDim,
        });
        _launches++;
    }

    public void Attention(DeviceTensor q, KvCache cache, int layer, int start, int rows, DeviceTensor output, AttentionShape s, int branch = 0)
    {
        if (s.HeadDim > AttentionIlgpu.MaxHeadDim) throw new DeviceException($"head dimension {s.HeadDim} exceeds the ILGPU attention kernel's {AttentionIlgpu.MaxHeadDim}");
        var args = new AttentionArgs
        {
            Q = T(q).F, Out = T(output).F, K = T(cache.K).View, V = T(cache.V).View, Partial = _none.View,
            LayerOffset = (long)layer * cache.ContextLength * cache.KvDim, F16 = cache.K.IsF16 ? 1 : 0, Start = start,
            Heads = s.Heads, KvHeads = s.KvHeads, HeadDim = s.HeadDim, Branch = branch, Scale = s.Scale,
        };
        if (!GroupKernels) Implicit("attention-per-query", AttentionIlgpu.PerQuery, rows * s.Heads, args);
        else if (rows == 1 && branch == 0)
        {
            int chunks = (start + 1 + DecodeChunk - 1) / DecodeChunk;
            args.Chunk = DecodeChunk; args.Chunks = chunks;
            args.Partial = Scratch((long)s.Heads * chunks * (s.HeadDim + 2));
            Launch("attention-decode-partial", AttentionIlgpu.DecodePartial, s.Heads * chunks, AttentionIlgpu.Threads, args);
            Launch("attention-decode-merge", AttentionIlgpu.DecodeMerge, s.Heads, AttentionIlgpu.Threads, args);
        }
        else Launch("attention-prefill", AttentionIlgpu.Prefill, rows * s.Heads, AttentionIlgpu.Threads, args);
    }

    public void CopyKv(KvCache cache, int src, int dst, int count)
    {
        if (count <= 0) return;
        long rowHalves = (long)cache.KvDim * (cache.K.IsF16 ? 1 : 2);
        var k = Kernel("copy-kv", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<ushort>, ArrayView<ushort>, long, long, long, long, long>(MemoryIlgpu.CopyKv));
        long perLayer = count * rowHalves;
        k((int)(cache.Layers * perLayer), T(cache.K).View.Cast<ushort>(), T(cache.V).View.Cast<ushort>(), cache.ContextLength * rowHalves, rowHalves, src, dst, perLayer);
        _launches++;
    }

    public void SiluMul(DeviceTensor gate, DeviceTensor up, int rows)
    {
        var k = Kernel("silu-mul", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ActivationIlgpu.SiluMul));
        k(rows * gate.Cols, T(gate).F, T(up).F);
        _launches++;
    }

    public void Gelu(DeviceTensor x, int rows)
    {
        var k = Kernel("gelu", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>>(ActivationIlgpu.GeluTanh));
        k(rows * x.Cols, T(x).F);
        _launches++;
    }

    public void Add(DeviceTensor x, DeviceTensor y, int rows)
    {
        var k = Kernel("add", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ActivationIlgpu.Add));
        k(rows * x.Cols, T(x).F, T(y).F);
        _launches++;
    }

    public void CopyRows(DeviceTensor src, int srcRow, DeviceTensor dst, int dstRow, int rows)
    {
        var k = Kernel("copy", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, long, ArrayView<int>, long>(MemoryIlgpu.Copy));
        k(rows * src.Cols, T(src).View.Cast<int>(), (long)srcRow * src.Cols, T(dst).View.Cast<int>(), (long)dstRow * dst.Cols);
        _launches++;
    }

    public void Read(DeviceTensor t, int row, int rows, Span<float> dst)
    {
        _acc.Synchronize();
        long n = (long)rows * t.Cols;
        T(t).F.SubView((long)row * t.Cols, n).CopyToCPU(ref MemoryMarshal.GetReference(dst), n);
    }

    public void Synchronize() => _acc.Synchronize();

    public SoftmaxStats SoftmaxEntropy(DeviceTensor logits, int row, float temperature, int token)
    {
        int n = logits.Cols;
        int groups = Math.Clamp((n + 4095) / 4096, 1, 64);
        var partial = Scratch(groups * 4L);
        Launch("softmax-entropy", SoftmaxEntropyIlgpu.Compute, groups, _group, new SoftmaxEntropyArgs
        {
            Logits = T(logits).F.SubView((long)row * n, n), Partial = partial.SubView(0, groups * 3L), PartialIdx = _ints.View.SubView(0, groups),
            Counter = _counter.View, Result = _resultFloats.View, ResultIdx = _resultInts.View, N = n, Token = token, Groups = groups,
            InvTemperature = 1f / temperature,
        });
        _acc.Synchronize();
        var r = new float[4];
        _resultFloats.CopyToCPU(r);
        var idx = new int[4];
        _resultInts.CopyToCPU(idx);
        return new SoftmaxStats(r[0], r[1], r[2], r[3], idx[0]);
    }

    public Verdict VerifyDrafts(DeviceTensor p, DeviceTensor q, ReadOnlySpan<int> drafts, ReadOnlySpan<double> uniforms, bool greedy, bool multi, bool withoutReplacement)
    {
        int vocab = p.Cols;
        using var u = _acc.Allocate1D<double>(Math.Max(1, uniforms.Length));
        u.View.SubView(0, uniforms.Length).CopyFromCPU(ref MemoryMarshal.GetReference(uniforms), uniforms.Length);
        var args = new DraftVerifyArgs
        {
            P = T(p).F, Q = T(q).F, Draft = Ints(drafts), Uniforms = u.View, Residual = Scratch(vocab).SubView(0, vocab),
            Result = _resultInts.View, K = drafts.Length, Vocab = vocab, Greedy = greedy ? 1 : 0, WithoutReplacement = withoutReplacement ? 1 : 0,
        };
        if (multi) Launch("draft-rrs", DraftVerifyIlgpu.RecursiveReject, 1, _group, args);
        else Launch("draft-verify", DraftVerifyIlgpu.Verify, 1, _group, args);
        _acc.Synchronize();
        var r = new int[4];
        _resultInts.CopyToCPU(r);
        return new Verdict(r[0], r[1], r[2]);
    }

    public void Dispose()
    {
        foreach (var b in _ropeTables.Values) b.Dispose();
        _ints.Dispose(); _scratch.Dispose(); _none.Dispose(); _counter.Dispose(); _resultInts.Dispose(); _resultFloats.Dispose();
        _acc.Dispose();
        _context.Dispose();
    }
}

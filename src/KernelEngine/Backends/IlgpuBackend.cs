using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Activation;
using KernelEngine.Kernels.Attention;
using KernelEngine.Kernels.DraftVerify;
using KernelEngine.Kernels.Ilgpu;
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
internal sealed unsafe class IlgpuBackend : IBackend
{
    /// <summary>What every session of one model shares: the device, the compiled kernels, RoPE tables and settings.
    /// Ops are issued under <see cref="Gate"/> (one op's upload, launches and read-back are never interleaved with
    /// another session's, and the accelerator is bound to the issuing thread).</summary>
    private sealed class SharedDevice : IDisposable
    {
        public required Context Context;
        public required Accelerator Acc;
        public readonly Dictionary<string, Delegate> Kernels = new();
        public readonly Lock Gate = new();
        public long Launches;
        public bool GroupKernels;
        /// <summary>Lanes of a warp can exchange values (CUDA, the CPU accelerator; OpenCL with sub-groups): the warp kernels run.</summary>
        public bool WarpShuffles;
        public int DecodeChunk = 256;
        public bool Disposed;

        public void Dispose()
        {
            if (Disposed) return;
            Disposed = true;
            Acc.Dispose();
            Context.Dispose();
        }
    }

    private readonly SharedDevice _s;
    private readonly bool _ownsDevice;
    private readonly Context _context;
    private readonly Accelerator _acc;
    // Per-session scratch: ids and positions uploaded for a launch, attention partials, reduction results.
    private MemoryBuffer1D<int, Stride1D.Dense> _ints;
    private MemoryBuffer1D<float, Stride1D.Dense> _scratch;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _none;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _counter;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _resultInts;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _resultFloats;
    private MemoryBuffer1D<double, Stride1D.Dense>? _uniforms;   // draft verification's uniforms (grown, kept)
    private bool _disposed;

    /// <summary>
    /// Threads per group of the reduction kernels (a power of two up to DeviceMath.GroupSize): 128 on GPUs; one warp
    /// on ILGPU's CPU accelerator, where every simulated thread is an OS thread and each barrier a context switch.
    /// </summary>
    private readonly int _group;

    /// <summary>
    /// Use the group (shared-memory) kernels for MatMul, norms and attention. On by default on GPUs; off on the CPU
    /// accelerator, which then runs the barrier-free v0 kernels (one thread per output, row or query); tests turn it
    /// on to check the GPU kernels on the simulator. Shared by every session of the backend.
    /// </summary>
    public bool GroupKernels { get => _s.GroupKernels; set => _s.GroupKernels = value; }

    /// <summary>Positions per Flash-Decoding chunk.</summary>
    public int DecodeChunk { get => _s.DecodeChunk; set => _s.DecodeChunk = value; }

    /// <param name="index">which device of the kind (cuda:1 is the second CUDA device)</param>
    /// <param name="groupThreads">threads per group of the reduction kernels (0: the kind's default; tests give the CPU
    /// accelerator a GPU's 128 to run the multi-warp reductions)</param>
    public IlgpuBackend(DeviceKind kind, int index = 0, int groupThreads = 0)
    {
        var context = Context.Create(b => b.Default().EnableAlgorithms().Optimize(OptimizationLevel.O1));
        Accelerator acc;
        try
        {
            acc = kind switch
            {
                DeviceKind.IlgpuCpu => new CPUDevice(32, 8, 1).CreateAccelerator(context),
                DeviceKind.Cuda => (context.Devices.Where(d => d.AcceleratorType == AcceleratorType.Cuda).ElementAtOrDefault(index)
                    ?? throw new DeviceException(index == 0 ? "cuda: no CUDA device found (is the NVIDIA driver installed?)"
                        : $"cuda:{index}: there are {context.Devices.Count(d => d.AcceleratorType == AcceleratorType.Cuda)} CUDA devices")).CreateAccelerator(context),
                DeviceKind.OpenCL => (context.Devices.Where(d => d.AcceleratorType == AcceleratorType.OpenCL).ElementAtOrDefault(index)
                    ?? throw new DeviceException(index == 0 ? "opencl: no OpenCL device found"
                        : $"opencl:{index}: there are {context.Devices.Count(d => d.AcceleratorType == AcceleratorType.OpenCL)} OpenCL devices")).CreateAccelerator(context),
                _ => throw new DeviceException($"{kind} is not an ILGPU device"),
            };
        }
        catch (Exception e)
        {
            context.Dispose();
            if (e is DeviceException) throw;
            throw new DeviceException($"{kind}: cannot create the accelerator ({e.Message})", e);
        }
        _s = new SharedDevice
        {
            Context = context, Acc = acc, GroupKernels = kind != DeviceKind.IlgpuCpu,
            // ILGPU 1.5.3 emits OpenCL shuffles through Intel's sub-group extension only
            WarpShuffles = acc is not ILGPU.Runtime.OpenCL.CLAccelerator cl || cl.Vendor == ILGPU.Runtime.OpenCL.CLDeviceVendor.Intel && cl.Capabilities.SubGroups,
        };
        _ownsDevice = true;
        _context = context; _acc = acc;
        _group = groupThreads > 0 ? groupThreads : kind == DeviceKind.IlgpuCpu ? 32 : Kernels.Ilgpu.DeviceMath.GroupSize;
        if (_group > Kernels.Ilgpu.DeviceMath.GroupSize || (_group & (_group - 1)) != 0 || _group < _acc.WarpSize)
        {
            _s.Dispose();
            throw new ArgumentOutOfRangeException(nameof(groupThreads), groupThreads, $"a power of two from the warp ({_acc.WarpSize}) to {Kernels.Ilgpu.DeviceMath.GroupSize}");
        }
        Device = new DeviceInfo(kind, _acc.Name, _acc.MemorySize, $"warp {_acc.WarpSize}, max group {_acc.MaxNumThreadsPerGroup}, {_acc.NumMultiprocessors} multiprocessors");
        try { (_ints, _scratch, _none, _counter, _resultInts, _resultFloats) = AllocateScratch(); }
        catch { _s.Dispose(); throw; }
    }

    /// <summary>A session's backend over the same device (see <see cref="IBackend.ForSession"/>).</summary>
    private IlgpuBackend(IlgpuBackend parent)
    {
        _s = parent._s; _context = parent._context; _acc = parent._acc; _group = parent._group; Device = parent.Device;
        using (Enter()) (_ints, _scratch, _none, _counter, _resultInts, _resultFloats) = AllocateScratch();
    }

    public IBackend ForSession() => new IlgpuBackend(this);

    private (MemoryBuffer1D<int, Stride1D.Dense>, MemoryBuffer1D<float, Stride1D.Dense>, MemoryBuffer1D<float, Stride1D.Dense>,
        MemoryBuffer1D<int, Stride1D.Dense>, MemoryBuffer1D<int, Stride1D.Dense>, MemoryBuffer1D<float, Stride1D.Dense>) AllocateScratch()
    {
        var all = new List<MemoryBuffer>();
        T Add<T>(T b) where T : MemoryBuffer { all.Add(b); return b; }
        try
        {
            var ints = Add(_acc.Allocate1D<int>(1024));
            var scratch = Add(_acc.Allocate1D<float>(4096));
            var none = Add(_acc.Allocate1D<float>(1));
            // [0]: softmax-entropy's groups; [1 + h]: decode attention's chunks of head h
            var counter = Add(_acc.Allocate1D<int>(1 + 2 * AttentionIlgpu.MaxHeads));   // [0] reductions, then decode heads, then fused KV units
            counter.MemSetToZero();
            return (ints, scratch, none, counter, Add(_acc.Allocate1D<int>(4)), Add(_acc.Allocate1D<float>(4)));
        }
        catch (Exception e)
        {
            foreach (var b in all) b.Dispose();
            if (e is AcceleratorException or OutOfMemoryException) throw new DeviceException($"{Device.Id}: out of device memory allocating session scratch", e);
            throw;
        }
    }

    /// <summary>Takes the device for one op: no other session's op interleaves with it, and the accelerator is bound to this thread.</summary>
    private Lock.Scope Enter()
    {
        var scope = _s.Gate.EnterScope();
        if (_disposed || _s.Disposed)
        {
            scope.Dispose();
            throw new ObjectDisposedException(nameof(IlgpuBackend));
        }
        _acc.Bind();
        return scope;
    }

    public DeviceInfo Device { get; }
    public Accelerator Accelerator => _acc;
    /// <summary>Kernel launches so far (a decode step's count is the difference around it).</summary>
    public long Launches => Interlocked.Read(ref _s.Launches);

    private sealed class Tensor : DeviceTensor
    {
        public MemoryBuffer1D<byte, Stride1D.Dense>? Buffer;
        private readonly Lock _gate;
        private readonly Tensor? _parent;   // a view (IBackend.RowView): rows of this tensor, from _offset bytes
        private readonly long _offset;
        public Tensor(MemoryBuffer1D<byte, Stride1D.Dense> b, int rows, int cols, WeightType type, Lock gate) : base(rows, cols, type) { Buffer = b; _gate = gate; }
        public Tensor(Tensor parent, int row, int rows) : base(rows, parent.Cols, parent.Type)
        {
            _parent = parent; _offset = row * parent.RowBytes; _gate = parent._gate;
        }
        public ArrayView<byte> View => _parent != null ? _parent.View.SubView(_offset, Bytes)
            : (Buffer ?? throw new ObjectDisposedException("device tensor")).View;
        public ArrayView<float> F => View.Cast<float>();
        public override void Dispose() { if (_parent != null) return; using (_gate.EnterScope()) { Buffer?.Dispose(); Buffer = null; } }
    }

    private sealed class Weight : DeviceWeight
    {
        public MemoryBuffer1D<byte, Stride1D.Dense>? Buffer;
        private readonly Lock _gate;
        /// <summary>Bytes of a row on the device (<see cref="DeviceWeightLayout"/>).</summary>
        public readonly long RowBytes;
        public Weight(HostWeight h, MemoryBuffer1D<byte, Stride1D.Dense> b, Lock gate) : base(h.Name, h.Rows, h.Cols, h.Type)
        {
            Buffer = b; _gate = gate; RowBytes = DeviceWeightLayout.RowBytes(h.Type, h.Cols);
        }
        public ArrayView<byte> View => (Buffer ?? throw new ObjectDisposedException(Name)).View;
        public ArrayView<float> F => View.Cast<float>();
        public override void Dispose() { using (_gate.EnterScope()) { Buffer?.Dispose(); Buffer = null; } }
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

    public DeviceTensor Allocate(int rows, int cols, WeightType type = WeightType.F32)
    {
        if (type is not (WeightType.F32 or WeightType.F16)) throw new InvalidRequestException($"{Device.Id}: tensors of {type.Name()} are CPU only (KV cache types here: f32, f16)");
        using var held = Enter();
        var b = AllocateBytes(rows * type.RowBytes(cols), $"a ({rows}, {cols}) tensor");
        b.MemSetToZero();
        return new Tensor(b, rows, cols, type, _s.Gate);
    }

    public DeviceTensor RowView(DeviceTensor t, int row, int rows)
    {
        if (t.Type != WeightType.F32 || row < 0 || rows < 1 || row + rows > t.Rows)
            throw new ArgumentOutOfRangeException(nameof(row), $"rows {row}..{row + rows - 1} of a ({t.Rows}, {t.Cols}) {t.Type.Name()} tensor");
        return new Tensor(T(t), row, rows);
    }

    public DeviceWeight Upload(HostWeight weight)
    {
        using var held = Enter();
        if (!weight.Type.Format().DeviceReadable)
            throw new DeviceException($"{Device.Id}: weight '{weight.Name}' is {weight.Type.Name()}, which the ILGPU kernels do not read yet (use --device cpu)");
        if (DeviceWeightLayout.IsRepacked(weight.Type)) return UploadRepacked(weight);
        var b = AllocateBytes(weight.Bytes, $"weight '{weight.Name}'");
        if (weight.Bytes > 0) b.View.SubView(0, weight.Bytes).CopyFromCPU(ref Unsafe.AsRef<byte>(weight.Data), weight.Bytes);   // native memory: never moves
        return new Weight(weight, b, _s.Gate);
    }

    /// <summary>Q8_0/Q4_0 rewritten into the device layout a chunk of rows at a time (a bounded host buffer).</summary>
    private Weight UploadRepacked(HostWeight weight)
    {
        long rowBytes = DeviceWeightLayout.RowBytes(weight.Type, weight.Cols), fileRowBytes = weight.Type.RowBytes(weight.Cols);
        var b = AllocateBytes(weight.Rows * rowBytes, $"weight '{weight.Name}'");
        try
        {
            int chunk = (int)Math.Max(1, Math.Min(weight.Rows, (8L << 20) / rowBytes));
            var host = GC.AllocateUninitializedArray<byte>((int)(chunk * rowBytes), pinned: true);
            fixed (byte* dst = host)
                for (int r0 = 0; r0 < weight.Rows; r0 += chunk)
                {
                    int n = Math.Min(chunk, weight.Rows - r0);
                    for (int r = 0; r < n; r++)
                        DeviceWeightLayout.RepackRow((byte*)weight.Data + (r0 + r) * fileRowBytes, dst + r * rowBytes, weight.Type, weight.Cols);
                    HostCopy.ToDevice(b.View.SubView(r0 * rowBytes, n * rowBytes), host.AsSpan(0, (int)(n * rowBytes)));
                }
        }
        catch { b.Dispose(); throw; }
        return new Weight(weight, b, _s.Gate);
    }

    private TDelegate Kernel<TDelegate>(string name, Func<TDelegate> load) where TDelegate : Delegate
    {
        lock (_s.Kernels)
        {
            if (!_s.Kernels.TryGetValue(name, out var d)) _s.Kernels[name] = d = load();
            return (TDelegate)d;
        }
    }

    private Action<KernelConfig, TArgs> Explicit<TArgs>(string name, Action<TArgs> kernel) where TArgs : struct =>
        Kernel(name, () => _acc.LoadStreamKernel(kernel));

    private void Launch<TArgs>(string name, Action<TArgs> kernel, int groups, int groupSize, TArgs args) where TArgs : struct
    {
        if (groups <= 0) return;
        Explicit(name, kernel)(new KernelConfig(groups, groupSize), args);
        Interlocked.Increment(ref _s.Launches);
    }

    private ArrayView<int> Ints(ReadOnlySpan<int> values)
    {
        if (_ints.Length < values.Length) { _ints.Dispose(); _ints = _acc.Allocate1D<int>(values.Length * 2); }
        var view = _ints.View.SubView(0, values.Length);
        HostCopy.ToDevice(view, values);
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
        using var held = Enter();
        var w = W(table);
        foreach (int id in ids)
            if ((uint)id >= (uint)w.Rows) throw new InvalidRequestException($"{w.Name}: row {id} is outside (0..{w.Rows - 1})");
        var k = Kernel("embed", () => _acc.LoadAutoGroupedStreamKernel<Index1D, EmbedArgs>(MemoryIlgpu.Embed));
        k(ids.Length * w.Cols, new EmbedArgs { Table = w.View, Ids = Ints(ids), X = T(x).F, Type = (int)w.Type, Dim = w.Cols, Add = add, RowBytes = w.RowBytes });
        Interlocked.Increment(ref _s.Launches);
    }

    public void RmsNorm(DeviceTensor x, DeviceWeight weight, DeviceTensor y, int rows, float eps)
    {
        using var held = Enter();
        var args = new NormArgs { X = T(x).F, W = W(weight).F, B = _none.View, Y = T(y).F, Dim = x.Cols, Eps = eps };
        if (GroupKernels) Launch("rmsnorm", NormIlgpu.RmsNorm, rows, _group, args);
        else Implicit("rmsnorm-per-row", NormIlgpu.RmsNormPerRow, rows, args);
    }

    public void RmsNormHeads(DeviceTensor x, DeviceWeight weight, int rows, int heads, float eps)
    {
        using var held = Enter();
        var args = new NormArgs { X = T(x).F, W = W(weight).F, B = _none.View, Y = T(x).F, Dim = x.Cols / heads, Eps = eps };
        if (GroupKernels) Launch("rmsnorm", NormIlgpu.RmsNorm, rows * heads, _group, args);
        else Implicit("rmsnorm-per-row", NormIlgpu.RmsNormPerRow, rows * heads, args);
    }

    public void LayerNorm(DeviceTensor x, DeviceWeight weight, DeviceWeight bias, DeviceTensor y, int rows, float eps)
    {
        using var held = Enter();
        var args = new NormArgs { X = T(x).F, W = W(weight).F, B = W(bias).F, Y = T(y).F, Dim = x.Cols, Eps = eps };
        if (GroupKernels) Launch("layernorm", NormIlgpu.LayerNorm, rows, _group, args);
        else Implicit("layernorm-per-row", NormIlgpu.LayerNormPerRow, rows, args);
    }

    private void Implicit<TArgs>(string name, Action<Index1D, TArgs> kernel, int threads, TArgs args) where TArgs : struct
    {
        if (threads <= 0) return;
        Kernel(name, () => _acc.LoadAutoGroupedStreamKernel(kernel))(threads, args);
        Interlocked.Increment(ref _s.Launches);
    }

    public void MatMul(DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor y, int rows)
    {
        using var held = Enter();
        var ww = W(w);
        if (x.Cols != ww.Cols || y.Cols != ww.Rows)
            throw new InvalidOperationException($"{ww.Name}: matmul shape mismatch x (.., {x.Cols}) w ({ww.Rows}, {ww.Cols}) y (.., {y.Cols})");
        var args = new MatMulArgs
        {
            X = T(x).F, W = ww.View, Bias = bias == null ? _none.View : W(bias).F, Y = T(y).F,
            Rows = rows, InDim = ww.Cols, OutDim = ww.Rows, Type = (int)ww.Type, HasBias = bias == null ? 0 : 1, RowBytes = ww.RowBytes,
        };
        if (!GroupKernels) Implicit("matmul-per-element", MatMulIlgpu.PerElement, rows * ww.Rows, args);
        else if (WarpMatVec(rows, [w])) LaunchWarp(x, Part(w, bias, y), default, default, WarpMatVecIlgpu.Store);
        else if (rows == 1) Launch("matvec", MatMulIlgpu.MatVec, ww.Rows, _group, args);
        else
        {
            int t = MatMulIlgpu.Block;
            Launch("matmul-tiled", MatMulIlgpu.Tiled, (rows + t - 1) / t * ((ww.Rows + t - 1) / t), MatMulIlgpu.Threads, args);
        }
    }

    /// <summary>q, k, v (or gate, up) in one launch when the warp kernel takes them all.</summary>
    public void MatMul(DeviceTensor x, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias, ReadOnlySpan<DeviceTensor> y, int rows)
    {
        if (TryWarp(x, w, bias, y, rows, WarpMatVecIlgpu.Store)) return;
        for (int i = 0; i < w.Length; i++) MatMul(x, w[i], bias[i], y[i], rows);
    }

    /// <summary>residual += x · wᵀ + bias, the add in the matvec's epilogue (decode).</summary>
    public void MatMulAdd(DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor scratch, DeviceTensor residual, int rows)
    {
        if (!TryWarp(x, [w], [bias], [residual], rows, WarpMatVecIlgpu.Accumulate)) IBackend.MatMulAddUnfused(this, x, w, bias, scratch, residual, rows);
    }

    /// <summary>gate = act(x · gateᵀ) · (x · upᵀ + upBias) in one launch (decode): a warp computes row i of both.</summary>
    public void GatedMatMul(DeviceTensor x, DeviceWeight gate, DeviceWeight up, DeviceWeight? upBias, DeviceTensor gateOut, DeviceTensor upOut, int rows, bool gelu)
    {
        if (!TryWarp(x, [gate, up], [null, upBias], [gateOut, upOut], rows, Gated(gelu)))
            IBackend.GatedMatMulUnfused(this, x, gate, up, upBias, gateOut, upOut, rows, gelu);
    }

    public void NormMatMul(DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias,
        ReadOnlySpan<DeviceTensor> y, int rows)
    {
        if (!TryWarp(x, w, bias, y, rows, WarpMatVecIlgpu.Store, norm, eps)) IBackend.NormMatMulUnfused(this, x, norm, eps, normed, w, bias, y, rows);
    }

    public void NormGatedMatMul(DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, DeviceWeight gate, DeviceWeight up, DeviceWeight? upBias,
        DeviceTensor gateOut, DeviceTensor upOut, int rows, bool gelu)
    {
        if (!TryWarp(x, [gate, up], [null, upBias], [gateOut, upOut], rows, Gated(gelu), norm, eps))
            IBackend.NormGatedMatMulUnfused(this, x, norm, eps, normed, gate, up, upBias, gateOut, upOut, rows, gelu);
    }

    private static int Gated(bool gelu) => gelu ? WarpMatVecIlgpu.GeluGate : WarpMatVecIlgpu.SiluGate;

    /// <summary>Runs up to three weights that read x as one warp-matvec launch with this epilogue (and the RMSNorm prologue
    /// when <paramref name="norm"/> is given); false when the kernel does not take them (then the caller runs the ops).</summary>
    private bool TryWarp(DeviceTensor x, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias, ReadOnlySpan<DeviceTensor> y, int rows, int epilogue,
        DeviceWeight? norm = null, float eps = 0)
    {
        if (w.Length > 3 || !WarpMatVec(rows, w) || !Fits(x, w, y) || norm != null && !NormFits(x, norm)) return false;
        if (epilogue >= WarpMatVecIlgpu.SiluGate && w[0].Rows != w[1].Rows) return false;   // a warp computes row i of both
        using var held = Enter();
        LaunchWarp(x, Part(w[0], bias[0], y[0]), w.Length > 1 ? Part(w[1], bias[1], y[1]) : default, w.Length > 2 ? Part(w[2], bias[2], y[2]) : default,
            epilogue, norm, eps);
        return true;
    }

    /// <summary>The norm's weights are F32 of x's width (the prologue reads them as 128-bit vectors).</summary>
    private static bool NormFits(DeviceTensor x, DeviceWeight norm) => norm.Type == WeightType.F32 && norm.Rows * norm.Cols == x.Cols && x.Cols % 4 == 0;

    /// <summary>A CUDA device's nominal bandwidth (2 · memory clock · bus width) and FP32 peak (SMs · clock · FP32 lanes per
    /// SM · 2: 64 lanes on sm_80, 128 on later); null for other devices or when <paramref name="backend"/> is not ILGPU's.</summary>
    public static Benchmarking.DevicePeak? NominalPeak(IBackend backend)
    {
        if ((backend is ProfilingBackend p ? p.Inner : backend) is not IlgpuBackend g || g._acc.Device is not ILGPU.Runtime.Cuda.CudaDevice d) return null;
        double gbps = 2.0 * d.MemoryClockRate * 1e3 * d.MemoryBusWidth / 8 / 1e9;
        int lanes = d.Architecture is { } a && a.Major == 8 && a.Minor == 0 ? 64 : 128;
        double gflops = (double)d.NumMultiprocessors * d.ClockRate * 1e3 * lanes * 2 / 1e9;
        return new Benchmarking.DevicePeak(gbps, gflops, "nominal (driver clocks)");
    }

    /// <summary>Whether the warp-per-row kernel takes these weights for this many rows (decode, on a device that shuffles).</summary>
    private bool WarpMatVec(int rows, ReadOnlySpan<DeviceWeight> w)
    {
        if (rows != 1 || !GroupKernels || !_s.WarpShuffles) return false;
        foreach (var m in w)
            if (m.Cols != w[0].Cols || !WarpMatVecIlgpu.Supports(m.Type, m.Cols)) return false;
        return true;
    }

    private static bool Fits(DeviceTensor x, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceTensor> y)
    {
        for (int i = 0; i < w.Length; i++)
            if (x.Cols != w[i].Cols || y[i].Cols != w[i].Rows)
                throw new InvalidOperationException($"{w[i].Name}: matmul shape mismatch x (.., {x.Cols}) w ({w[i].Rows}, {w[i].Cols}) y (.., {y[i].Cols})");
        return true;
    }

    private WarpPart Part(DeviceWeight w, DeviceWeight? bias, DeviceTensor y) => new()
    {
        W = W(w).View, Bias = bias == null ? _none.View : W(bias).F, Y = T(y).F, Rows = w.Rows, Type = (int)w.Type,
        HasBias = bias == null ? 0 : 1, RowBytes = W(w).RowBytes,
    };

    /// <summary>One warp per output row over the parts' rows (gated: over the gate's rows).</summary>
    private void LaunchWarp(DeviceTensor x, WarpPart p0, WarpPart p1, WarpPart p2, int epilogue, DeviceWeight? norm = null, float eps = 0)
    {
        const int warps = WarpMatVecIlgpu.WarpsPerGroup;
        int rows = epilogue >= WarpMatVecIlgpu.SiluGate ? p0.Rows : p0.Rows + p1.Rows + p2.Rows;
        Launch("matvec-warp", WarpMatVecIlgpu.Run, (rows + warps - 1) / warps, warps * _acc.WarpSize, new WarpMatVecArgs
        {
            X = T(x).F, P0 = p0, P1 = p1, P2 = p2, InDim = x.Cols, Epilogue = epilogue,
            NormW = norm == null ? _none.View : W(norm).F, Norm = norm == null ? 0 : 1, Eps = eps,
        });
    }

    public void Rope(DeviceTensor x, int rows, int heads, ReadOnlySpan<int> positions, RopeTable rope)
    {
        using var held = Enter();
        var k = Kernel("rope", () => _acc.LoadAutoGroupedStreamKernel<Index1D, RopeArgs>(RopeIlgpu.Apply));
        k(rows * heads * rope.InvFreq.Length, RopeArgsOf(x, rows, heads, positions, rope));
        Interlocked.Increment(ref _s.Launches);
    }

    public void RopeStoreKv(DeviceTensor q, DeviceTensor k, DeviceTensor v, int rows, int heads, int kvHeads, ReadOnlySpan<int> positions, RopeTable rope,
        KvCache cache, int layer, int start)
    {
        using var held = Enter();
        var kern = Kernel("rope-store-kv", () => _acc.LoadAutoGroupedStreamKernel<Index1D, RopeStoreArgs>(RopeIlgpu.ApplyAndStore));
        int pairs = rope.InvFreq.Length;
        kern(rows * (heads * pairs + kvHeads * pairs + cache.KvDim), new RopeStoreArgs
        {
            Q = RopeArgsOf(q, rows, heads, positions, rope), K = T(k).F, V = T(v).F, CacheK = T(cache.K).View, CacheV = T(cache.V).View,
            KvHeads = kvHeads, CacheF16 = cache.K.IsF16 ? 1 : 0, CacheOffset = (cache.PositionRow(layer) + start) * cache.KvDim,
        });
        Interlocked.Increment(ref _s.Launches);
    }

    private RopeArgs RopeArgsOf(DeviceTensor x, int rows, int heads, ReadOnlySpan<int> positions, RopeTable rope) => new()
    {
        X = T(x).F, CosSin = Angles(positions[..rows], rope.InvFreq, rope.MScale), Rows = rows, Heads = heads,
        HeadDim = rope.HeadDim, Pairs = rope.InvFreq.Length, Interleaved = rope.Layout == RopeLayout.Interleaved ? 1 : 0,
    };

    /// <summary>cos and sin (times <paramref name="mscale"/>) of position · θ_i for every position and pair
    /// (<see cref="RopeAngles"/>, formed once per forward pass), uploaded with the launch: (positions, pairs, 2).</summary>
    private ArrayView<float> Angles(ReadOnlySpan<int> positions, float[] invFreq, float mscale) =>
        Ints(MemoryMarshal.Cast<float, int>(RopeAngles.For(positions, invFreq, mscale).AsSpan(0, 2 * positions.Length * invFreq.Length))).Cast<float>();

    public void StoreKv(DeviceTensor k, DeviceTensor v, KvCache cache, int layer, int start, int rows)
    {
        using var held = Enter();
        var kern = Kernel("store-kv", () => _acc.LoadAutoGroupedStreamKernel<Index1D, KvArgs>(MemoryIlgpu.StoreKv));
        kern(rows * cache.KvDim, new KvArgs
        {
            K = T(k).F, V = T(v).F, CacheK = T(cache.K).View, CacheV = T(cache.V).View, F16 = cache.K.IsF16 ? 1 : 0,
            Offset = (cache.PositionRow(layer) + start) * cache.KvDim,
        });
        Interlocked.Increment(ref _s.Launches);
    }

    public void Attention(DeviceTensor q, KvCache cache, int layer, int start, int rows, DeviceTensor output, AttentionShape s, int branch = 0)
    {
        using var held = Enter();
        if (s.HeadDim > AttentionIlgpu.MaxHeadDim) throw new DeviceException($"head dimension {s.HeadDim} exceeds the ILGPU attention kernel's {AttentionIlgpu.MaxHeadDim}");
        var args = AttentionArgsOf(q, cache, layer, start, output, s, branch);
        if (!GroupKernels) Implicit("attention-per-query", AttentionIlgpu.PerQuery, rows * s.Heads, args);
        else if (rows == 1 && branch == 0)
        {
            int positions = s.Window > 0 ? Math.Min(start + 1, s.Window) : start + 1;
            int chunks = (positions + DecodeChunk - 1) / DecodeChunk;
            args.Chunk = DecodeChunk; args.Chunks = chunks;
            args.Partial = Scratch((long)s.Heads * chunks * (s.HeadDim + 2));
            if (s.Heads > AttentionIlgpu.MaxHeads) throw new DeviceException($"{s.Heads} attention heads exceed the ILGPU decode kernel's {AttentionIlgpu.MaxHeads}");
            args.Counter = _counter.View.SubView(1, s.Heads);
            if (_s.WarpShuffles) Launch("attention-decode-warp", AttentionIlgpu.DecodeWarp, s.Heads * chunks, _acc.WarpSize, args);
            else Launch("attention-decode", AttentionIlgpu.Decode, s.Heads * chunks, AttentionIlgpu.Threads, args);
        }
        else if (_s.WarpShuffles && branch == 0 && s.HeadDim <= PrefillAttentionIlgpu.MaxHeadDim)
        {
            const int warps = PrefillAttentionIlgpu.Warps;
            args.Rows = rows;
            Launch("attention-prefill-tiled", PrefillAttentionIlgpu.Run, s.Heads * ((rows + warps - 1) / warps), warps * _acc.WarpSize, args);
        }
        else Launch("attention-prefill", AttentionIlgpu.Prefill, rows * s.Heads, AttentionIlgpu.Threads, args);
    }

    /// <summary>NormMatMul, RopeStoreKv and Attention of one decode token as one launch (<see cref="FusedDecodeAttentionIlgpu"/>),
    /// where the warp matvec takes q/k/v and the head dimension is a multiple of its warps per group; past one
    /// flash-decoding chunk of keys the launch stops after the KV store and the split kernel attends (two launches).</summary>
    public bool TryDecodeAttention(DeviceTensor x, DeviceWeight norm, float eps, ReadOnlySpan<DeviceWeight> qkv, ReadOnlySpan<DeviceWeight?> bias,
        ReadOnlySpan<DeviceTensor> y, ReadOnlySpan<int> positions, RopeTable rope, KvCache cache, int layer, int start, DeviceTensor output, AttentionShape s)
    {
        int visible = s.Window > 0 ? Math.Min(start + 1, s.Window) : start + 1;
        if (qkv.Length != 3 || positions.Length != 1 || !WarpMatVec(1, qkv) || !Fits(x, qkv, y) || !NormFits(x, norm)
            || s.HeadDim % WarpMatVecIlgpu.WarpsPerGroup != 0 || s.KvHeads > AttentionIlgpu.MaxHeads || s.HeadDim > AttentionIlgpu.MaxHeadDim
            || rope.HeadDim != s.HeadDim || qkv[0].Rows != s.Heads * s.HeadDim || qkv[1].Rows != s.KvHeads * s.HeadDim || qkv[2].Rows != qkv[1].Rows)
            return false;
        const int warps = WarpMatVecIlgpu.WarpsPerGroup;
        using (Enter())
        {
            var m = new WarpMatVecArgs
            {
                X = T(x).F, P0 = Part(qkv[0], bias[0], y[0]), P1 = Part(qkv[1], bias[1], y[1]), P2 = Part(qkv[2], bias[2], y[2]), InDim = x.Cols,
                Epilogue = WarpMatVecIlgpu.Store, NormW = W(norm).F, Norm = 1, Eps = eps,
            };
            Launch("attention-fused", FusedDecodeAttentionIlgpu.Run, (qkv[0].Rows + 2 * qkv[1].Rows) / warps, warps * _acc.WarpSize, new FusedAttentionArgs
            {
                M = m, Rope = RopeArgsOf(y[0], 1, s.Heads, positions, rope), Att = AttentionArgsOf(y[0], cache, layer, start, output, s, 0),
                Counter = _counter.View.SubView(1 + AttentionIlgpu.MaxHeads, s.KvHeads), Attend = visible <= DecodeChunk ? 1 : 0,
            });
        }
        // past one chunk of keys the split kernel attends (the launch above stopped after the KV store)
        if (visible > DecodeChunk) Attention(y[0], cache, layer, start, 1, output, s);
        return true;
    }

    private AttentionArgs AttentionArgsOf(DeviceTensor q, KvCache cache, int layer, int start, DeviceTensor output, AttentionShape s, int branch) => new()
    {
        Q = T(q).F, Out = T(output).F, K = T(cache.K).View, V = T(cache.V).View, Partial = _none.View,
        LayerOffset = cache.PositionRow(layer) * cache.KvDim, F16 = cache.K.IsF16 ? 1 : 0, Start = start,
        Heads = s.Heads, KvHeads = s.KvHeads, HeadDim = s.HeadDim, Branch = branch, Scale = s.Scale, Window = s.Window, SoftCap = s.SoftCap,
    };

    public void CopyKv(KvCache cache, int src, int dst, int count, KvLayers layers = KvLayers.All) =>
        CopyPositions(cache, src, cache, dst, count, layers);

    public void CopyKvPrefix(KvCache from, KvCache to, int count, int start = 0)
    {
        from.CheckPrefixCopy(to, count, start);
        CopyPositions(from, start, to, start, count - start, KvLayers.All);
    }

    /// <summary>Positions [src, src + count) of one cache to [dst, dst + count) of another (or the same), per layer of the
    /// set: one launch per layer, as layers hold different numbers of rows once sliding-window layers hold only their window.</summary>
    private void CopyPositions(KvCache from, int src, KvCache to, int dst, int count, KvLayers layers)
    {
        using var held = Enter();
        if (count <= 0) return;
        long rowHalves = (long)from.KvDim * (from.K.IsF16 ? 1 : 2);
        var k = Kernel("copy-kv", () => _acc.LoadAutoGroupedStreamKernel<Index1D, CopyKvArgs>(MemoryIlgpu.CopyKv));
        for (int l = 0; l < from.Layers; l++)
        {
            if (!from.Includes(layers, l)) continue;
            k((int)(count * rowHalves), new CopyKvArgs(T(from.K).View.Cast<ushort>(), T(from.V).View.Cast<ushort>(),
                T(to.K).View.Cast<ushort>(), T(to.V).View.Cast<ushort>(), (from.PositionRow(l) + src) * rowHalves, (to.PositionRow(l) + dst) * rowHalves));
            Interlocked.Increment(ref _s.Launches);
        }
    }

    public void RotateKeys(KvCache cache, int position, int count, int delta, RopeTable rope, KvLayers layers = KvLayers.All)
    {
        using var held = Enter();
        if (count <= 0) return;
        int pairs = rope.InvFreq.Length;
        var cosSin = Angles([delta], rope.InvFreq, 1f);   // RopeCpu.RotateRows: plain cos/sin of the shift
        var k = Kernel("rotate-keys", () => _acc.LoadAutoGroupedStreamKernel<Index1D, RotateCacheArgs>(RopeIlgpu.RotateCache));
        var cacheK = T(cache.K).View;
        bool f16 = cache.K.IsF16;
        for (int l = 0; l < cache.Layers; l++)
        {
            if (!cache.Includes(layers, l)) continue;
            k(count * (cache.KvDim / rope.HeadDim) * pairs, new RotateCacheArgs
            {
                F32 = f16 ? cacheK.Cast<float>().SubView(0, 1) : cacheK.Cast<float>(), F16 = f16 ? cacheK.Cast<ushort>() : cacheK.Cast<ushort>().SubView(0, 1),
                CosSin = cosSin, Offset = (cache.PositionRow(l) + position) * cache.KvDim,
                HeadDim = rope.HeadDim, Interleaved = rope.Layout == RopeLayout.Interleaved ? 1 : 0, IsF16 = f16 ? 1 : 0, Pairs = pairs,
            });
            Interlocked.Increment(ref _s.Launches);
        }
    }

    public void SiluMul(DeviceTensor gate, DeviceTensor up, int rows)
    {
        using var held = Enter();
        var k = Kernel("silu-mul", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ActivationIlgpu.SiluMul));
        k(rows * gate.Cols, T(gate).F, T(up).F);
        Interlocked.Increment(ref _s.Launches);
    }

    public void Gelu(DeviceTensor x, int rows)
    {
        using var held = Enter();
        var k = Kernel("gelu", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>>(ActivationIlgpu.GeluTanh));
        k(rows * x.Cols, T(x).F);
        Interlocked.Increment(ref _s.Launches);
    }

    public void GeluMul(DeviceTensor gate, DeviceTensor up, int rows)
    {
        using var held = Enter();
        var k = Kernel("gelu-mul", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ActivationIlgpu.GeluMul));
        k(rows * gate.Cols, T(gate).F, T(up).F);
        Interlocked.Increment(ref _s.Launches);
    }

    public void Scale(DeviceTensor x, int rows, float factor)
    {
        using var held = Enter();
        var k = Kernel("scale", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, float>(ActivationIlgpu.Scale));
        k(rows * x.Cols, T(x).F, factor);
        Interlocked.Increment(ref _s.Launches);
    }

    public void SoftCap(DeviceTensor x, int rows, float cap)
    {
        using var held = Enter();
        var k = Kernel("softcap", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, float>(ActivationIlgpu.SoftCap));
        k(rows * x.Cols, T(x).F, cap);
        Interlocked.Increment(ref _s.Launches);
    }

    public void Add(DeviceTensor x, DeviceTensor y, int rows)
    {
        using var held = Enter();
        var k = Kernel("add", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(ActivationIlgpu.Add));
        k(rows * x.Cols, T(x).F, T(y).F);
        Interlocked.Increment(ref _s.Launches);
    }

    public void CopyRows(DeviceTensor src, int srcRow, DeviceTensor dst, int dstRow, int rows)
    {
        using var held = Enter();
        var k = Kernel("copy", () => _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<int>, long, ArrayView<int>, long>(MemoryIlgpu.Copy));
        k(rows * src.Cols, T(src).View.Cast<int>(), (long)srcRow * src.Cols, T(dst).View.Cast<int>(), (long)dstRow * dst.Cols);
        Interlocked.Increment(ref _s.Launches);
    }

    public void Read(DeviceTensor t, int row, int rows, Span<float> dst)
    {
        using var held = Enter();
        _acc.Synchronize();
        long n = (long)rows * t.Cols;
        if (t.IsF16)
        {
            var halves = new System.Half[n];
            HostCopy.ToHost(T(t).View.Cast<ushort>().SubView((long)row * t.Cols, n), MemoryMarshal.Cast<System.Half, ushort>(halves.AsSpan()));
            System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(halves, dst);
            return;
        }
        HostCopy.ToHost(T(t).F.SubView((long)row * t.Cols, n), dst[..(int)n]);
    }

    public void Synchronize()
    {
        using var held = Enter();
        _acc.Synchronize();
    }

    public SoftmaxStats SoftmaxEntropy(DeviceTensor logits, int row, float temperature, int token)
    {
        using var held = Enter();
        int n = logits.Cols;
        int groups = Math.Clamp((n + 4095) / 4096, 1, 64);
        var partial = Scratch(groups * 4L);
        bool warp = _s.WarpShuffles;   // groups hold whole warps (the constructor's check)
        Launch(warp ? "softmax-entropy-warp" : "softmax-entropy", warp ? SoftmaxEntropyIlgpu.ComputeWarp : SoftmaxEntropyIlgpu.Compute, groups, _group, new SoftmaxEntropyArgs
        {
            Logits = T(logits).F.SubView((long)row * n, n), Partial = partial.SubView(0, groups * 3L), PartialIdx = _ints.View.SubView(0, groups),
            Counter = _counter.View, Result = _resultFloats.View, ResultIdx = _resultInts.View, N = n, Token = token, Groups = groups,
            InvTemperature = 1f / temperature,
        });
        _acc.Synchronize();
        Span<float> r = stackalloc float[4];
        HostCopy.ToHost(_resultFloats.View.SubView(0, 4), r);
        Span<int> argMax = stackalloc int[1];
        HostCopy.ToHost(_resultInts.View.SubView(0, 1), argMax);
        return new SoftmaxStats(r[0], r[1], r[2], r[3], argMax[0]);
    }

    public Verdict VerifyDrafts(DeviceTensor p, DeviceTensor q, ReadOnlySpan<int> drafts, ReadOnlySpan<double> uniforms, bool greedy, bool multi, bool withoutReplacement)
    {
        using var held = Enter();
        int vocab = p.Cols;
        if (_uniforms == null || _uniforms.Length < Math.Max(1, uniforms.Length))   // kept: speculative decoding verifies every step
        {
            _uniforms?.Dispose();
            _uniforms = _acc.Allocate1D<double>(Math.Max(16, 2 * uniforms.Length));
        }
        var u = _uniforms;
        if (!uniforms.IsEmpty) HostCopy.ToDevice(u.View.SubView(0, uniforms.Length), uniforms);
        var args = new DraftVerifyArgs
        {
            P = T(p).F, Q = T(q).F, Draft = drafts.IsEmpty ? _ints.View.SubView(0, 1) : Ints(drafts), Uniforms = u.View, Residual = Scratch(vocab).SubView(0, vocab),
            Result = _resultInts.View, K = drafts.Length, Vocab = vocab, Greedy = greedy ? 1 : 0, WithoutReplacement = withoutReplacement ? 1 : 0,
        };
        bool warp = _s.WarpShuffles;   // groups hold whole warps (the constructor's check)
        if (multi) Launch(warp ? "draft-rrs-warp" : "draft-rrs", warp ? DraftVerifyIlgpu.RecursiveRejectWarp : DraftVerifyIlgpu.RecursiveReject, 1, _group, args);
        else Launch(warp ? "draft-verify-warp" : "draft-verify", warp ? DraftVerifyIlgpu.VerifyWarp : DraftVerifyIlgpu.Verify, 1, _group, args);
        _acc.Synchronize();
        Span<int> r = stackalloc int[3];
        HostCopy.ToHost(_resultInts.View.SubView(0, 3), r);
        return new Verdict(r[0], r[1], r[2]);
    }

    /// <summary>Frees this backend's scratch; the backend that created the device also frees the device, its kernels and
    /// every buffer still allocated on it (ILGPU disposes an accelerator's buffers with it).</summary>
    public void Dispose()
    {
        using (_s.Gate.EnterScope())
        {
            if (_disposed) return;
            _disposed = true;
            if (!_s.Disposed)
            {
                _ints.Dispose(); _scratch.Dispose(); _none.Dispose(); _counter.Dispose(); _resultInts.Dispose(); _resultFloats.Dispose();
                _uniforms?.Dispose();
            }
            if (_ownsDevice) _s.Dispose();
        }
    }
}

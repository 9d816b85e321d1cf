using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Activation;
using KernelEngine.Kernels.Attention;
using KernelEngine.Kernels.DraftVerify;
using KernelEngine.Kernels.SoftmaxEntropy;
using KernelEngine.Kernels.MatMul;
using KernelEngine.Kernels.Memory;
using KernelEngine.Kernels.Norm;
using KernelEngine.Kernels.Rope;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Backends;

/// <summary>
/// The CPU backend: hand-vectorized C# kernels from <c>kernels/</c> on a persistent worker pool. Weights are
/// used in place (memory-mapped safetensors, no copy); activations live in 64-byte aligned native memory.
/// Ops run synchronously, so <see cref="Read"/> never waits.
/// </summary>
internal sealed unsafe class CpuBackend : IBackend
{
    private readonly WorkerPool _pool;
    private readonly bool _copyWeights;
    private readonly bool _ownsPool;

    /// <summary>GeGLU through ggml's fp16 GELU table (<see cref="ActivationCpu.GeluMulLikeGgml"/>): set only by tests that
    /// compare with llama.cpp.</summary>
    internal bool GeluLikeGgml { get; set; }

    /// <param name="copyWeights">copy F32/F16/BF16 weights of 2 MiB and more into huge-page memory instead of reading
    /// them in place (see <see cref="ModelOptions.CopyWeights"/>)</param>
    /// <param name="ownsPool">dispose <paramref name="pool"/> with this backend (a pool made for <see cref="ModelOptions.Threads"/>)</param>
    public CpuBackend(WorkerPool? pool = null, bool copyWeights = false, bool ownsPool = false)
    {
        _pool = pool ?? WorkerPool.Shared;
        _ownsPool = ownsPool && pool != null;
        _copyWeights = copyWeights;
        Device = Describe(_pool.Threads);
    }

    public DeviceInfo Device { get; }
    public WorkerPool Pool => _pool;

    public static DeviceInfo Describe(int threads)
    {
        // What runs, not only what the CPU has: the runtime's DOTNET_EnableAVX512=0 / DOTNET_EnableAVX2=0 narrow both.
        var caps = new List<string> { $"{threads} threads", KernelEngine.Kernels.Simd.SimdLevel.Current switch
        {
            KernelEngine.Kernels.Simd.SimdLevel.Width.Scalar => "scalar kernels",
            var w => $"{(int)w}-bit kernels",
        } };
        if (Avx512F.IsSupported) caps.Add("avx512f");
        if (Avx512BW.IsSupported) caps.Add("avx512bw");
        if (Avx512Vbmi.IsSupported) caps.Add("avx512vbmi");
        if (AvxVnni.IsSupported) caps.Add("avxvnni");
        if (Avx2.IsSupported) caps.Add("avx2");
        if (Fma.IsSupported) caps.Add("fma");
        if (Sse41.IsSupported && Ssse3.IsSupported) caps.Add("sse4.1");
        if (System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported) caps.Add("neon");
        if (System.Runtime.Intrinsics.Arm.Dp.IsSupported) caps.Add("dotprod");
        long memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return new DeviceInfo(DeviceKind.Cpu, $"{RuntimeInformation.ProcessArchitecture} CPU (SIMD C#)", memory, string.Join(", ", caps));
    }

    private sealed class Tensor : DeviceTensor
    {
        public void* Data;
        private readonly long _allocated;
        /// <summary>The memory file of a shareable tensor (<see cref="SharedPages"/>), else -1.</summary>
        public readonly int Fd = -1;
        public Tensor(int rows, int cols, WeightType type, bool shareable = false) : base(rows, cols, type)
        {
            try
            {
                if (shareable)
                {
                    _allocated = Math.Max(SharedPages.PageBytes, (Bytes + SharedPages.PageBytes - 1) / SharedPages.PageBytes * SharedPages.PageBytes);
                    Data = SharedPages.Alloc(_allocated, "ke-kv", out Fd);
                }
                else
                {
                    _allocated = Math.Max(64, Bytes);
                    Data = ZeroPages.Alloc(_allocated);
                }
            }
            catch (OutOfMemoryException e) { throw new DeviceException($"cpu: out of memory allocating a ({rows}, {cols}) tensor of {Bytes} bytes", e); }
        }
        /// <summary>A view of rows of another tensor: owns nothing (<see cref="IBackend.RowView"/>).</summary>
        public Tensor(void* data, int rows, int cols) : base(rows, cols, WeightType.F32)
        {
            Data = data;
            GC.SuppressFinalize(this);
        }
        public float* F => (float*)Data;
        public override void Dispose()
        {
            Free();
            Data = null;
            GC.SuppressFinalize(this);
        }
        ~Tensor() => Free();
        private void Free()
        {
            if (Data == null || _allocated <= 0) return;
            if (Fd >= 0) SharedPages.Free((byte*)Data, _allocated, Fd);
            else ZeroPages.Free(Data, _allocated);
        }
    }

    private sealed class Weight : DeviceWeight
    {
        public readonly byte* Data;
        private HostWeight? _host; // keeps owned host arrays alive; mapped files are owned by the model
        private byte* _copy;  // dense weights copied into huge-page memory (Data points here), or null
        public byte* Packed;  // Q8_0/Q4_0: the PackedQuant layout the kernels read, native memory freed on Dispose
        public readonly int HalfShift;  // F16 copies: the weights times 2^HalfShift (HalfPrescale: no subnormal halves)
        public Weight(HostWeight h, bool copy) : base(h.Name, h.Rows, h.Cols, h.Type)
        {
            Data = h.Data; _host = h;
            try
            {
                if (h.GatherOnly) { }   // an untied embedding: its rows are read from the file as they are needed
                else if (h.Type.HasPackedCpuDecode()) Packed = PackedQuant.Pack(h.Data, h.Type, h.Rows, h.Cols);
                else if (copy && h.Bytes >= 2L << 20)
                {
                    _copy = HugePages.Alloc(h.Bytes);
                    if (h.Type == WeightType.F16)
                    {
                        long n = h.Bytes / 2;
                        HalfShift = HalfPrescale.ChooseShift((ushort*)h.Data, n);
                        HalfPrescale.Copy((ushort*)h.Data, (ushort*)_copy, n, HalfShift);
                    }
                    else Buffer.MemoryCopy(h.Data, _copy, h.Bytes, h.Bytes);
                    Data = _copy;
                    _host = null; // the mapped file (or array) is no longer read
                }
                // The kernels read the copy or the repacked layout: the file's pages need not stay resident too (an
                // embedding gather reads its few rows back from the file).
                if ((Packed != null || _copy != null) && h.IsFileMapped) MappedPages.Release(h.Data, h.Bytes);
            }
            catch (OutOfMemoryException e) { throw new DeviceException($"cpu: out of memory preparing {h.Name} ({h.Rows}, {h.Cols}) {h.Type}", e); }
        }
        public float* F => (float*)Data;
        public override void Dispose()
        {
            _host = null;
            if (Packed != null) { PackedQuant.Free(Packed); Packed = null; }
            if (_copy != null) { HugePages.Free(_copy); _copy = null; }
            GC.SuppressFinalize(this);
        }
        ~Weight()
        {
            if (Packed != null) PackedQuant.Free(Packed);
            if (_copy != null) HugePages.Free(_copy);
        }
    }

    private static Tensor T(DeviceTensor t) => (Tensor)t;
    private static Weight W(DeviceWeight w) => (Weight)w;

    public DeviceTensor Allocate(int rows, int cols, WeightType type = WeightType.F32) => new Tensor(rows, cols, type);
    public bool SupportsKvCache(WeightType type, int headDim) => KvRows.Supports(type, headDim);
    public DeviceWeight Upload(HostWeight weight) => new Weight(weight, _copyWeights);

    public DeviceTensor RowView(DeviceTensor t, int row, int rows)
    {
        if (t.Type != WeightType.F32 || row < 0 || rows < 1 || row + rows > t.Rows)
            throw new ArgumentOutOfRangeException(nameof(row), $"rows {row}..{row + rows - 1} of a ({t.Rows}, {t.Cols}) {t.Type.Name()} tensor");
        return new Tensor(T(t).F + (long)row * t.Cols, rows, t.Cols);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Embed(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x)
    {
        _ops++;
        EmbedRows(table, ids, x, add: false);
    }
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void AddEmbed(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x)
    {
        _ops++;
        EmbedRows(table, ids, x, add: true);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void EmbedRows(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x, bool add)
    {
        var w = W(table);
        long rowBytes = w.Type.RowBytes(w.Cols);
        Span<float> scratch = add ? (w.Cols <= 8192 ? stackalloc float[w.Cols] : new float[w.Cols]) : default;
        for (int r = 0; r < ids.Length; r++)
        {
            int id = ids[r];
            if ((uint)id >= (uint)w.Rows) throw new InvalidRequestException($"{w.Name}: row {id} is outside (0..{w.Rows - 1})");
            float* dst = T(x).F + (long)r * x.Cols;
            if (!add) Widen(w, id, rowBytes, dst);
            else
                fixed (float* s = scratch)
                {
                    Widen(w, id, rowBytes, s);
                    TensorPrimitives.Add(new ReadOnlySpan<float>(dst, w.Cols), new ReadOnlySpan<float>(s, w.Cols), new Span<float>(dst, w.Cols));
                }
        }
    }

    /// <summary>Row id of a weight table as F32 (undoing an F16 copy's prescale, exactly).</summary>
    private static void Widen(Weight w, int id, long rowBytes, float* dst)
    {
        RowConvert.ToF32(w.Data + id * rowBytes, w.Type, w.Cols, dst);
        if (w.HalfShift != 0)
            TensorPrimitives.Multiply(new ReadOnlySpan<float>(dst, w.Cols), HalfPrescale.Unscale(w.HalfShift), new Span<float>(dst, w.Cols));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void RmsNorm(DeviceTensor x, DeviceWeight weight, DeviceTensor y, int rows, float eps)
    {
        _ops++;
        NormCpu.RmsNorm(_pool, T(x).F, W(weight).F, T(y).F, rows, x.Cols, eps);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void RmsNormHeads(DeviceTensor x, DeviceWeight weight, int rows, int heads, float eps)
    {
        _ops++;
        NormCpu.RmsNorm(_pool, T(x).F, W(weight).F, T(x).F, rows * heads, x.Cols / heads, eps);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void LayerNorm(DeviceTensor x, DeviceWeight weight, DeviceWeight bias, DeviceTensor y, int rows, float eps)
    {
        _ops++;
        NormCpu.LayerNorm(_pool, T(x).F, W(weight).F, W(bias).F, T(y).F, rows, x.Cols, eps);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatMul(DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor y, int rows)
    {
        _ops++;
        var ww = W(w);
        if (x.Cols != ww.Cols || y.Cols != ww.Rows)
            throw new InvalidOperationException($"{ww.Name}: matmul shape mismatch x (.., {x.Cols}) w ({ww.Rows}, {ww.Cols}) y (.., {y.Cols})");
        MatMulCpu.MatMul(_pool, T(x).F, rows, ww.Cols, ww.Data, ww.Type, ww.Rows, bias == null ? null : W(bias).F, T(y).F, ww.Packed, ww.HalfShift);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatMul(DeviceTensor x, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias, ReadOnlySpan<DeviceTensor> y, int rows)
    {
        if (rows > MatVecCpu.MaxRows || w.Length > MatVecCpu.MaxParts)
        {
            for (int i = 0; i < w.Length; i++) MatMul(x, w[i], bias[i], y[i], rows);
            return;
        }
        Product(x, w, bias, y, rows, default);
    }

    /// <summary>One decode launch: the products of x with each of <paramref name="w"/> and the ops <paramref name="fused"/> names.</summary>
    private void Product(DeviceTensor x, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias, ReadOnlySpan<DeviceTensor> y, int rows,
        in MatVecFusion fused)
    {
        _ops++;
        Span<MatVecPart> parts = stackalloc MatVecPart[w.Length];
        Parts(x, w, bias, y, parts);
        MatVecCpu.MatVec(_pool, T(x).F, x.Cols, parts, rows, fused);
    }

    /// <summary>The parts of a fused decode product, shapes checked.</summary>
    private static void Parts(DeviceTensor x, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias, ReadOnlySpan<DeviceTensor> y, Span<MatVecPart> parts)
    {
        for (int i = 0; i < w.Length; i++)
        {
            var ww = W(w[i]);
            if (x.Cols != ww.Cols || y[i].Cols != ww.Rows)
                throw new InvalidOperationException($"{ww.Name}: matmul shape mismatch x (.., {x.Cols}) w ({ww.Rows}, {ww.Cols}) y (.., {y[i].Cols})");
            parts[i] = new MatVecPart
            {
                W = ww.Data, Type = ww.Type, OutDim = ww.Rows, Bias = bias[i] is { } b ? W(b).F : null, Y = T(y[i]).F,
                Packed = ww.Packed, HalfShift = ww.HalfShift,
            };
        }
    }

    /// <summary>Decode: the RMSNorm runs inside the product's launch, each row normed by the task that prepares its
    /// activations (exactly <see cref="RmsNorm"/>'s rows); prefill and more parts than one launch takes: norm, then product.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void NormMatMul(DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias,
        ReadOnlySpan<DeviceTensor> y, int rows)
    {
        if (rows > MatVecCpu.MaxRows || w.Length > MatVecCpu.MaxParts || W(norm).Cols != x.Cols)
        {
            IBackend.NormMatMulUnfused(this, x, norm, eps, normed, w, bias, y, rows);
            return;
        }
        Product(x, w, bias, y, rows, new MatVecFusion { NormWeight = W(norm).F, NormEps = eps, Normed = T(normed).F });
    }

    /// <summary>Decode: residual += x · wᵀ + bias in the product's launch, each task adding the rows it computed (bit for
    /// bit <see cref="MatMul(DeviceTensor, DeviceWeight, DeviceWeight?, DeviceTensor, int)"/> then <see cref="Add"/>;
    /// <paramref name="scratch"/> holds the product); prefill: the two ops.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void MatMulAdd(DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor scratch, DeviceTensor residual, int rows)
    {
        var ww = W(w);
        if (rows > MatVecCpu.MaxRows || residual.Cols != ww.Rows || (ww.Type.HasPackedCpuDecode() && ww.Packed == null))
        {
            IBackend.MatMulAddUnfused(this, x, w, bias, scratch, residual, rows);
            return;
        }
        Product(x, [w], [bias], [scratch], rows, new MatVecFusion { Residual = T(residual).F });
    }

    /// <summary>Decode: norm, gate and up products and act(gate)·up in one launch, each task applying the activation to
    /// the rows it computed (<see cref="MatVecCpu.CanGate"/>); otherwise op by op.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void NormGatedMatMul(DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, DeviceWeight gate, DeviceWeight up, DeviceWeight? upBias,
        DeviceTensor gateOut, DeviceTensor upOut, int rows, bool gelu)
    {
        if (rows <= MatVecCpu.MaxRows && !(gelu && GeluLikeGgml) && MatVecCpu.CanGate(W(gate).Rows, W(up).Rows))
        {
            Product(x, [gate, up], [null, upBias], [gateOut, upOut], rows, new MatVecFusion
            {
                NormWeight = W(norm).F, NormEps = eps, Normed = T(normed).F, Gated = gelu ? &ActivationCpu.GeluMul : &ActivationCpu.SiluMul,
            });
            return;
        }
        NormMatMul(x, norm, eps, normed, [gate, up], [null, upBias], [gateOut, upOut], rows);
        if (gelu) GeluMul(gateOut, upOut, rows); else SiluMul(gateOut, upOut, rows);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Rope(DeviceTensor x, int rows, int heads, ReadOnlySpan<int> positions, RopeTable rope)
    {
        _ops++;
        fixed (float* cosSin = RopeAngles.For(positions[..rows], rope.InvFreq, rope.MScale))
            RopeCpu.Apply(T(x).F, rows, heads, rope.HeadDim, cosSin, rope.Layout, rope.InvFreq.Length);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void StoreKv(DeviceTensor k, DeviceTensor v, KvCache cache, int layer, int start, int rows)
    {
        _ops++;
        long element = (cache.PositionRow(layer) + start) * cache.KvDim;
        int n = rows * cache.KvDim;
        cache.Rows.Store(T(k).F, T(cache.K).Data, element, n);
        cache.Rows.Store(T(v).F, T(cache.V).Data, element, n);
    }

    /// <summary>One sequence's part of <see cref="AttentionRows"/>, as raw pointers (a pool task cannot hold references).</summary>
    private struct SequenceAttention
    {
        public float* Q, K, V, Out;
        public float* CosSin;            // the row's RoPE angles (pairs, 2), or null: no rotation
        public byte* CacheK, CacheV;     // this layer's position 0
        public long Element;             // where the new row goes, in elements from the layer's position 0
        public KvRows Rows;
        public int KvDim, Position;
    }

    private struct AttentionRowsJob
    {
        public SequenceAttention* Rows;
        public WorkerPool Pool;
        public AttentionShape Shape;
        public RopeLayout Layout;
        public int RopeHeadDim, RopePairs;
    }

    public bool RotatesInAttentionRows => true;

    /// <summary>The sequences' rows in parallel, each on one thread: its RoPE, its KV store, then its attention's own launch,
    /// which runs inline with the split it gets alone (the split depends on the pool's size, not on who runs it), so each
    /// row is computed exactly as a single decode step computes it.</summary>
    public void AttentionRows(IReadOnlyList<SequenceRow> rows, IReadOnlyList<KvCache> caches, ReadOnlySpan<int> positions, int layer, AttentionShape shape,
        RopeTable? rope = null)
    {
        _ops++;
        int n = positions.Length;
        var parts = stackalloc SequenceAttention[n];
        // every layer rotates by the same positions: the thread's table is formed once per step
        float[]? angles = rope == null ? null : RopeAngles.For(positions, rope.InvFreq, rope.MScale);
        fixed (float* cosSin = angles)
        {
            for (int r = 0; r < n; r++)
            {
                var c = caches[r];
                long layerRow = c.PositionRow(layer);
                parts[r] = new SequenceAttention
                {
                    Q = T(rows[r].Q).F, K = T(rows[r].K).F, V = T(rows[r].V).F, Out = T(rows[r].Att).F,
                    CosSin = rope == null ? null : cosSin + 2L * r * rope.InvFreq.Length,
                    CacheK = (byte*)T(c.K).Data + layerRow * c.K.RowBytes, CacheV = (byte*)T(c.V).Data + layerRow * c.V.RowBytes,
                    Element = (long)positions[r] * c.KvDim, Rows = c.Rows, KvDim = c.KvDim, Position = positions[r],
                };
            }
            var job = new AttentionRowsJob
            {
                Rows = parts, Pool = _pool, Shape = shape, Layout = rope?.Layout ?? default,
                RopeHeadDim = rope?.HeadDim ?? 0, RopePairs = rope?.InvFreq.Length ?? 0,
            };
            // a GC handle is not needed: the job lives on this stack frame until For returns
            _pool.For(n, &AttentionRowsTask, Unsafe.AsPointer(ref job));
        }
    }

    private static void AttentionRowsTask(void* ctx, int r)
    {
        ref var job = ref Unsafe.AsRef<AttentionRowsJob>(ctx);
        ref var p = ref job.Rows[r];
        var s = job.Shape;
        if (p.CosSin != null)
        {
            RopeCpu.Apply(p.Q, 1, s.Heads, job.RopeHeadDim, p.CosSin, job.Layout, job.RopePairs);
            RopeCpu.Apply(p.K, 1, s.KvHeads, job.RopeHeadDim, p.CosSin, job.Layout, job.RopePairs);
        }
        p.Rows.Store(p.K, p.CacheK, p.Element, p.KvDim);
        p.Rows.Store(p.V, p.CacheV, p.Element, p.KvDim);
        AttentionCpu.Causal(job.Pool, p.Q, p.CacheK, p.CacheV, p.Rows, p.Out, 1, p.Position, s.Heads, s.KvHeads, s.HeadDim, s.Scale, 0, s.Window, s.SoftCap);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Attention(DeviceTensor q, KvCache cache, int layer, int start, int rows, DeviceTensor output, AttentionShape s, int branch = 0)
    {
        _ops++;
        long layerBytes = cache.PositionRow(layer) * cache.K.RowBytes;
        AttentionCpu.Causal(_pool, T(q).F, (byte*)T(cache.K).Data + layerBytes, (byte*)T(cache.V).Data + layerBytes, cache.Rows, T(output).F,
            rows, start, s.Heads, s.KvHeads, s.HeadDim, s.Scale, branch, s.Window, s.SoftCap);
    }

    public void RotateKeys(KvCache cache, int position, int count, int delta, RopeTable rope, KvLayers layers = KvLayers.All)
    {
        _ops++;
        var k = T(cache.K);
        fixed (float* f = rope.InvFreq)
            for (int l = 0; l < cache.Layers; l++)
            {
                if (!cache.Includes(layers, l)) continue;
                byte* rows = (byte*)k.Data + (cache.PositionRow(l) + position) * k.RowBytes;
                RopeCpu.RotateRows(rows, cache.Rows, count, cache.KvDim / rope.HeadDim, rope.HeadDim, delta, f, rope.Layout, rope.InvFreq.Length);
            }
    }

    public void CopyKv(KvCache cache, int src, int dst, int count, KvLayers layers = KvLayers.All)
    {
        _ops++;
        CopyPositions(cache, src, cache, dst, count, layers);
    }

    public int KvShareGranuleBytes => SharedPages.IsSupported ? SharedPages.PageBytes : 0;

    public DeviceTensor AllocateShareable(int rows, int cols, WeightType type) => new Tensor(rows, cols, type, shareable: true);

    public void MapKv(KvCache owner, KvCache to, int start, int end)
    {
        _ops++;
        if (owner.MapGranule == 0 || to.MappablePositions(owner, end) < end || start < 0 || start % to.MapGranule != 0)
            throw new ArgumentException($"positions [{start}, {end}) cannot be mapped between these KV caches");
        long rowBytes = to.K.RowBytes, bytes = (end - start) * rowBytes;
        for (int kv = 0; kv < 2; kv++)
        {
            Tensor o = T(kv == 0 ? owner.K : owner.V), t = T(kv == 0 ? to.K : to.V);
            for (int l = 0; l < to.Layers; l++)
            {
                long target = (to.PositionRow(l) + start) * rowBytes, source = (owner.PositionRow(l) + start) * rowBytes;
                SharedPages.MapFrom((byte*)t.Data + target, t.Fd, target, o.Fd, source, bytes);
            }
        }
    }

    public void UnmapKv(KvCache cache, int start, int end)
    {
        _ops++;
        long rowBytes = cache.K.RowBytes, bytes = (end - start) * rowBytes;
        for (int kv = 0; kv < 2; kv++)
        {
            Tensor t = T(kv == 0 ? cache.K : cache.V);
            for (int l = 0; l < cache.Layers; l++)
            {
                long target = (cache.PositionRow(l) + start) * rowBytes;
                SharedPages.MapOwn((byte*)t.Data + target, t.Fd, target, bytes);
            }
        }
    }

    public void CopyKvPrefix(KvCache from, KvCache to, int count, int start = 0)
    {
        _ops++;
        from.CheckPrefixCopy(to, count, start);
        CopyPositions(from, start, to, start, count - start, KvLayers.All);
    }

    /// <summary>Positions [src, src + count) of one cache to [dst, dst + count) of another (or the same), per layer of the set.</summary>
    private static void CopyPositions(KvCache from, int src, KvCache to, int dst, int count, KvLayers layers)
    {
        long rowBytes = from.K.RowBytes;
        for (int kv = 0; kv < 2; kv++)
        {
            byte* f = (byte*)T(kv == 0 ? from.K : from.V).Data, t = (byte*)T(kv == 0 ? to.K : to.V).Data;
            for (int l = 0; l < from.Layers; l++)
            {
                if (!from.Includes(layers, l)) continue;
                Buffer.MemoryCopy(f + (from.PositionRow(l) + src) * rowBytes, t + (to.PositionRow(l) + dst) * rowBytes, count * rowBytes, count * rowBytes);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void SiluMul(DeviceTensor gate, DeviceTensor up, int rows)
    {
        _ops++;
        ActivationCpu.SiluMul(_pool, T(gate).F, T(up).F, (long)rows * gate.Cols);
    }
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void GeluMul(DeviceTensor gate, DeviceTensor up, int rows)
    {
        _ops++;
        if (GeluLikeGgml) ActivationCpu.GeluMulLikeGgml(T(gate).F, T(up).F, (long)rows * gate.Cols);
        else ActivationCpu.GeluMul(_pool, T(gate).F, T(up).F, (long)rows * gate.Cols);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Scale(DeviceTensor x, int rows, float factor)
    {
        _ops++;
        ActivationCpu.Scale(T(x).F, (long)rows * x.Cols, factor);
    }
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void SoftCap(DeviceTensor x, int rows, float cap)
    {
        _ops++;
        ActivationCpu.SoftCap(T(x).F, (long)rows * x.Cols, cap);
    }
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Gelu(DeviceTensor x, int rows)
    {
        _ops++;
        ActivationCpu.GeluTanh(T(x).F, (long)rows * x.Cols);
    }
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Add(DeviceTensor x, DeviceTensor y, int rows)
    {
        _ops++;
        ActivationCpu.Add(T(x).F, T(y).F, (long)rows * x.Cols);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void CopyRows(DeviceTensor src, int srcRow, DeviceTensor dst, int dstRow, int rows)
    {
        _ops++;
        new ReadOnlySpan<float>(T(src).F + (long)srcRow * src.Cols, rows * src.Cols).CopyTo(new Span<float>(T(dst).F + (long)dstRow * dst.Cols, rows * dst.Cols));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Read(DeviceTensor t, int row, int rows, Span<float> dst)
    {
        if (dst.Length < rows * t.Cols) throw new ArgumentException($"{rows} rows of {t.Cols} do not fit {dst.Length} floats", nameof(dst));
        if (t.Type == WeightType.F32) { new ReadOnlySpan<float>(T(t).F + (long)row * t.Cols, rows * t.Cols).CopyTo(dst); return; }
        fixed (float* d = dst) new KvRows(t.Type).Widen(T(t).Data, (long)row * t.Cols, rows * t.Cols, d);   // a KV cache's rows
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public SoftmaxStats SoftmaxEntropy(DeviceTensor logits, int row, float temperature, int token)
    {
        _ops++;
        return SoftmaxEntropyCpu.Compute(new ReadOnlySpan<float>(T(logits).F + (long)row * logits.Cols, logits.Cols), temperature, token);
    }

    private struct SoftmaxRowsJob { public float* Logits; public int Cols; public float Temperature; public SoftmaxStats* Stats; }

    public void SoftmaxEntropyRows(DeviceTensor logits, float temperature, Span<SoftmaxStats> stats)
    {
        _ops++;
        fixed (SoftmaxStats* out_ = stats)
        {
            var job = new SoftmaxRowsJob { Logits = T(logits).F, Cols = logits.Cols, Temperature = temperature, Stats = out_ };
            _pool.For(stats.Length, &SoftmaxRowsTask, &job, (long)stats.Length * logits.Cols * 4);
        }
    }

    private static void SoftmaxRowsTask(void* ctx, int r)
    {
        ref var j = ref Unsafe.AsRef<SoftmaxRowsJob>(ctx);
        j.Stats[r] = SoftmaxEntropyCpu.Compute(new ReadOnlySpan<float>(j.Logits + (long)r * j.Cols, j.Cols), j.Temperature, -1);
    }

    public Verdict VerifyDrafts(DeviceTensor p, DeviceTensor q, ReadOnlySpan<int> drafts, ReadOnlySpan<double> uniforms, bool greedy, bool multi, bool withoutReplacement)
    {
        _ops++;
        int vocab = p.Cols;
        if (multi)
            return DraftVerifyCpu.RecursiveReject(new Span<float>(T(p).F, vocab), new Span<float>(T(q).F, vocab), drafts, withoutReplacement, uniforms, greedy);
        return DraftVerifyCpu.Verify(new ReadOnlySpan<float>(T(p).F, (drafts.Length + 1) * vocab), new ReadOnlySpan<float>(T(q).F, drafts.Length * vocab),
            drafts, uniforms, vocab, greedy, greedy ? default : new float[vocab]);   // greedy never touches the residual
    }

    public void Synchronize() { }

    private long _ops;
    /// <summary>Ops issued (each is one kernel call on the worker pool).</summary>
    public long Launches => _ops;

    public void Dispose()
    {
        if (_ownsPool) _pool.Dispose();
    }
}

using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Activation;
using KernelEngine.Kernels.Threading;
using KernelEngine.Kernels.Simd;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// Decode twin of <see cref="MatMulCpu"/>: y = W · x for up to <see cref="MaxParts"/> matrices that share x, in one
/// launch, for one activation row or up to <see cref="MaxRows"/> (batched decoding of several sequences). Tasks own a
/// band of one matrix's rows; each weight row is streamed once (memory bound) and, with several x rows, meets all of
/// them while it sits in L1. Every output element is computed by the same arithmetic whatever the number of rows,
/// so a sequence decoded in a batch gets bit for bit the logits it gets alone. Fusing q/k/v and gate/up saves two pool
/// round trips per layer and quantizes x once for all of them.
/// F32 rows: 4 independent accumulators per row; F16/BF16: converted in registers; Q8_0/Q4_0: the integer path of
/// <see cref="QuantMatVecCpu"/>; Q4_K/Q5_K/Q6_K: <see cref="KQuantMatVecCpu"/>; Q4_1/Q5_0/Q5_1: <see cref="LegacyQuantMatVecCpu"/>; other types: widened per group of 4 rows into scratch.
/// </summary>
internal static unsafe class MatVecCpu
{
    public const int MaxParts = 4;
    /// <summary>The most x rows one launch takes (a decode batch); more rows go through the prefill GEMM.</summary>
    public const int MaxRows = 16;
    /// <summary>Tasks per thread: small enough bands that a slow core does not hold the launch up (2-32 measured alike).</summary>
    private const int TasksPerThread = 8;
    /// <summary>Tasks per thread from <see cref="BatchRows"/> x rows on: a batch's product is bound by the kernels'
    /// arithmetic more than by memory, and a task that starts cold (its weight stream not yet prefetched, its activations
    /// gathered) costs more than the imbalance larger bands risk (README: "Batched decoding").</summary>
    private const int BatchTasksPerThread = 3;
    private const int BatchRows = 4;
    /// <summary>With several x rows, weight rows are taken in chunks of about this many bytes (kept in L1 while every x row meets them).</summary>
    private const int ChunkBytes = 16 * 1024;

    [InlineArray(MaxParts)]
    private struct PartArray { private MatVecPart _p; }

    [InlineArray(MaxParts + 1)]
    private struct TaskStarts { private int _t; }

    /// <summary>What one x row brings: itself and its activations in each kernel's form.</summary>
    private struct RowInput
    {
        public float* X;                 // (inDim)
        public float* Xd;                // (inDim) x deinterleaved for fp16/bf16 rows, or null
        public QuantMatVecCpu.Activations Act;
        public KQuantMatVecCpu.Activations ActK;
        public LegacyQuantMatVecCpu.Activations ActL;
    }

    [InlineArray(MaxRows)]
    private struct RowInputs { private RowInput _r; }

    private struct Job
    {
        public PartArray Parts;
        public TaskStarts FirstTask;     // (parts + 1) first task of each part, then the total
        public RowInputs In;
        public int Rows;
        public int InDim;
        public int RowsPerTask;
        public bool Quantized, Q4, KQuant, Legacy, Paired;   // the activation forms the parts read
        public int PrepareTasks;   // the launch's first tasks prepare the x rows (one each); the products wait for them
        public int Prepared;       // rows prepared so far
        public MatVecFusion Fused;
        public float* Source;      // x before the norm prologue
        public int* GateHalves;    // gated: per row range, how many of its gate and up tasks have ended
    }

    /// <summary>From this many x rows on, their activations are prepared in parallel (one task per row).</summary>
    private const int ParallelPrepareRows = 4;

    [ThreadStatic] private static ScratchSlots t_xd;

    /// <summary>y_p (rows, OutDim_p) = x (rows, inDim) · W_pᵀ (+ bias) for each part.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatVec(WorkerPool pool, float* x, int inDim, ReadOnlySpan<MatVecPart> parts, int rows = 1) =>
        MatVec(pool, x, inDim, parts, rows, default);

    /// <summary>Whether a gate and an up part can run gated (<see cref="MatVecFusion.Gated"/>): the same rows, a multiple
    /// of 16 (each range's slice of a row then takes the activation's vector and tail paths exactly as one call over the
    /// whole batch does).</summary>
    public static bool CanGate(int gateRows, int upRows) => gateRows == upRows && gateRows % GateAlign == 0;

    private const int GateAlign = 16;

    /// <summary><see cref="MatVec(WorkerPool, float*, int, ReadOnlySpan{MatVecPart}, int)"/> with the ops
    /// <paramref name="fused"/> names run inside the launch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatVec(WorkerPool pool, float* x, int inDim, ReadOnlySpan<MatVecPart> parts, int rows, in MatVecFusion fused)
    {
        if (fused.Gated != null && (parts.Length != 2 || !CanGate(parts[0].OutDim, parts[1].OutDim)))
            throw new ArgumentException("a gated product takes a gate and an up part of the same rows, a multiple of 16", nameof(parts));
        if (fused.Residual != null && (parts.Length != 1 || fused.Gated != null))
            throw new ArgumentException("a residual epilogue takes one part", nameof(parts));
        if (parts.Length is < 1 or > MaxParts) throw new ArgumentException($"{parts.Length} parts; 1 to {MaxParts} share one launch");
        if (rows is < 1 or > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"1 to {MaxRows} rows");
        var job = new Job { Rows = rows, InDim = inDim };
        long outRows = 0;
        bool quantized = false, q4 = false, half = false, kquant = false, legacy = false;
        int align = 4;   // tasks own whole tiles of tiled weights, else groups of 4 rows
        for (int p = 0; p < parts.Length; p++)
        {
            ref readonly var part = ref parts[p];
            if (part.Type.HasPackedCpuDecode())
            {
                if (part.Packed == null) throw new ArgumentNullException(nameof(parts), "Q8_0/Q4_0 decode reads the packed layout (PackedQuant.Pack)");
                quantized = true;
                q4 |= part.Type == WeightType.Q4_0;
                align = Math.Max(align, PackedQuant.RowAlign(part.Type));
            }
            half |= part.Type is WeightType.F16 or WeightType.BF16;
            kquant |= KQuantMatVecCpu.Handles(part.Type);
            legacy |= LegacyQuantMatVecCpu.Handles(part.Type);
            job.Parts[p] = part;
            outRows += part.OutDim;
        }
        job.Quantized = quantized; job.Q4 = q4; job.KQuant = kquant; job.Legacy = legacy;
        job.Paired = half && DenseDot.PairElements > 0 && inDim % DenseDot.PairElements == 0;
        job.Fused = fused; job.Source = x;
        bool norm = fused.NormWeight != null;
        for (int r = 0; r < rows; r++) job.In[r].X = (norm ? fused.Normed : x) + (long)r * inDim;
        // A batch's rows are prepared in parallel (serial, the other threads would wait through it before every product), as
        // the launch's first tasks: the pool hands tasks out in order, so a product task waits only for preparations already
        // running, and the launch costs one wake-up of the workers instead of two.
        bool prepare = quantized || legacy || kquant || job.Paired || norm;
        if (prepare && rows >= ParallelPrepareRows) job.PrepareTasks = rows;
        else if (prepare) for (int r = 0; r < rows; r++) PrepareRow(&job, r);
        int tasksWanted = pool.Threads * (rows >= BatchRows ? BatchTasksPerThread : TasksPerThread);
        // gated: gate's and up's tasks take the same row ranges (whole 16s), and whichever of a range's two tasks ends second
        // applies the activation to it (each task still streams one matrix)
        if (fused.Gated != null) align = Math.Max(align, GateAlign);
        job.RowsPerTask = Math.Max(align, (int)((outRows + tasksWanted - 1) / tasksWanted) + align - 1 & ~(align - 1));
        int tasks = 0;
        for (int p = 0; p < parts.Length; p++)
        {
            job.FirstTask[p] = tasks;
            tasks += (parts[p].OutDim + job.RowsPerTask - 1) / job.RowsPerTask;
        }
        for (int p = parts.Length; p <= MaxParts; p++) job.FirstTask[p] = tasks;
        if (fused.Gated != null)
        {
            int ranges = job.FirstTask[1];   // gate's tasks, one per range
            int* halves = stackalloc int[ranges];   // lives until this method returns, after the launch
            new Span<int>(halves, ranges).Clear();
            job.GateHalves = halves;
        }
        pool.For(job.PrepareTasks + tasks, &PreparedTask, &job, outRows * inDim * rows);
    }

    /// <summary>Task t of the launch: a row's preparation, or (after all of them) product task t − PrepareTasks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PreparedTask(void* ctx, int t)
    {
        ref Job j = ref Unsafe.AsRef<Job>(ctx);
        if (t < j.PrepareTasks)
        {
            PrepareRow(ctx, t);
            Interlocked.Increment(ref j.Prepared);
            return;
        }
        while (Volatile.Read(ref j.Prepared) < j.PrepareTasks) Thread.SpinWait(1);
        Task(ctx, t - j.PrepareTasks);
    }

    /// <summary>Row r's activations in each form the parts read, in the executing thread's scratch slot r (valid through
    /// this product: a thread prepares slot r again only for a later one).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PrepareRow(void* ctx, int r)
    {
        ref Job j = ref Unsafe.AsRef<Job>(ctx);
        ref RowInput i = ref j.In[r];
        int inDim = j.InDim;
        if (j.Fused.NormWeight != null) Norm.NormCpu.RmsRow(j.Source + (long)r * inDim, j.Fused.NormWeight, i.X, inDim, j.Fused.NormEps);
        if (j.Quantized || j.Legacy) i.Act = QuantMatVecCpu.Prepare(i.X, inDim, j.Q4, r);
        if (j.Legacy) i.ActL = LegacyQuantMatVecCpu.Prepare(i.Act, inDim, r);
        if (j.KQuant) i.ActK = KQuantMatVecCpu.Prepare(i.X, inDim, r);
        if (j.Paired)
        {
            i.Xd = (float*)t_xd.Get(r, inDim * 4L);
            DenseDot.Deinterleave(i.X, inDim, i.Xd);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Task(void* ctx, int task)
    {
        ref Job j = ref Unsafe.AsRef<Job>(ctx);
        int p = 0;
        while (task >= j.FirstTask[p + 1]) p++;
        int o0 = (task - j.FirstTask[p]) * j.RowsPerTask, o1 = Math.Min(j.Parts[p].OutDim, o0 + j.RowsPerTask);
        Product(ref j, p, o0, o1);
        ref MatVecPart part = ref j.Parts[p];
        if (j.Fused.Residual != null)
            for (int r = 0; r < j.Rows; r++)
                ActivationCpu.Add(j.Fused.Residual + (long)r * part.OutDim + o0, part.Y + (long)r * part.OutDim + o0, o1 - o0);
        // the second of a range's gate and up tasks to end sees the other's rows (the increment is a full fence)
        if (j.Fused.Gated == null || Interlocked.Increment(ref j.GateHalves[task - j.FirstTask[p]]) != 2) return;
        ref MatVecPart gate = ref j.Parts[0], up = ref j.Parts[1];
        for (int r = 0; r < j.Rows; r++)
            j.Fused.Gated(gate.Y + (long)r * gate.OutDim + o0, up.Y + (long)r * up.OutDim + o0, o1 - o0);
    }

    /// <summary>Output rows [o0, o1) of part p for every x row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Product(ref Job j, int p, int o0, int o1)
    {
        ref MatVecPart part = ref j.Parts[p];
        if (j.Rows == 1) { RowsPrefetched(part, j.In[0], j.InDim, o0, o1); return; }
        // Several x rows: a chunk of weight rows stays in L1 while every x row meets it.
        long rowBytes = part.Type.HasPackedCpuDecode() ? PackedQuant.RowBytes(part.Type, j.InDim) : part.Type.RowBytes(j.InDim);
        int align = part.Type.HasPackedCpuDecode() ? PackedQuant.RowAlign(part.Type) : 4;
        int chunk = (int)Math.Clamp(ChunkBytes / rowBytes, 1, 64) + align - 1 & ~(align - 1);
        bool kquant = KQuantMatVecCpu.HasRows4(part.Type), rows4 = j.Rows >= 4 && (kquant || QuantMatVecCpu.HasRows4(part.Type));
        var act = stackalloc QuantMatVecCpu.Activations[8];
        var actK = stackalloc KQuantMatVecCpu.Activations[4];
        for (int c0 = o0; c0 < o1; c0 += chunk)
        {
            int c1 = Math.Min(o1, c0 + chunk);
            int r0 = 0;
            // 8 (tiled Q4_0) or 4 rows at a time share each weight row's unpacking (same results as one at a time), then 2 of
            // what is left;
            // the first pass reads the chunk from memory
            for (; !kquant && r0 + 8 <= j.Rows && QuantMatVecCpu.HasRows8(part.Type); r0 += 8) IntegerRows(ref j, part, false, r0, 8, c0, c1, act, actK);
            for (; rows4 && r0 + 4 <= j.Rows; r0 += 4) IntegerRows(ref j, part, kquant, r0, 4, c0, c1, act, actK);
            if (r0 + 2 <= j.Rows && (kquant || QuantMatVecCpu.HasRows2(part.Type)))
            {
                IntegerRows(ref j, part, kquant, r0, 2, c0, c1, act, actK);
                r0 += 2;
            }
            // F32: 2 rows at a time share each weight load (same results as one at a time)
            for (; part.Type == WeightType.F32 && SimdLevel.Current != SimdLevel.Width.Scalar && r0 + 2 <= j.Rows; r0 += 2)
            {
                float* y = part.Y + (long)r0 * part.OutDim, x0 = j.In[r0].X, x1 = j.In[r0 + 1].X;
                for (int o = c0; o < c1; o++)
                    DenseDot.F32x2((float*)(part.W + o * rowBytes), x0, x1, j.InDim, y + o, y + part.OutDim + o);
                AddBias(part, y, 2, c0, c1);
            }
            for (int r = r0; r < j.Rows; r++)
            {
                var rowPart = part;
                rowPart.Y = part.Y + (long)r * part.OutDim;
                if (r == 0) RowsPrefetched(rowPart, j.In[r], j.InDim, c0, c1);   // the pass that reads the chunk from memory
                else Rows(rowPart, j.In[r], j.InDim, c0, c1);
            }
        }
    }

    /// <summary>Output rows [<paramref name="r0"/>, r0 + <paramref name="count"/>) (8, 4 or 2) of one integer-format part for
    /// weight rows [c0, c1), through the multi-row kernels (<paramref name="kquant"/>: the K-quant ones).</summary>
    private static void IntegerRows(ref Job j, in MatVecPart part, bool kquant, int r0, int count, int c0, int c1,
        QuantMatVecCpu.Activations* act, KQuantMatVecCpu.Activations* actK)
    {
        float* y = part.Y + (long)r0 * part.OutDim;
        if (kquant)
        {
            for (int k = 0; k < count; k++) actK[k] = j.In[r0 + k].ActK;
            if (count == 4) KQuantMatVecCpu.Rows4(part, actK, j.InDim, c0, c1, y, part.OutDim, prefetch: r0 == 0);
            else KQuantMatVecCpu.Rows2(part, actK, j.InDim, c0, c1, y, part.OutDim, prefetch: r0 == 0);
        }
        else
        {
            for (int k = 0; k < count; k++) act[k] = j.In[r0 + k].Act;
            if (count == 8) QuantMatVecCpu.Rows8(part, act, j.InDim, c0, c1, y, part.OutDim, prefetch: r0 == 0);
            else if (count == 4) QuantMatVecCpu.Rows4(part, act, j.InDim, c0, c1, y, part.OutDim, prefetch: r0 == 0);
            else QuantMatVecCpu.Rows2(part, act, j.InDim, c0, c1, y, part.OutDim, prefetch: r0 == 0);
        }
        AddBias(part, y, count, c0, c1);
    }

    /// <summary>y_k[o] += bias[o] for <paramref name="rows"/> output rows of one part from <paramref name="y"/>, o in [o0, o1).</summary>
    private static void AddBias(in MatVecPart part, float* y, int rows, int o0, int o1)
    {
        if (part.Bias == null) return;
        for (int k = 0; k < rows; k++)
            for (int o = o0; o < o1; o++) y[k * part.OutDim + o] += part.Bias[o];
    }

    /// <summary>
    /// <see cref="Rows"/> a few weight rows at a time, each group's bytes prefetched <see cref="Prefetch.DecodeDistanceBytes"/>
    /// ahead of the group being read (one weight stream per task, read once per token).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowsPrefetched(in MatVecPart part, in RowInput x, int n, int o0, int o1)
    {
        // F32 rows already stream at the roofline on the hardware prefetchers alone (measured slower with)
        int distance = part.Type == WeightType.F32 ? 0 : Prefetch.DecodeDistanceBytes;
        if (!Prefetch.IsSupported || distance == 0) { Rows(part, x, n, o0, o1); return; }
        if (PackedQuant.IsTiled(part.Type))
        {
            // tiles are prefetched inside the kernel, a block ahead at a time
            QuantMatVecCpu.TiledRows(part, x.Act, n, o0, o1, prefetch: true);
            AddBias(part, part.Y, 1, o0, o1);
            return;
        }
        bool packed = part.Type.HasPackedCpuDecode();
        byte* w = packed ? part.Packed : part.W;
        long rowBytes = packed ? PackedQuant.RowBytes(part.Type, n) : part.Type.RowBytes(n);
        int group = (int)Math.Max(1, 1024 / rowBytes);
        byte* end = w + part.OutDim * rowBytes;
        for (int o = o0; o < o1; o += group)
        {
            int e = Math.Min(o1, o + group);
            byte* ahead = w + o * rowBytes + distance;
            if (ahead < end) Prefetch.Range(ahead, Math.Min((e - o) * rowBytes, end - ahead));
            Rows(part, x, n, o, e);
        }
    }

    /// <summary>y[o] (+ bias) for o in [o0, o1) of one part and one x row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows(in MatVecPart part, in RowInput x, int n, int o0, int o1)
    {
        if (part.Type.HasPackedCpuDecode()) QuantMatVecCpu.Rows(part, x.Act, n, o0, o1);
        else if (KQuantMatVecCpu.Handles(part.Type)) KQuantMatVecCpu.Rows(part, x.ActK, n, o0, o1);
        else if (LegacyQuantMatVecCpu.Handles(part.Type)) LegacyQuantMatVecCpu.Rows(part, x.ActL, n, o0, o1);
        else DenseRows(part, x.X, x.Xd, n, o0, o1);
        if (part.Bias != null)
            for (int o = o0; o < o1; o++) part.Y[o] += part.Bias[o];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DenseRows(in MatVecPart part, float* x, float* xd, int n, int o0, int o1)
    {
        long rowBytes = part.Type.RowBytes(n);
        float* y = part.Y;
        if (part.Type == WeightType.F32)
        {
            // One row streamed at a time with 4 independent accumulators (as ggml's vec_dot_f32): one sequential
            // stream per thread keeps the hardware prefetchers ahead; 4-row interleaving measured slower.
            for (int o = o0; o < o1; o++) y[o] = DenseDot.F32((float*)(part.W + o * rowBytes), x, n);
        }
        else if (part.Type is WeightType.F16 or WeightType.BF16)
        {
            // Converted in registers: the weight row is read once and never written back out as F32; with x
            // deinterleaved, 2·Floats weights per load are widened in place (no shuffle port bottleneck).
            bool bf16 = part.Type == WeightType.BF16;
            if (xd != null)
                for (int o = o0; o < o1; o++) y[o] = DenseDot.HalfPaired(xd, (ushort*)(part.W + o * rowBytes), n, bf16);
            else
                for (int o = o0; o < o1; o++) y[o] = DenseDot.Half(x, (ushort*)(part.W + o * rowBytes), n, bf16);
            if (part.HalfShift != 0)
            {
                float unscale = HalfPrescale.Unscale(part.HalfShift);
                for (int o = o0; o < o1; o++) y[o] *= unscale;
            }
        }
        else
        {
            float* buf = MatMulCpu.Scratch(n);
            for (int o = o0; o < o1; o++)
            {
                RowConvert.ToF32(part.W + o * rowBytes, part.Type, n, buf);
                y[o] = DenseDot.F32(buf, x, n);
            }
        }
    }
}

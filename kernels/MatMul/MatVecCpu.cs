using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// Decode (one token) twin of <see cref="MatMulCpu"/>: y = W · x for up to <see cref="MaxParts"/> matrices that share x,
/// in one launch. Tasks own a band of one matrix's rows; each row is streamed once (memory bound). Fusing q/k/v and
/// gate/up saves two pool round trips per layer and quantizes x once for all of them.
/// F32 rows: 4 independent accumulators per row; F16/BF16: converted in registers; Q8_0/Q4_0: the integer path of
/// <see cref="QuantMatVecCpu"/>; Q4_K/Q5_K/Q6_K: <see cref="KQuantMatVecCpu"/>; Q4_1/Q5_0/Q5_1: <see cref="LegacyQuantMatVecCpu"/>; other types: widened per group of 4 rows into scratch.
/// </summary>
internal static unsafe class MatVecCpu
{
    public const int MaxParts = 4;
    /// <summary>Tasks per thread: small enough bands that a slow core does not hold the launch up (2-32 measured alike).</summary>
    private const int TasksPerThread = 8;

    [InlineArray(MaxParts)]
    private struct PartArray { private MatVecPart _p; }

    [InlineArray(MaxParts + 1)]
    private struct TaskStarts { private int _t; }

    private struct Job
    {
        public PartArray Parts;
        public TaskStarts FirstTask;     // (parts + 1) first task of each part, then the total
        public float* X;                 // (inDim)
        public int InDim;
        public int RowsPerTask;
        public QuantMatVecCpu.Activations Act;
        public KQuantMatVecCpu.Activations ActK;
        public LegacyQuantMatVecCpu.Activations ActL;
        public float* Xd;                // (inDim) x deinterleaved for fp16/bf16 rows, or null
    }

    [ThreadStatic] private static float* t_xd;
    [ThreadStatic] private static int t_xdFloats;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void MatVec(WorkerPool pool, float* x, int inDim, ReadOnlySpan<MatVecPart> parts)
    {
        if (parts.Length is < 1 or > MaxParts) throw new ArgumentException($"{parts.Length} parts; 1 to {MaxParts} share one launch");
        var job = new Job { X = x, InDim = inDim };
        long rows = 0;
        bool quantized = false, q4 = false, half = false, kquant = false, legacy = false;
        for (int p = 0; p < parts.Length; p++)
        {
            ref readonly var part = ref parts[p];
            if (part.Type.HasPackedCpuDecode())
            {
                if (part.Packed == null) throw new ArgumentNullException(nameof(parts), "Q8_0/Q4_0 decode reads the packed layout (PackedQuant.Pack)");
                quantized = true;
                q4 |= part.Type == WeightType.Q4_0;
            }
            half |= part.Type is WeightType.F16 or WeightType.BF16;
            kquant |= KQuantMatVecCpu.Handles(part.Type);
            legacy |= LegacyQuantMatVecCpu.Handles(part.Type);
            job.Parts[p] = part;
            rows += part.OutDim;
        }
        if (quantized || legacy) job.Act = QuantMatVecCpu.Prepare(x, inDim, q4);
        if (legacy) job.ActL = LegacyQuantMatVecCpu.Prepare(job.Act, inDim);
        if (kquant) job.ActK = KQuantMatVecCpu.Prepare(x, inDim);
        if (half && DenseDot.PairElements > 0 && inDim % DenseDot.PairElements == 0)
        {
            if (t_xdFloats < inDim)
            {
                if (t_xd != null) System.Runtime.InteropServices.NativeMemory.AlignedFree(t_xd);
                t_xd = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)inDim * 4, 64);
                t_xdFloats = inDim;
            }
            DenseDot.Deinterleave(x, inDim, t_xd);
            job.Xd = t_xd;
        }
        int tasksWanted = pool.Threads * TasksPerThread;
        job.RowsPerTask = Math.Max(4, (int)((rows + tasksWanted - 1) / tasksWanted) + 3 & ~3);
        int tasks = 0;
        for (int p = 0; p < parts.Length; p++)
        {
            job.FirstTask[p] = tasks;
            tasks += (parts[p].OutDim + job.RowsPerTask - 1) / job.RowsPerTask;
        }
        for (int p = parts.Length; p <= MaxParts; p++) job.FirstTask[p] = tasks;
        pool.For(tasks, &Task, &job, rows * inDim);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Task(void* ctx, int task)
    {
        ref Job j = ref Unsafe.AsRef<Job>(ctx);
        int p = 0;
        while (task >= j.FirstTask[p + 1]) p++;
        ref MatVecPart part = ref j.Parts[p];
        int o0 = (task - j.FirstTask[p]) * j.RowsPerTask, o1 = Math.Min(part.OutDim, o0 + j.RowsPerTask);
        if (part.Type.HasPackedCpuDecode()) QuantMatVecCpu.Rows(part, j.Act, j.InDim, o0, o1);
        else if (KQuantMatVecCpu.Handles(part.Type)) KQuantMatVecCpu.Rows(part, j.ActK, j.InDim, o0, o1);
        else if (LegacyQuantMatVecCpu.Handles(part.Type)) LegacyQuantMatVecCpu.Rows(part, j.ActL, j.InDim, o0, o1);
        else DenseRows(part, j.X, j.Xd, j.InDim, o0, o1);
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

using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Simd;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Kernels.Attention;

/// <summary>
/// Decode attention (one query row over the whole cache) as flash-decoding on the CPU: the visible positions are cut
/// into chunks, one task per chunk reads its cache rows once, all KV heads at a time (each row is kvHeads·headDim
/// contiguous values, so a task streams memory in order), and scores each KV head's keys against every query head that
/// shares it (GQA); it leaves per query head a partial (max m, sum l of exp(s - m), o = Σ exp(s - m)·v), and the
/// partials are merged by their log-sum-exp. Generic over the SIMD width (<see cref="ISimd{V}"/>); F32 cache rows are
/// read in place, F16 rows converted in registers, block formats (Q8_0, ...) widened a chunk at a time into scratch.
/// </summary>
internal static unsafe class DecodeAttentionCpu
{
    /// <summary>Positions per task at most: the task's scores (heads × chunk floats) stay in L1/L2.</summary>
    public const int MaxChunk = 256;
    private const int MinChunk = 32;
    /// <summary>Tasks per thread: enough that a slow core does not hold the launch up.</summary>
    private const int TasksPerThread = 4;
    /// <summary>Floats of a block-format chunk widened to F32 (its K and V rows together stay in L2).</summary>
    private const int WidenedFloats = 1 << 16;
    /// <summary>How far ahead of the row being read the cache rows are prefetched (K rows during the scores, V rows from
    /// before the softmax on): on the hardware prefetcher alone decode attention over a long cache waited on memory.</summary>
    private const int PrefetchBytes = 4096;

    [ThreadStatic] private static float[]? t_scratch;
    [ThreadStatic] private static float[]? t_partials;
    [ThreadStatic] private static float[]? t_widened;

    private struct Job
    {
        public float* Q, Out, Partials;
        public void* K, V;
        public KvRows Rows;
        public int Positions, Heads, KvHeads, HeadDim, Chunk;
        public float Scale;
        public int AheadRows;   // cache rows prefetched ahead of the one being read (0: none, the chunk is in scratch)
    }

    /// <summary>Whether the vector path takes this head size at the running width (else the caller's general path).</summary>
    public static bool Supports(int headDim) => SimdLevel.Current != SimdLevel.Width.Scalar && headDim % ((int)SimdLevel.Current / 32) == 0;

    /// <summary>Positions per task for a cache of <paramref name="positions"/> on <paramref name="threads"/> threads
    /// (fewer for block formats, whose chunk of K and V rows is widened into scratch: <paramref name="widenedRow"/> floats a position).</summary>
    public static int ChunkFor(int positions, int threads, int widenedRow = 0) =>
        Math.Clamp((positions + threads * TasksPerThread - 1) / (threads * TasksPerThread) + 3 & ~3, MinChunk,
            widenedRow == 0 ? MaxChunk : Math.Clamp(WidenedFloats / (2 * widenedRow) & ~3, MinChunk, MaxChunk));

    /// <param name="q">(heads · headDim) the query row</param>
    /// <param name="k">(positions, kvHeads · headDim) this layer's keys, stored as <paramref name="cache"/> says</param>
    /// <param name="v">(positions, kvHeads · headDim) this layer's values</param>
    /// <param name="output">(heads · headDim)</param>
    /// <param name="positions">visible cache positions [0, positions)</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(WorkerPool pool, float* q, void* k, void* v, KvRows cache, float* output,
        int positions, int heads, int kvHeads, int headDim, float scale)
    {
        if (!Supports(headDim)) throw new ArgumentException($"head size {headDim} is not a multiple of the {(int)SimdLevel.Current}-bit vector", nameof(headDim));
        if (positions < 1 || heads < 1 || kvHeads < 1 || heads % kvHeads != 0) throw new ArgumentException($"{positions} positions, {heads} heads, {kvHeads} KV heads");
        int chunk = ChunkFor(positions, pool.Threads, cache.IsBlockFormat ? kvHeads * headDim : 0);
        int chunks = (positions + chunk - 1) / chunk;
        int partialFloats = chunks * heads * (headDim + 2);
        var partials = t_partials;
        if (partials == null || partials.Length < partialFloats) t_partials = partials = GC.AllocateUninitializedArray<float>(Math.Max(partialFloats, 4096), pinned: true);
        var job = new Job
        {
            Q = q, Out = output, K = k, V = v, Rows = cache, Positions = positions, Heads = heads, KvHeads = kvHeads,
            HeadDim = headDim, Chunk = chunk, Scale = scale, Partials = (float*)Unsafe.AsPointer(ref partials[0]),
            AheadRows = (int)Math.Max(1, PrefetchBytes / Math.Max(1, cache.Bytes((long)kvHeads * headDim))),
        };
        pool.For(chunks, &Task, &job, 2L * heads * headDim * positions);
        Merge(job.Partials, output, chunks, heads, headDim);
    }

    /// <summary>out_h = Σ_c e^(m_c - M)·o_c / Σ_c e^(m_c - M)·l_c, M = max_c m_c.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Merge(float* partials, float* output, int chunks, int heads, int hd)
    {
        int stride = hd + 2;
        for (int h = 0; h < heads; h++)
        {
            float max = float.NegativeInfinity;
            for (int c = 0; c < chunks; c++) max = MathF.Max(max, partials[((long)c * heads + h) * stride + hd]);
            var o = new Span<float>(output + (long)h * hd, hd);
            o.Clear();
            float l = 0;
            for (int c = 0; c < chunks; c++)
            {
                float* p = partials + ((long)c * heads + h) * stride;
                float w = MathF.Exp(p[hd] - max);
                l += w * p[hd + 1];
                SpanMath.MultiplyAdd(new ReadOnlySpan<float>(p, hd), w, o, o);
            }
            SpanMath.ScaleShift(o, 1f / l, 0f, o);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Task(void* ctx, int chunk)
    {
        ref Job j = ref Unsafe.AsRef<Job>(ctx);
        if (j.Rows.Type == WeightType.Q8_0)
        {
            switch (SimdLevel.Current)
            {
                case SimdLevel.Width.V512: Chunk<Simd512, Vector512<float>, Q8Rows>(ref j, chunk); break;
                case SimdLevel.Width.V256: Chunk<Simd256, Vector256<float>, Q8Rows>(ref j, chunk); break;
                default: Chunk<Simd128, Vector128<float>, Q8Rows>(ref j, chunk); break;
            }
            return;
        }
        if (j.Rows.IsBlockFormat)
        {
            WidenedChunk(ref j, chunk);
            return;
        }
        switch (SimdLevel.Current, j.Rows.Type == WeightType.F16)
        {
            case (SimdLevel.Width.V512, false): Chunk<Simd512, Vector512<float>, F32Rows>(ref j, chunk); break;
            case (SimdLevel.Width.V512, true): Chunk<Simd512, Vector512<float>, F16Rows>(ref j, chunk); break;
            case (SimdLevel.Width.V256, false): Chunk<Simd256, Vector256<float>, F32Rows>(ref j, chunk); break;
            case (SimdLevel.Width.V256, true): Chunk<Simd256, Vector256<float>, F16Rows>(ref j, chunk); break;
            case (SimdLevel.Width.V128, false): Chunk<Simd128, Vector128<float>, F32Rows>(ref j, chunk); break;
            default: Chunk<Simd128, Vector128<float>, F16Rows>(ref j, chunk); break;
        }
    }

    /// <summary>Block formats: the chunk's K and V rows widened to F32 in scratch, then the F32 path over them (the job's K and V
    /// rebased so that position p0 + i lands on widened row i).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WidenedChunk(ref Job j, int chunk)
    {
        int kvDim = j.KvHeads * j.HeadDim;
        int p0 = chunk * j.Chunk, n = Math.Min(j.Chunk, j.Positions - p0);
        var widened = t_widened;
        if (widened == null || widened.Length < 2 * j.Chunk * kvDim) t_widened = widened = GC.AllocateUninitializedArray<float>(2 * j.Chunk * kvDim, pinned: true);
        float* k = (float*)Unsafe.AsPointer(ref widened[0]), v = k + j.Chunk * kvDim;
        j.Rows.Widen(j.K, (long)p0 * kvDim, n * kvDim, k);
        j.Rows.Widen(j.V, (long)p0 * kvDim, n * kvDim, v);
        var local = j;
        local.AheadRows = 0;
        local.K = k - (long)p0 * kvDim;
        local.V = v - (long)p0 * kvDim;
        switch (SimdLevel.Current)
        {
            case SimdLevel.Width.V512: Chunk<Simd512, Vector512<float>, F32Rows>(ref local, chunk); break;
            case SimdLevel.Width.V256: Chunk<Simd256, Vector256<float>, F32Rows>(ref local, chunk); break;
            default: Chunk<Simd128, Vector128<float>, F32Rows>(ref local, chunk); break;
        }
    }

    /// <summary>How cache rows are read: F32 in place, F16 widened exactly in registers.</summary>
    private interface IRows
    {
        static abstract V Load<S, V>(void* rows, long index) where S : ISimd<V> where V : struct;
        /// <summary>F32 rows are read where they are; others are widened once per row for a group of query heads.</summary>
        static abstract bool InPlace { get; }
    }

    private readonly struct F32Rows : IRows
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
        public static V Load<S, V>(void* rows, long index) where S : ISimd<V> where V : struct => S.Load((float*)rows + index);
        public static bool InPlace => true;
    }

    /// <summary>Q8_0 rows converted in registers: a vector of int8 quants widened and scaled by its block's fp16 scale (a
    /// head is whole 32-element blocks; a vector never spans two).</summary>
    private readonly struct Q8Rows : IRows
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
        public static V Load<S, V>(void* rows, long index) where S : ISimd<V> where V : struct
        {
            byte* block = (byte*)rows + (index >> 5) * WeightTypes.Q8_0BlockBytes;
            return S.Mul(S.LoadS8((sbyte*)block + 2 + (index & 31)), S.Broadcast(MatMul.HalfVector.ToSingle(*(ushort*)block)));
        }
        public static bool InPlace => false;
    }

    private readonly struct F16Rows : IRows
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
        public static V Load<S, V>(void* rows, long index) where S : ISimd<V> where V : struct => S.LoadHalf((ushort*)rows + index);
        public static bool InPlace => false;
    }

    /// <summary>Value rows taken together: a query head's partial output takes 4 of them per load and store. (Keys go row by
    /// row, 4 heads at a time with one transposing sum, so that they stay one sequential stream: blocks of key rows read
    /// head by head streamed slower from memory.)</summary>
    private const int RowBlock = 4;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Chunk<S, V, R>(ref Job j, int chunk) where S : ISimd<V> where V : struct where R : IRows
    {
        int hd = j.HeadDim, heads = j.Heads, kvHeads = j.KvHeads, group = heads / kvHeads, kvDim = kvHeads * hd;
        int scoreStride = j.Chunk, p0 = chunk * j.Chunk, n = Math.Min(j.Chunk, j.Positions - p0);
        float scale = j.Scale;
        float* q = j.Q;
        void* k = j.K, v = j.V;
        var scratch = t_scratch;
        int scratchFloats = heads * j.Chunk + Math.Max(RowBlock * hd, kvDim);
        if (scratch == null || scratch.Length < scratchFloats) t_scratch = scratch = GC.AllocateUninitializedArray<float>(Math.Max(scratchFloats, 4096), pinned: true);
        float* scores = (float*)Unsafe.AsPointer(ref scratch[0]);   // (heads, Chunk)
        float* rows = scores + heads * j.Chunk;                       // a widened key row (kvDim), or one KV head's slice of RowBlock value rows (RowBlock, hd)

        // s[h, i] = q_h · k_(p0 + i) · scale, row by row (the chunk's keys are one sequential stream), 4 heads at a time
        // (one transposing sum for 4 dots); F16 rows of a GQA group are widened once into `rows`, a lone head converts in
        // registers
        bool widen = !R.InPlace && group > 1;
        int ahead = Math.Min(n, j.AheadRows);
        long rowBytes = j.Rows.Bytes(kvDim), firstRow = j.Rows.Bytes((long)p0 * kvDim);
        if (ahead > 0) Prefetch.Range((byte*)k + firstRow, ahead * rowBytes);
        int i;
        for (i = 0; i < n; i++)
        {
            PrefetchAhead((byte*)k + firstRow, rowBytes, i, ahead, n, 1);
            long rowIndex = (long)(p0 + i) * kvDim;
            if (widen) Widen<S, V, R>(k, rowIndex, kvDim, kvDim, rows, 1);
            int h = 0;
            for (; h + 4 <= heads; h += 4)
            {
                var dots = (widen ? Dot4Heads<S, V, F32Rows>(q, h, group, rows, 0, hd) : Dot4Heads<S, V, R>(q, h, group, k, rowIndex, hd)) * scale;
                float* at = scores + h * scoreStride + i;
                at[0] = dots.GetElement(0);
                at[scoreStride] = dots.GetElement(1);
                at[2 * scoreStride] = dots.GetElement(2);
                at[3 * scoreStride] = dots.GetElement(3);
            }
            for (; h < heads; h++)
            {
                long kat = (long)(h / group) * hd;
                float dot = widen ? Dot<S, V, F32Rows>(q + h * hd, rows, kat, hd) : Dot<S, V, R>(q + h * hd, k, rowIndex + kat, hd);
                scores[h * scoreStride + i] = dot * scale;
            }
        }

        // a block's rows are read together, so the distance counts from the block's end
        ahead = j.AheadRows == 0 ? 0 : Math.Min(n, j.AheadRows + RowBlock);
        if (ahead > 0) Prefetch.Range((byte*)v + firstRow, ahead * rowBytes);
        // per head: m = max s, e = exp(s - m), l = Σ e; o starts at 0 in the partial
        int stride = hd + 2;
        float* partials = j.Partials + (long)chunk * heads * stride;
        for (int h = 0; h < heads; h++)
        {
            var s = new Span<float>(scores + h * scoreStride, n);
            float max = SpanMath.Max(s);
            SpanMath.ExpScaleShift(s, 1f, -max, s);
            float* p = partials + h * stride;
            p[hd] = max;
            p[hd + 1] = SpanMath.Sum(s);
            new Span<float>(p, hd).Clear();
        }

        // o_h += e[h, i] · v_(p0 + i), in position order: each value row read once for its group
        for (i = 0; i + RowBlock <= n; i += RowBlock)
        {
            PrefetchAhead((byte*)v + firstRow, rowBytes, i, ahead, n);
            long rowIndex = (long)(p0 + i) * kvDim;
            for (int kvh = 0; kvh < kvHeads; kvh++)
            {
                long at = rowIndex + kvh * hd;
                if (widen) Widen<S, V, R>(v, at, kvDim, hd, rows);
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                {
                    float* e = scores + h * scoreStride + i;
                    if (widen) AddScaled4<S, V, F32Rows>(partials + h * stride, e, rows, 0, hd, hd);
                    else AddScaled4<S, V, R>(partials + h * stride, e, v, at, kvDim, hd);
                }
            }
        }
        for (; i < n; i++)
        {
            PrefetchAhead((byte*)v + firstRow, rowBytes, i, ahead, n, 1);
            long rowIndex = (long)(p0 + i) * kvDim;
            for (int kvh = 0; kvh < kvHeads; kvh++)
            {
                long at = rowIndex + kvh * hd;
                if (widen) Widen<S, V, R>(v, at, kvDim, hd, rows, 1);
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                {
                    var w = S.Broadcast(scores[h * scoreStride + i]);
                    if (widen) AddScaled<S, V, F32Rows>(partials + h * stride, w, rows, 0, hd);
                    else AddScaled<S, V, R>(partials + h * stride, w, v, at, hd);
                }
            }
        }
    }

    /// <summary>Keeps the chunk's rows prefetched <paramref name="ahead"/> rows past [i, i + count): rows [0, i + ahead) already
    /// are, so the next <paramref name="count"/> are.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchAhead(byte* first, long rowBytes, int i, int ahead, int n, int count = RowBlock)
    {
        int from = i + ahead, to = Math.Min(n, from + count);
        if (ahead > 0 && from < to) Prefetch.Range(first + from * rowBytes, (to - from) * rowBytes);
    }

    /// <summary>One KV head's slice (hd) of <paramref name="count"/> consecutive cache rows, widened to F32 into dst (count, hd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Widen<S, V, R>(void* cache, long at, int rowStride, int hd, float* dst, int count = RowBlock)
        where S : ISimd<V> where V : struct where R : IRows
    {
        for (int r = 0; r < count; r++)
            for (int d = 0; d < hd; d += S.Floats) S.Store(R.Load<S, V>(cache, at + (long)r * rowStride + d), dst + r * hd + d);
    }

    /// <summary>q_(h + r) · (the row's slice of KV head (h + r) / group) for r = 0..3, one accumulator each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector128<float> Dot4Heads<S, V, R>(float* q, int h, int group, void* rows, long rowIndex, int hd)
        where S : ISimd<V> where V : struct where R : IRows
    {
        float* q0 = q + (long)h * hd, q1 = q0 + hd, q2 = q1 + hd, q3 = q2 + hd;
        long k0 = rowIndex + (long)(h / group) * hd, k1 = rowIndex + (long)((h + 1) / group) * hd,
            k2 = rowIndex + (long)((h + 2) / group) * hd, k3 = rowIndex + (long)((h + 3) / group) * hd;
        V a0 = S.Zero, a1 = S.Zero, a2 = S.Zero, a3 = S.Zero;
        for (int d = 0; d < hd; d += S.Floats)
        {
            a0 = S.Fma(S.Load(q0 + d), R.Load<S, V>(rows, k0 + d), a0);
            a1 = S.Fma(S.Load(q1 + d), R.Load<S, V>(rows, k1 + d), a1);
            a2 = S.Fma(S.Load(q2 + d), R.Load<S, V>(rows, k2 + d), a2);
            a3 = S.Fma(S.Load(q3 + d), R.Load<S, V>(rows, k3 + d), a3);
        }
        return S.Sum4(a0, a1, a2, a3);
    }

    /// <summary>o += e[0]·row_0 + e[1]·row_1 + e[2]·row_2 + e[3]·row_3 (rows at + r·rowStride), in that order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void AddScaled4<S, V, R>(float* o, float* e, void* rows, long at, int rowStride, int hd) where S : ISimd<V> where V : struct where R : IRows
    {
        V w0 = S.Broadcast(e[0]), w1 = S.Broadcast(e[1]), w2 = S.Broadcast(e[2]), w3 = S.Broadcast(e[3]);
        for (int d = 0; d < hd; d += S.Floats)
        {
            var acc = S.Fma(w0, R.Load<S, V>(rows, at + d), S.Load(o + d));
            acc = S.Fma(w1, R.Load<S, V>(rows, at + rowStride + d), acc);
            acc = S.Fma(w2, R.Load<S, V>(rows, at + 2L * rowStride + d), acc);
            S.Store(S.Fma(w3, R.Load<S, V>(rows, at + 3L * rowStride + d), acc), o + d);
        }
    }

    /// <summary>q · rows[at .. at + hd) with two accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Dot<S, V, R>(float* q, void* rows, long at, int hd) where S : ISimd<V> where V : struct where R : IRows
    {
        int F = S.Floats, d = 0;
        V a0 = S.Zero, a1 = S.Zero;
        for (; d + 2 * F <= hd; d += 2 * F)
        {
            a0 = S.Fma(S.Load(q + d), R.Load<S, V>(rows, at + d), a0);
            a1 = S.Fma(S.Load(q + d + F), R.Load<S, V>(rows, at + d + F), a1);
        }
        if (d < hd) a0 = S.Fma(S.Load(q + d), R.Load<S, V>(rows, at + d), a0);
        return S.Sum(S.Add(a0, a1));
    }

    /// <summary>o += w · rows[at .. at + hd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void AddScaled<S, V, R>(float* o, V w, void* rows, long at, int hd) where S : ISimd<V> where V : struct where R : IRows
    {
        for (int d = 0; d < hd; d += S.Floats) S.Store(S.Fma(w, R.Load<S, V>(rows, at + d), S.Load(o + d)), o + d);
    }
}

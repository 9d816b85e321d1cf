using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Simd;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Kernels.Attention;

/// <summary>
/// Causal attention of a block of query rows (prefill) tiled like FlashAttention-2: one task per (block of query rows, KV
/// head) takes the M = rows × group query vectors that share the KV head, walks the visible cache in tiles of
/// <see cref="TileKeys"/> positions (tiles past the block's last row skipped, the diagonal tile masked) and keeps an online
/// softmax (running max m, sum l, output O rescaled by e^(m_old - m_new)). Scores are computed transposed,
/// Sᵀ(keys × M) = K·(scale·Q)ᵀ, so that every inner product is a broadcast key element times a vector of M queries
/// (no horizontal sums, no transposed copy of K) and the softmax runs down columns as whole vectors; O += Pᵀᵀ·V reads
/// V rows in place. Generic over the SIMD width (<see cref="ISimd{V}"/>); F16 and block-format caches (<see cref="KvRows"/>)
/// are widened one tile at a time.
/// </summary>
internal static unsafe class PrefillAttentionCpu
{
    /// <summary>Cache positions per tile: Sᵀ (tile × M floats) and a widened K/V tile stay in L1.</summary>
    public const int TileKeys = 64;
    /// <summary>Query vectors per task (rows × group), before rounding to whole vectors.</summary>
    private const int TargetQueries = 32;

    [ThreadStatic] private static float[]? t_scratch;

    private struct Job
    {
        public float* Q, Out;
        public void* K, V;
        public KvRows Cache;
        public int Rows, Start, Heads, KvHeads, HeadDim, BlockRows, Blocks;
        public float Scale;
    }

    public static bool Supports(int headDim) => SimdLevel.Current != SimdLevel.Width.Scalar && headDim % ((int)SimdLevel.Current / 32) == 0;

    /// <param name="q">(rows, heads · headDim); row t is at cache position start + t and sees positions [0, start + t]</param>
    /// <param name="k">(start + rows, kvHeads · headDim) this layer's keys, stored as <paramref name="cache"/> says</param>
    /// <param name="v">(start + rows, kvHeads · headDim) this layer's values</param>
    /// <param name="output">(rows, heads · headDim)</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(WorkerPool pool, float* q, void* k, void* v, KvRows cache, float* output,
        int rows, int start, int heads, int kvHeads, int headDim, float scale)
    {
        if (!Supports(headDim)) throw new ArgumentException($"head size {headDim} is not a multiple of the {(int)SimdLevel.Current}-bit vector", nameof(headDim));
        if (rows < 1 || start < 0 || heads < 1 || kvHeads < 1 || heads % kvHeads != 0) throw new ArgumentException($"{rows} rows at {start}, {heads} heads, {kvHeads} KV heads");
        int group = heads / kvHeads;
        int blockRows = Math.Max(1, Math.Min(rows, TargetQueries / group));
        int blocks = (rows + blockRows - 1) / blockRows;
        var job = new Job
        {
            Q = q, Out = output, K = k, V = v, Cache = cache, Rows = rows, Start = start, Heads = heads, KvHeads = kvHeads,
            HeadDim = headDim, BlockRows = blockRows, Blocks = blocks, Scale = scale,
        };
        pool.For(blocks * kvHeads, &Task, &job, 2L * rows * heads * headDim * (start + rows));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Task(void* ctx, int task)
    {
        ref Job j = ref Unsafe.AsRef<Job>(ctx);
        // the last blocks see the most positions: hand them out first so the pool ends evenly
        int block = j.Blocks - 1 - task / j.KvHeads, kvh = task % j.KvHeads;
        switch (SimdLevel.Current)
        {
            case SimdLevel.Width.V512: Block<Simd512, Vector512<float>>(ref j, block, kvh); break;
            case SimdLevel.Width.V256: Block<Simd256, Vector256<float>>(ref j, block, kvh); break;
            default: Block<Simd128, Vector128<float>>(ref j, block, kvh); break;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block<S, V>(ref Job j, int block, int kvh) where S : ISimd<V> where V : struct
    {
        int F = S.Floats, hd = j.HeadDim, group = j.Heads / j.KvHeads, kvDim = j.KvHeads * hd;
        int t0 = block * j.BlockRows, t1 = Math.Min(j.Rows, t0 + j.BlockRows);
        int queries = (t1 - t0) * group;
        int M = (queries + 2 * F - 1) / (2 * F) * (2 * F);   // query vectors, whole pairs of SIMD vectors
        int T = TileKeys;

        bool widen = j.Cache.Type != WeightType.F32;
        int need = hd * M + T * M + M * hd + 3 * M + (widen ? 2 * T * hd : 0);
        var scratch = t_scratch;
        if (scratch == null || scratch.Length < need) t_scratch = scratch = GC.AllocateUninitializedArray<float>(Math.Max(need, 16384), pinned: true);
        float* qt = (float*)Unsafe.AsPointer(ref scratch[0]);   // (hd, M) scale · Qᵀ, query m = (row t0 + m / group, head kvh·group + m % group)
        float* st = qt + hd * M;                                 // (T, M) scores, then probabilities
        float* o = st + T * M;                                   // (M, hd) running output
        float* mRun = o + M * hd;                                // (M) running max
        float* lRun = mRun + M;                                  // (M) running sum
        float* alpha = lRun + M;                                 // (M) e^(m_old - m_new)
        float* kTile = alpha + M;                                // (T, hd) widened keys
        float* vTile = kTile + T * hd;                           // (T, hd) widened values

        for (int m = 0; m < M; m++)
        {
            if (m < queries)
            {
                float* qm = j.Q + (long)(t0 + m / group) * j.Heads * hd + (kvh * group + m % group) * hd;
                for (int d = 0; d < hd; d++) qt[d * M + m] = qm[d] * j.Scale;
            }
            else for (int d = 0; d < hd; d++) qt[d * M + m] = 0;
            mRun[m] = float.NegativeInfinity;
            lRun[m] = 0;
        }
        new Span<float>(o, M * hd).Clear();

        int lastVisible = j.Start + t1 - 1;                      // the block's last row sees [0, lastVisible]
        for (int p0 = 0; p0 <= lastVisible; p0 += T)
        {
            int n = Math.Min(T, lastVisible + 1 - p0);
            float* kRows, vRows; long rowStride;
            if (widen)
            {
                for (int i = 0; i < n; i++)
                {
                    long at = (long)(p0 + i) * kvDim + kvh * hd;
                    if (j.Cache.IsBlockFormat)
                    {
                        j.Cache.Widen(j.K, at, hd, kTile + i * hd);
                        j.Cache.Widen(j.V, at, hd, vTile + i * hd);
                    }
                    else
                        for (int d = 0; d < hd; d += F)
                        {
                            S.Store(S.LoadHalf((ushort*)j.K + at + d), kTile + i * hd + d);
                            S.Store(S.LoadHalf((ushort*)j.V + at + d), vTile + i * hd + d);
                        }
                }
                kRows = kTile; vRows = vTile; rowStride = hd;
            }
            else
            {
                kRows = (float*)j.K + (long)p0 * kvDim + kvh * hd;
                vRows = (float*)j.V + (long)p0 * kvDim + kvh * hd;
                rowStride = kvDim;
            }

            Scores<S, V>(kRows, rowStride, qt, st, n, hd, M);

            // causal mask: key p0 + i is visible to row t when p0 + i <= start + t
            int firstRowStart = j.Start + t0;
            if (p0 + n - 1 > firstRowStart)
                for (int i = 0; i < n; i++)
                {
                    int pos = p0 + i;
                    for (int m = 0; m < queries; m++)
                        if (pos > j.Start + t0 + m / group) st[i * M + m] = float.NegativeInfinity;
                }

            // online softmax down the columns: m_new = max(m_old, max_i s), α = e^(m_old - m_new), P = e^(s - m_new)
            for (int c = 0; c < M; c += F)
            {
                V mx = S.Load(mRun + c);
                for (int i = 0; i < n; i++) mx = S.Max(mx, S.Load(st + i * M + c));
                S.Store(S.Sub(S.Load(mRun + c), mx), alpha + c);
                S.Store(mx, mRun + c);
                for (int i = 0; i < n; i++) S.Store(S.Sub(S.Load(st + i * M + c), mx), st + i * M + c);
            }
            SpanMath.ExpScaleShift(new ReadOnlySpan<float>(alpha, M), 1f, 0f, new Span<float>(alpha, M));
            SpanMath.ExpScaleShift(new ReadOnlySpan<float>(st, n * M), 1f, 0f, new Span<float>(st, n * M));
            for (int c = 0; c < M; c += F)
            {
                V l = S.Mul(S.Load(lRun + c), S.Load(alpha + c));
                for (int i = 0; i < n; i++) l = S.Add(l, S.Load(st + i * M + c));
                S.Store(l, lRun + c);
            }
            for (int m = 0; m < queries; m++)
            {
                var a = S.Broadcast(alpha[m]);
                for (int d = 0; d < hd; d += F) S.Store(S.Mul(S.Load(o + m * hd + d), a), o + m * hd + d);
            }

            Accumulate<S, V>(vRows, rowStride, st, o, n, hd, M, queries);
        }

        for (int m = 0; m < queries; m++)
        {
            float* om = j.Out + (long)(t0 + m / group) * j.Heads * hd + (kvh * group + m % group) * hd;
            var inv = S.Broadcast(1f / lRun[m]);
            for (int d = 0; d < hd; d += F) S.Store(S.Mul(S.Load(o + m * hd + d), inv), om + d);
        }
    }

    /// <summary>Sᵀ[i, m] = Σ_d k_i[d] · qt[d, m] for i &lt; n: 4 keys × 2 vectors of queries per register tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Scores<S, V>(float* k, long stride, float* qt, float* st, int n, int hd, int M) where S : ISimd<V> where V : struct
    {
        int F = S.Floats;
        for (int c = 0; c < M; c += 2 * F)
        {
            int i = 0;
            for (; i + 4 <= n; i += 4)
            {
                float* k0 = k + i * stride, k1 = k0 + stride, k2 = k1 + stride, k3 = k2 + stride;
                V a00 = S.Zero, a01 = S.Zero, a10 = S.Zero, a11 = S.Zero, a20 = S.Zero, a21 = S.Zero, a30 = S.Zero, a31 = S.Zero;
                for (int d = 0; d < hd; d++)
                {
                    V q0 = S.Load(qt + d * M + c), q1 = S.Load(qt + d * M + c + F);
                    V b = S.Broadcast(k0[d]); a00 = S.Fma(b, q0, a00); a01 = S.Fma(b, q1, a01);
                    b = S.Broadcast(k1[d]); a10 = S.Fma(b, q0, a10); a11 = S.Fma(b, q1, a11);
                    b = S.Broadcast(k2[d]); a20 = S.Fma(b, q0, a20); a21 = S.Fma(b, q1, a21);
                    b = S.Broadcast(k3[d]); a30 = S.Fma(b, q0, a30); a31 = S.Fma(b, q1, a31);
                }
                S.Store(a00, st + i * M + c); S.Store(a01, st + i * M + c + F);
                S.Store(a10, st + (i + 1) * M + c); S.Store(a11, st + (i + 1) * M + c + F);
                S.Store(a20, st + (i + 2) * M + c); S.Store(a21, st + (i + 2) * M + c + F);
                S.Store(a30, st + (i + 3) * M + c); S.Store(a31, st + (i + 3) * M + c + F);
            }
            for (; i < n; i++)
            {
                float* ki = k + i * stride;
                V a0 = S.Zero, a1 = S.Zero;
                for (int d = 0; d < hd; d++)
                {
                    V b = S.Broadcast(ki[d]);
                    a0 = S.Fma(b, S.Load(qt + d * M + c), a0);
                    a1 = S.Fma(b, S.Load(qt + d * M + c + F), a1);
                }
                S.Store(a0, st + i * M + c); S.Store(a1, st + i * M + c + F);
            }
        }
    }

    /// <summary>o[m, :] += Σ_i P[i, m] · v_i for m &lt; queries: 4 queries × 2 vectors of the head per register tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Accumulate<S, V>(float* v, long stride, float* p, float* o, int n, int hd, int M, int queries) where S : ISimd<V> where V : struct
    {
        int F = S.Floats;
        int m = 0;
        for (; m + 4 <= queries; m += 4)
            for (int d = 0; d < hd; d += 2 * F)
            {
                bool two = d + F < hd;
                V a00 = S.Zero, a01 = S.Zero, a10 = S.Zero, a11 = S.Zero, a20 = S.Zero, a21 = S.Zero, a30 = S.Zero, a31 = S.Zero;
                for (int i = 0; i < n; i++)
                {
                    float* vi = v + i * stride + d;
                    float* pi = p + i * M + m;
                    V v0 = S.Load(vi), v1 = two ? S.Load(vi + F) : S.Zero;
                    V b = S.Broadcast(pi[0]); a00 = S.Fma(b, v0, a00); a01 = S.Fma(b, v1, a01);
                    b = S.Broadcast(pi[1]); a10 = S.Fma(b, v0, a10); a11 = S.Fma(b, v1, a11);
                    b = S.Broadcast(pi[2]); a20 = S.Fma(b, v0, a20); a21 = S.Fma(b, v1, a21);
                    b = S.Broadcast(pi[3]); a30 = S.Fma(b, v0, a30); a31 = S.Fma(b, v1, a31);
                }
                Add<S, V>(o + m * hd + d, a00, a01, two); Add<S, V>(o + (m + 1) * hd + d, a10, a11, two);
                Add<S, V>(o + (m + 2) * hd + d, a20, a21, two); Add<S, V>(o + (m + 3) * hd + d, a30, a31, two);
            }
        for (; m < queries; m++)
            for (int d = 0; d < hd; d += F)
            {
                V a = S.Zero;
                for (int i = 0; i < n; i++) a = S.Fma(S.Broadcast(p[i * M + m]), S.Load(v + i * stride + d), a);
                S.Store(S.Add(S.Load(o + m * hd + d), a), o + m * hd + d);
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Add<S, V>(float* o, V a0, V a1, bool two) where S : ISimd<V> where V : struct
    {
        S.Store(S.Add(S.Load(o), a0), o);
        if (two) S.Store(S.Add(S.Load(o + S.Floats), a1), o + S.Floats);
    }
}

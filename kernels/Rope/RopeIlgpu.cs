using ILGPU;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Kernels.Rope;

internal struct RopeArgs
{
    public ArrayView<float> X;
    public ArrayView<float> CosSin;                  // (rows, Pairs, 2): cos and sin of each row's angle per pair, times the attention factor
    public int Rows, Heads, HeadDim, Interleaved, Pairs;   // Pairs: rotated pairs per head (HeadDim / 2 unless partial rotary)
}

internal struct RotateCacheArgs
{
    public ArrayView<float> F32;      // the cache as F32, or
    public ArrayView<ushort> F16;     // as F16 bits (F16 != 0)
    public ArrayView<float> CosSin;   // (Pairs, 2): cos and sin of the shift's angle per pair
    public long Offset;               // first element of the rotated rows
    public int HeadDim, Interleaved, IsF16, Pairs;
}

/// <summary>Arguments of <see cref="RopeIlgpu.ApplyAndStore"/>: q and k rotated, k and v stored into a layer's cache.</summary>
internal struct RopeStoreArgs
{
    public RopeArgs Q;                     // X = q, Heads = query heads
    public ArrayView<float> K, V;
    public ArrayView<byte> CacheK, CacheV;
    public int KvHeads, CacheF16;
    public long CacheOffset;               // element offset of (layer, start) in the cache
}

/// <summary>
/// ILGPU twin of RoPE: one thread per rotated pair. The host forms each angle's cos and sin in double, as the CPU does, and
/// uploads them with the launch (a row's pairs: a few hundred bytes per token), so the kernels are exact twins of the CPU
/// without double-precision trigonometry on the device (ILGPU's software cos/sin in double iterates through local memory).
/// </summary>
internal static class RopeIlgpu
{
    public static void Apply(Index1D index, RopeArgs a)
    {
        int half = a.Pairs;
        int i = index % half;
        int h = (index / half) % a.Heads;
        int r = index / (half * a.Heads);
        Rotate(a, a.X, (long)r * a.Heads * a.HeadDim + h * a.HeadDim, r, i, out _, out _);
    }

    /// <summary>Rotates pair i of the head at x[head..] by row r's angle in place (elements i0, i1 of the head).</summary>
    internal static void Rotate(RopeArgs a, ArrayView<float> x, long head, int r, int i, out int i0, out int i1)
    {
        long at = 2L * ((long)r * a.Pairs + i);
        float c = a.CosSin[at], s = a.CosSin[at + 1];
        i0 = a.Interleaved != 0 ? 2 * i : i;
        i1 = a.Interleaved != 0 ? 2 * i + 1 : i + a.Pairs;
        float x0 = x[head + i0], x1 = x[head + i1];
        x[head + i0] = x0 * c - x1 * s;
        x[head + i1] = x0 * s + x1 * c;
    }

    /// <summary>
    /// What a decode step does between the q/k/v matvec and attention, in one launch: q's pairs rotated, k's pairs rotated
    /// and written to k and to the cache, then v and k's unrotated dimensions (partial rotary) stored. Threads: q pairs,
    /// then k pairs, then k/v elements; each cache element is written by one thread.
    /// </summary>
    public static void ApplyAndStore(Index1D index, RopeStoreArgs a)
    {
        var q = a.Q;
        int half = q.Pairs, hd = q.HeadDim, kvDim = a.KvHeads * hd;
        int rows = q.Rows;
        int qPairs = rows * q.Heads * half, kPairs = rows * a.KvHeads * half;
        if (index < qPairs) { Apply(index, q); return; }
        int t = index - qPairs;
        if (t < kPairs)
        {
            int i = t % half, h = (t / half) % a.KvHeads, r = t / (half * a.KvHeads);
            long head = (long)r * kvDim + h * hd;
            RotateAndStoreKey(q, a.K, head, r, i, a.CacheK, a.CacheF16, a.CacheOffset + head);
            return;
        }
        t -= kPairs;
        if (t >= rows * kvDim) return;
        StoreValue(q, a.K, a.V, t, t % hd, a.CacheK, a.CacheV, a.CacheF16, a.CacheOffset + t);
    }

    /// <summary>Rotates pair i of the key head at k[head..] (row r's angle) and writes both elements into the cache head at cacheHead.</summary>
    internal static void RotateAndStoreKey(RopeArgs a, ArrayView<float> k, long head, int r, int i, ArrayView<byte> cacheK, int f16, long cacheHead)
    {
        Rotate(a, k, head, r, i, out int i0, out int i1);
        Store(cacheK, f16, cacheHead + i0, k[head + i0]);
        Store(cacheK, f16, cacheHead + i1, k[head + i1]);
    }

    /// <summary>Element at (dimension d of its head) of v into the cache, and of k too where RoPE leaves it (partial rotary).</summary>
    internal static void StoreValue(RopeArgs a, ArrayView<float> k, ArrayView<float> v, long element, int d, ArrayView<byte> cacheK, ArrayView<byte> cacheV,
        int f16, long cacheElement)
    {
        Store(cacheV, f16, cacheElement, v[element]);
        if (d >= 2 * a.Pairs) Store(cacheK, f16, cacheElement, k[element]);   // not rotated
    }

    /// <summary>One element into an F32 or F16 cache.</summary>
    internal static void Store(ArrayView<byte> cache, int f16, long element, float value)
    {
        if (f16 != 0) cache.Cast<ushort>()[element] = (ushort)DeviceMath.FloatToHalf(value);
        else cache.Cast<float>()[element] = value;
    }

    /// <summary>RopeCpu.RotateRows's twin: cached key rows rotated by Delta positions (context shift), one thread per pair.</summary>
    public static void RotateCache(Index1D index, RotateCacheArgs a)
    {
        int half = a.Pairs;
        int i = index % half;
        long head = a.Offset + (long)(int)(index / half) * a.HeadDim;
        float c = a.CosSin[2 * i], s = a.CosSin[2 * i + 1];
        long i0 = head + (a.Interleaved != 0 ? 2 * i : i), i1 = head + (a.Interleaved != 0 ? 2 * i + 1 : i + half);
        if (a.IsF16 != 0)
        {
            float x0 = DeviceMath.HalfToFloat(a.F16[i0]), x1 = DeviceMath.HalfToFloat(a.F16[i1]);
            a.F16[i0] = (ushort)DeviceMath.FloatToHalf(x0 * c - x1 * s);
            a.F16[i1] = (ushort)DeviceMath.FloatToHalf(x0 * s + x1 * c);
        }
        else
        {
            float x0 = a.F32[i0], x1 = a.F32[i1];
            a.F32[i0] = x0 * c - x1 * s;
            a.F32[i1] = x0 * s + x1 * c;
        }
    }
}

using ILGPU;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Kernels.Memory;

internal struct EmbedArgs
{
    public ArrayView<byte> Table;
    public ArrayView<int> Ids;
    public ArrayView<float> X;
    public int Type, Dim, Add;
    public long RowBytes;
}

internal struct KvArgs
{
    public ArrayView<float> K, V;
    public ArrayView<byte> CacheK, CacheV;
    public int F16;
    public long Offset;   // element offset of (layer, start) in the cache
}

/// <summary>Gathers, cache writes and copies on the device (one thread per element).</summary>
internal static class MemoryIlgpu
{
    /// <summary>x[r] (+)= table[ids[r]], any weight type.</summary>
    public static void Embed(Index1D index, EmbedArgs a)
    {
        int r = index / a.Dim, c = index % a.Dim;
        float v = DeviceMath.ReadWeight(a.Table, a.Type, a.RowBytes, a.Ids[r], c);
        long o = (long)r * a.Dim + c;
        a.X[o] = a.Add != 0 ? a.X[o] + v : v;
    }

    /// <summary>Writes k, v rows into the cache (F32, or F16 rounded to nearest even).</summary>
    public static void StoreKv(Index1D i, KvArgs a)
    {
        if (a.F16 != 0)
        {
            a.CacheK.Cast<ushort>()[a.Offset + i] = (ushort)DeviceMath.FloatToHalf(a.K[i]);
            a.CacheV.Cast<ushort>()[a.Offset + i] = (ushort)DeviceMath.FloatToHalf(a.V[i]);
        }
        else
        {
            a.CacheK.Cast<float>()[a.Offset + i] = a.K[i];
            a.CacheV.Cast<float>()[a.Offset + i] = a.V[i];
        }
    }

    /// <summary>dst[dstOffset + i] = src[srcOffset + i] over 32-bit words (activations, cache rows).</summary>
    public static void Copy(Index1D i, ArrayView<int> src, long srcOffset, ArrayView<int> dst, long dstOffset) => dst[dstOffset + i] = src[srcOffset + i];


    /// <summary>Copies one layer's run of cache words (16 bits) from a cache's K and V to another's, or to another offset of
    /// the same (the ranges do not overlap).</summary>
    public static void CopyKv(Index1D i, CopyKvArgs a)
    {
        a.ToK[a.To + i] = a.FromK[a.From + i];
        a.ToV[a.To + i] = a.FromV[a.From + i];
    }
}

/// <summary>Arguments of <see cref="MemoryIlgpu.CopyKv"/> (one struct: ILGPU kernels take a bounded parameter list).</summary>
internal struct CopyKvArgs(ArrayView<ushort> fromK, ArrayView<ushort> fromV, ArrayView<ushort> toK, ArrayView<ushort> toV, long from, long to)
{
    public ArrayView<ushort> FromK = fromK, FromV = fromV, ToK = toK, ToV = toV;
    public long From = from, To = to;
}

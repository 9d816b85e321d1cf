using ILGPU;
using ILGPU.Algorithms;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Kernels.Rope;

internal struct RopeArgs
{
    public ArrayView<float> X;
    public ArrayView<int> Positions;
    public ArrayView<float> InvFreq;
    public int Heads, HeadDim, Interleaved, Pairs;   // Pairs: rotated pairs per head (HeadDim / 2 unless partial rotary)
    public float MScale;                             // factor on cos and sin (1: plain RoPE)
}

internal struct RotateCacheArgs
{
    public ArrayView<float> F32;      // the cache as F32, or
    public ArrayView<ushort> F16;     // as F16 bits (F16 != 0)
    public ArrayView<float> InvFreq;
    public long Offset;               // first element of the rotated rows
    public int HeadDim, Interleaved, Delta, IsF16, Pairs;
}

/// <summary>ILGPU twin of RoPE: one thread per rotated pair; the angle is formed in double as on the CPU.</summary>
internal static class RopeIlgpu
{
    public static void Apply(Index1D index, RopeArgs a)
    {
        int half = a.Pairs;
        int i = index % half;
        int h = (index / half) % a.Heads;
        int r = index / (half * a.Heads);
        double angle = a.Positions[r] * (double)a.InvFreq[i];
        float c = (float)XMath.Cos(angle) * a.MScale, s = (float)XMath.Sin(angle) * a.MScale;
        long head = (long)r * a.Heads * a.HeadDim + h * a.HeadDim;
        int i0 = a.Interleaved != 0 ? 2 * i : i, i1 = a.Interleaved != 0 ? 2 * i + 1 : i + half;
        float x0 = a.X[head + i0], x1 = a.X[head + i1];
        a.X[head + i0] = x0 * c - x1 * s;
        a.X[head + i1] = x0 * s + x1 * c;
    }

    /// <summary>RopeCpu.RotateRows's twin: cached key rows rotated by Delta positions (context shift), one thread per pair.</summary>
    public static void RotateCache(Index1D index, RotateCacheArgs a)
    {
        int half = a.Pairs;
        int i = index % half;
        long head = a.Offset + (long)(int)(index / half) * a.HeadDim;
        double angle = a.Delta * (double)a.InvFreq[i];
        float c = (float)XMath.Cos(angle), s = (float)XMath.Sin(angle);
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

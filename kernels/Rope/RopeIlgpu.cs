using ILGPU;
using ILGPU.Algorithms;

namespace KernelEngine.Kernels.Rope;

public struct RopeArgs
{
    public ArrayView<float> X;
    public ArrayView<int> Positions;
    public ArrayView<float> InvFreq;
    public int Heads, HeadDim, Interleaved;
}

/// <summary>ILGPU twin of RoPE: one thread per rotated pair; the angle is formed in double as on the CPU.</summary>
public static class RopeIlgpu
{
    public static void Apply(Index1D index, RopeArgs a)
    {
        int half = a.HeadDim / 2;
        int i = index % half;
        int h = (index / half) % a.Heads;
        int r = index / (half * a.Heads);
        double angle = a.Positions[r] * (double)a.InvFreq[i];
        float c = (float)XMath.Cos(angle), s = (float)XMath.Sin(angle);
        long head = (long)r * a.Heads * a.HeadDim + h * a.HeadDim;
        int i0 = a.Interleaved != 0 ? 2 * i : i, i1 = a.Interleaved != 0 ? 2 * i + 1 : i + half;
        float x0 = a.X[head + i0], x1 = a.X[head + i1];
        a.X[head + i0] = x0 * c - x1 * s;
        a.X[head + i1] = x0 * s + x1 * c;
    }
}

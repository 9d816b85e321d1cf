using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace KernelEngine.Kernels;

/// <summary>Small vector helpers shared by the CPU kernels.</summary>
internal static class VectorMath
{
    /// <summary>Sum of 16 lanes as a halving tree (512 → 256 → 128 → scalar): 4 adds deep, where Vector512.Sum
    /// (.NET 10) emits a ~25-instruction sequential reduction that dominates short rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static float Sum(Vector512<float> v)
    {
        var h = v.GetLower() + v.GetUpper();
        var q = h.GetLower() + h.GetUpper();
        q += Vector128.Shuffle(q, Vector128.Create(2, 3, 0, 1));
        q += Vector128.Shuffle(q, Vector128.Create(1, 0, 3, 2));
        return q.ToScalar();
    }
}

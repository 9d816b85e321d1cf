using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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

    /// <summary>The largest of 8 lanes by vmaxps (x86 with AVX): no IEEE NaN handling, for the activation quantizers' block
    /// maxima (a NaN activation makes a NaN row either way).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static float MaxNative(Vector256<float> v)
    {
        var m = Sse.Max(v.GetLower(), v.GetUpper());
        m = Sse.Max(m, Sse.Shuffle(m, m, 0b01_00_11_10));
        return Sse.MaxScalar(m, Sse.Shuffle(m, m, 0b10_11_00_01)).ToScalar();
    }

    /// <summary><see cref="MaxNative(Vector256{float})"/> of 16 lanes (AVX-512).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static float MaxNative(Vector512<float> v) => MaxNative(Avx.Max(v.GetLower(), v.GetUpper()));
}

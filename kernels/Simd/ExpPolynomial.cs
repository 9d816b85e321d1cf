using System.Runtime.CompilerServices;

namespace KernelEngine.Kernels.Simd;

/// <summary>
/// e^x for f32 lanes (Cephes' expf: x = n·ln 2 + r, |r| ≤ ln 2 / 2, a degree-6 polynomial for e^r, 2^n put into the
/// exponent bits), within 2 ulp. Written on <see cref="ISimd{V}"/> and inlined into the kernels that call it: the
/// runtime's Vector512.Exp runs its body as a separate method, which under default host settings stays unoptimized
/// (tier 0, lane by lane) for a whole short generation. Inputs below -87.3 give e^-87.3 ≈ 1.2e-38 (softmax's masked
/// -∞ scores contribute nothing), above 88 give e^88.
/// </summary>
internal static class ExpPolynomial
{
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static V Exp<S, V>(V x) where S : ISimd<V> where V : struct
    {
        x = S.Clamp(x, S.Broadcast(-87.33654f), S.Broadcast(88f));
        V fn = S.ConvertI32ToF32(S.RoundToI32(S.Mul(x, S.Broadcast(1.44269504088896341f))));   // n = round(x / ln 2), -126..127
        x = S.Fma(fn, S.Broadcast(-0.693359375f), x);
        x = S.Fma(fn, S.Broadcast(2.12194440e-4f), x);
        V p = S.Broadcast(1.9875691500e-4f);
        p = S.Fma(p, x, S.Broadcast(1.3981999507e-3f));
        p = S.Fma(p, x, S.Broadcast(8.3334519073e-3f));
        p = S.Fma(p, x, S.Broadcast(4.1665795894e-2f));
        p = S.Fma(p, x, S.Broadcast(1.6666665459e-1f));
        p = S.Fma(p, x, S.Broadcast(5.0000001201e-1f));
        V y = S.Add(S.Fma(p, S.Mul(x, x), x), S.Broadcast(1f));
        // 2^n: n + 127 in the exponent field
        V twoN = S.ShiftLeftI32(S.RoundToI32(S.Add(fn, S.Broadcast(127f))), 23);
        return S.Mul(y, twoN);
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// fp16 weights copied at load times 2^shift, so that fp16 subnormals (|w| &lt; 2^-14) become normal halves. The register
/// widening (<see cref="HalfVector"/>) turns an fp16 subnormal into an f32 subnormal, and cores without denormal
/// handling in the FMA unit (Intel's) pay a microcode assist for each vector that holds one — a few per thousand
/// weights of a real or random matrix are enough to slow fp16 decode by a sixth (README). Power-of-two scaling is exact
/// both ways (the shift is chosen so no weight overflows), and the readers multiply their results by 2^-shift, so
/// every result is bit for bit the one the unscaled weights give.
/// </summary>
internal static unsafe class HalfPrescale
{
    /// <summary>2^-24 (the smallest fp16 subnormal) · 2^10 = 2^-14, the smallest normal half.</summary>
    public const int MaxShift = 10;

    /// <summary>The shift for n halves: 0 when none is subnormal or some is Inf/NaN, else as large as the largest
    /// magnitude allows (up to <see cref="MaxShift"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int ChooseShift(ushort* w, long n)
    {
        var magMask = Vector128.Create((ushort)0x7FFF);
        var maxV = Vector128<ushort>.Zero;
        var sub = Vector128<ushort>.Zero;
        long i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var m = Vector128.Load(w + i) & magMask;
            maxV = Vector128.Max(maxV, m);
            sub |= Vector128.LessThan(m, Vector128.Create((ushort)0x400)) & ~Vector128.Equals(m, Vector128<ushort>.Zero);
        }
        int max = 0;
        for (int k = 0; k < 8; k++) max = Math.Max(max, maxV.GetElement(k));
        bool subnormal = sub != Vector128<ushort>.Zero;
        for (; i < n; i++)
        {
            int m = w[i] & 0x7FFF;
            max = Math.Max(max, m);
            subnormal |= m is > 0 and < 0x400;
        }
        if (!subnormal || max >= 0x7C00) return 0;
        return Math.Min(MaxShift, 30 - (max >> 10));
    }

    /// <summary>dst = src · 2^shift, exactly (shift from <see cref="ChooseShift"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Copy(ushort* src, ushort* dst, long n, int shift)
    {
        if (shift == 0) { Buffer.MemoryCopy(src, dst, 2 * n, 2 * n); return; }
        var expMask = Vector128.Create((ushort)0x7C00);
        var add = Vector128.Create((ushort)(shift << 10));
        long i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var v = Vector128.Load(src + i);
            var zeroExp = Vector128.Equals(v & expMask, Vector128<ushort>.Zero);
            // normal halves: the exponent field grows by shift; zeros stay; subnormals are fixed one by one below
            Vector128.ConditionalSelect(zeroExp, v, v + add).Store(dst + i);
            if ((zeroExp & ~Vector128.Equals(v & Vector128.Create((ushort)0x3FF), Vector128<ushort>.Zero)) != Vector128<ushort>.Zero)
                for (long k = i; k < i + 8; k++) dst[k] = Scale(src[k], shift);
        }
        for (; i < n; i++) dst[i] = Scale(src[i], shift);
    }

    /// <summary>One half times 2^shift (exact).</summary>
    public static ushort Scale(ushort h, int shift)
    {
        if ((h & 0x7C00) != 0) return (ushort)(h + (shift << 10));
        if ((h & 0x3FF) == 0) return h;
        float magnitude = (h & 0x3FF) * MathF.ScaleB(1f, shift - 24);
        return (ushort)(BitConverter.HalfToUInt16Bits((Half)magnitude) | (h & 0x8000));
    }

    /// <summary>2^-shift, what a result computed from prescaled weights is multiplied by.</summary>
    public static float Unscale(int shift) => BitConverter.Int32BitsToSingle((127 - shift) << 23);
}

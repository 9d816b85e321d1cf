using KernelEngine.Kernels.MatMul;
using System.Runtime.InteropServices;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>The scalar fp16 → f32 conversion the kernels use for block scales, against System.Half on every finite value
/// (subnormals included: K-quant scales of small weights are fp16 subnormals).</summary>
public sealed class HalfConversionTests
{
    [Test]
    public void ToSingle_EqualsSystemHalf_ForEveryFiniteHalf()
    {
        int bad = 0, subnormals = 0;
        for (int h = 0; h < 65536; h++)
        {
            var half = BitConverter.UInt16BitsToHalf((ushort)h);
            if (!Half.IsFinite(half)) continue;
            if (Half.IsSubnormal(half)) subnormals++;
            if (BitConverter.SingleToInt32Bits((float)half) != BitConverter.SingleToInt32Bits(HalfVector.ToSingle((ushort)h))) bad++;
        }
        Assert.That(subnormals, Is.EqualTo(2046));
        Assert.That(bad, Is.Zero);
    }

    /// <summary>The activation block scale's rounding to fp16 (QuantMatVecCpu.RoundToHalf: a mantissa rounding in fp16's
    /// normal range, System.Half elsewhere) against System.Half: every float whose low 13 mantissa bits are a tie, one above
    /// and one below it (the rounding edges), across the whole range, and the range's ends; tolerance 0.</summary>
    [Test]
    public void RoundToHalf_EqualsSystemHalf_AtEveryRoundingEdge()
    {
        int bad = 0, checkedValues = 0;
        foreach (uint sign in new[] { 0u, 0x80000000u })
            for (uint top = 0; top < (0x7F800000u >> 13); top++)
                foreach (uint low in new[] { 0u, 0xFFFu, 0x1000u, 0x1001u, 0x1FFFu })
                {
                    float f = BitConverter.UInt32BitsToSingle(sign | top << 13 | low);
                    checkedValues++;
                    if (BitConverter.SingleToInt32Bits(QuantMatVecCpu.RoundToHalf(f)) != BitConverter.SingleToInt32Bits((float)(Half)f)) bad++;
                }
        foreach (float f in new[] { 0f, 6.103515625e-05f, 6.1035153e-05f, 65504f, 65519.996f, 65520f, float.MaxValue, float.Epsilon })
            Assert.That(QuantMatVecCpu.RoundToHalf(f), Is.EqualTo((float)(Half)f), $"{f:R}");
        Assert.That(checkedValues, Is.GreaterThan(1_000_000));
        Assert.That(bad, Is.Zero);
    }

    /// <summary>The paired fp16 dot product leaves the 2^112 re-bias out of the weights; products with small activations
    /// (|w·x| far below 2^-14, as after a small attention output) must keep f32 precision, not fall to subnormals or zero.</summary>
    [TestCase(1e-6f)]
    [TestCase(1f)]
    [TestCase(3e4f)]
    public unsafe void HalfPaired_KeepsPrecision_ForSmallAndLargeActivations(float xScale)
    {
        int n = 8 * 96;   // a multiple of every width's pair period (8, 16, 32)
        var rng = new Random(7);
        var w = new ushort[n];
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            w[i] = BitConverter.HalfToUInt16Bits((Half)((rng.NextSingle() - 0.5f) * 2e-3f));
            x[i] = (rng.NextSingle() - 0.5f) * xScale;
        }
        double expected = 0, magnitude = 0;
        for (int i = 0; i < n; i++) { expected += (double)(float)BitConverter.UInt16BitsToHalf(w[i]) * x[i]; magnitude += Math.Abs((double)(float)BitConverter.UInt16BitsToHalf(w[i]) * x[i]); }
        float* xd = (float*)NativeMemory.AlignedAlloc((nuint)n * 4, 64);
        try
        {
            fixed (float* px = x) fixed (ushort* pw = w)
            {
                if (DenseDot.PairElements == 0) Assert.Ignore("no SIMD width for paired loads");
                DenseDot.Deinterleave(px, n, xd);
                double paired = DenseDot.HalfPaired(xd, pw, n, bf16: false);
                double plain = DenseDot.Half(px, pw, n, bf16: false);
                // f32 accumulation of n terms: relative to the sum of magnitudes, well under 1e-5
                Assert.That(Math.Abs(paired - expected), Is.LessThanOrEqualTo(1e-5 * magnitude), "paired");
                Assert.That(Math.Abs(plain - expected), Is.LessThanOrEqualTo(1e-5 * magnitude), "in order");
            }
        }
        finally { NativeMemory.AlignedFree(xd); }
    }
}

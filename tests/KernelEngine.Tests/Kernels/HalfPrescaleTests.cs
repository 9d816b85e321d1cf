using KernelEngine.Backends;
using KernelEngine.Kernels;
using KernelEngine.Kernels.MatMul;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>
/// fp16 weights copied at load with a power-of-two prescale (no subnormal halves for the FMA units): the scaling is exact
/// for every half, the shift never overflows a weight, and every CPU reader (decode matvec, prefill GEMM, embedding
/// rows) gives bit for bit what the unscaled weights give.
/// </summary>
public sealed class HalfPrescaleTests
{
    [Test]
    public void Scale_IsExact_ForEveryFiniteHalfThatFits()
    {
        int checkedValues = 0;
        for (int shift = 1; shift <= HalfPrescale.MaxShift; shift++)
            for (int h = 0; h < 65536; h++)
            {
                var half = BitConverter.UInt16BitsToHalf((ushort)h);
                if (!Half.IsFinite(half) || ((h & 0x7FFF) >> 10) + shift > 30) continue;
                float scaled = (float)BitConverter.UInt16BitsToHalf(HalfPrescale.Scale((ushort)h, shift));
                Assert.That(BitConverter.SingleToInt32Bits(scaled), Is.EqualTo(BitConverter.SingleToInt32Bits((float)half * MathF.ScaleB(1f, shift))),
                    $"half 0x{h:X4} shift {shift}");
                checkedValues++;
            }
        Assert.That(checkedValues, Is.GreaterThan(500_000));
    }

    [Test]
    public unsafe void ChooseShift_LeavesRoomForTheLargestWeight_AndSkipsTensorsWithoutSubnormals()
    {
        static int Shift(params float[] v)
        {
            var h = v.Select(f => BitConverter.HalfToUInt16Bits((Half)f)).ToArray();
            fixed (ushort* p = h) return HalfPrescale.ChooseShift(p, h.Length);
        }
        Assert.That(Shift(0.5f, -0.01f, 0f), Is.Zero, "no subnormal: nothing to do");
        Assert.That(Shift(0.5f, 1e-6f, -3e-7f), Is.EqualTo(HalfPrescale.MaxShift));
        Assert.That(Shift(60000f, 1e-6f), Is.Zero, "the largest half leaves no room");
        Assert.That(Shift(200f, 1e-6f), Is.EqualTo(8), "200 · 2^8 = 51200 still fits, 2^9 would not");
        Assert.That(Shift(float.PositiveInfinity, 1e-6f), Is.Zero);
        Assert.That(Shift(float.NaN, 1e-6f), Is.Zero);
    }

    [Test]
    public unsafe void Copy_EqualsScale_ElementByElement_AtOddLengths()
    {
        var rng = new Random(3);
        foreach (int n in new[] { 1, 7, 8, 9, 1001 })
        {
            var src = Enumerable.Range(0, n).Select(i => BitConverter.HalfToUInt16Bits((Half)((rng.NextSingle() - 0.5f) * (i % 3 == 0 ? 1e-5f : 0.1f)))).ToArray();
            if (n > 2) src[1] = 0x8000;   // -0
            var dst = new ushort[n];
            fixed (ushort* s = src) fixed (ushort* d = dst) HalfPrescale.Copy(s, d, n, 7);
            for (int i = 0; i < n; i++) Assert.That(dst[i], Is.EqualTo(HalfPrescale.Scale(src[i], 7)), $"n {n} element {i}");
        }
    }

    /// <summary>Weights of 2 MiB and more are copied (and prescaled); results equal a backend that reads them in place.</summary>
    [TestCase(1024, 1024)]   // paired fp16 loads (a multiple of every pair period)
    [TestCase(1001, 1049)]   // odd: the in-order loads and scalar tails
    public void F16Copy_GivesBitIdenticalMatMulAndEmbedding(int outDim, int inDim)
    {
        var rng = new Random(11);
        var w = new float[outDim * inDim];
        for (int i = 0; i < w.Length; i++)
            w[i] = i % 97 == 0 ? (rng.NextSingle() - 0.5f) * 1e-5f : i % 89 == 0 ? 0f : (rng.NextSingle() - 0.5f) * 0.08f;   // ~1 % subnormal halves
        var bytes = TestData.Encode(w, WeightType.F16, outDim, inDim);
        Assert.That(bytes.Length, Is.GreaterThanOrEqualTo(2 << 20), "large enough to be copied");
        unsafe { fixed (byte* p = bytes) Assert.That(HalfPrescale.ChooseShift((ushort*)p, bytes.Length / 2), Is.EqualTo(HalfPrescale.MaxShift)); }
        float[] Run(bool copy, int rows)
        {
            using var b = new CpuBackend(copyWeights: copy);
            using var weight = b.Upload(new HostWeight("w", outDim, inDim, WeightType.F16, bytes));
            var x = new float[rows * inDim];
            var xr = new Random(5);
            for (int i = 0; i < x.Length; i++) x[i] = xr.NextSingle() - 0.5f;
            using var xt = b.Tensor(x, rows, inDim);
            using var y = b.Allocate(rows, outDim);
            b.MatMul(xt, weight, null, y, rows);
            using var e = b.Allocate(3, inDim);
            b.Embed(weight, new[] { 0, outDim / 2, outDim - 1 }, e);
            return b.ReadAll(y).Concat(b.ReadAll(e)).ToArray();
        }
        foreach (int rows in new[] { 1, 3, 40 })
        {
            var inPlace = Run(copy: false, rows);
            var copied = Run(copy: true, rows);
            int differ = 0;
            for (int i = 0; i < inPlace.Length; i++)
                if (BitConverter.SingleToInt32Bits(inPlace[i]) != BitConverter.SingleToInt32Bits(copied[i])) differ++;
            Assert.That(differ, Is.Zero, $"{rows} rows: results that differ from the in-place weights");
        }
    }
}

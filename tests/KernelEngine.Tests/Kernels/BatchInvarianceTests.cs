using KernelEngine.Kernels;
using KernelEngine.Kernels.MatMul;
using KernelEngine.Kernels.Threading;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>
/// Batched decoding's promise: a sequence decoded in a batch gets the logits it gets alone. The decode product of up to
/// <see cref="MatVecCpu.MaxRows"/> rows must give every row bit for bit what a one-row product gives it (tolerance 0),
/// for every weight format, fused parts included; the rows here are deliberately of very different magnitudes.
/// </summary>
public sealed unsafe class BatchInvarianceTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var type in new[] { WeightType.F32, WeightType.F16, WeightType.BF16, WeightType.Q8_0, WeightType.Q4_0, WeightType.Q4_1,
                     WeightType.Q5_0, WeightType.Q5_1, WeightType.Q4_K, WeightType.Q5_K, WeightType.Q6_K })
            foreach (int rows in new[] { 2, 7, MatVecCpu.MaxRows })
                yield return new TestCaseData(type, rows, KQuantMatVecCpu.Handles(type) ? 512 : 736);
        // Q4_0 at odd block counts (27, 29): the narrow kernels' whole groups, then scalar blocks
        foreach (int inDim in new[] { 864, 928 })
            yield return new TestCaseData(WeightType.Q4_0, 8, inDim);
    }

    [TestCaseSource(nameof(Cases))]
    public void MultiRowDecode_EqualsEachRowAlone(WeightType type, int rows, int inDim)
    {
        int outA = 37, outB = 19;
        var x = new float[rows * inDim];
        for (int r = 0; r < rows; r++)
            TestData.Random(inDim, 100 + r, MathF.Pow(4, r % 5 - 2)).CopyTo(x, r * inDim);
        var wa = TestData.Encode(TestData.Random(outA * inDim, 1), type, outA, inDim);
        var wb = TestData.Encode(TestData.Random(outB * inDim, 2), type, outB, inDim);
        var bias = TestData.Random(outA, 3);
        byte* pa = type.HasPackedCpuDecode() ? Pack(wa, type, outA, inDim) : null, pb = type.HasPackedCpuDecode() ? Pack(wb, type, outB, inDim) : null;
        try
        {
            var batchA = new float[rows * outA]; var batchB = new float[rows * outB];
            var aloneA = new float[rows * outA]; var aloneB = new float[rows * outB];
            fixed (float* px = x, pBias = bias, ya = batchA, yb = batchB, ya1 = aloneA, yb1 = aloneB)
            fixed (byte* da = wa, db = wb)
            {
                MatVecCpu.MatVec(WorkerPool.Shared, px, inDim, [Part(da, pa, type, outA, pBias, ya), Part(db, pb, type, outB, null, yb)], rows);
                for (int r = 0; r < rows; r++)
                    MatVecCpu.MatVec(WorkerPool.Shared, px + r * inDim, inDim,
                        [Part(da, pa, type, outA, pBias, ya1 + r * outA), Part(db, pb, type, outB, null, yb1 + r * outB)]);
            }
            Assert.That(batchA, Is.EqualTo(aloneA), "fused part 0 (with bias)");
            Assert.That(batchB, Is.EqualTo(aloneB), "fused part 1");
            Assert.That(aloneA.All(float.IsFinite) && aloneA.Any(v => v != 0), Is.True, "the products are real numbers");
        }
        finally
        {
            if (pa != null) PackedQuant.Free(pa);
            if (pb != null) PackedQuant.Free(pb);
        }
    }

    private static byte* Pack(byte[] stored, WeightType type, int rows, int cols)
    {
        fixed (byte* s = stored) return PackedQuant.Pack(s, type, rows, cols);
    }

    private static MatVecPart Part(byte* w, byte* packed, WeightType type, int outDim, float* bias, float* y) =>
        new() { W = w, Packed = packed, Type = type, OutDim = outDim, Bias = bias, Y = y };
}

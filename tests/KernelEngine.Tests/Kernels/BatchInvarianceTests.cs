using KernelEngine.Kernels;
using KernelEngine.Kernels.Activation;
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

    /// <summary>The norm inside the product's launch (each row normed by the task preparing it, serially below 4 rows),
    /// and with <paramref name="gated"/> act(gate)·up applied by each task to its rows, give the normed rows and the
    /// results of RmsNorm, the product and SiluMul / GeluMul over the batch, bit for bit.</summary>
    [TestCase(WeightType.F32, 1, false)]
    [TestCase(WeightType.F32, 8, true)]
    [TestCase(WeightType.F16, 3, true)]
    [TestCase(WeightType.Q8_0, 5, false)]
    [TestCase(WeightType.Q4_0, 1, true)]
    [TestCase(WeightType.Q4_0, 3, false)]
    [TestCase(WeightType.Q4_0, 8, true)]
    [TestCase(WeightType.Q4_0, 8, false)]
    [TestCase(WeightType.Q4_K, MatVecCpu.MaxRows, true)]
    public void NormPrologue_EqualsNormThenProduct(WeightType type, int rows, bool gated)
    {
        // gated: gate and up of the same rows, 48 (3 tiles, so tasks cut rows of a 16-row tile into no pieces), else 37 and 19
        int inDim = KQuantMatVecCpu.Handles(type) ? 512 : 736, outA = gated ? 48 : 37, outB = gated ? 48 : 19;
        var x = new float[rows * inDim];
        for (int r = 0; r < rows; r++)
            TestData.Random(inDim, 300 + r, MathF.Pow(4, r % 5 - 2)).CopyTo(x, r * inDim);
        var norm = TestData.Random(inDim, 7);
        var wa = TestData.Encode(TestData.Random(outA * inDim, 1), type, outA, inDim);
        var wb = TestData.Encode(TestData.Random(outB * inDim, 2), type, outB, inDim);
        byte* pa = type.HasPackedCpuDecode() ? Pack(wa, type, outA, inDim) : null, pb = type.HasPackedCpuDecode() ? Pack(wb, type, outB, inDim) : null;
        try
        {
            var fusedA = new float[rows * outA]; var fusedB = new float[rows * outB]; var fusedNormed = new float[rows * inDim];
            var refA = new float[rows * outA]; var refB = new float[rows * outB]; var refNormed = new float[rows * inDim];
            var source = (float[])x.Clone();
            fixed (float* px = x, pn = norm, ya = fusedA, yb = fusedB, nf = fusedNormed, ya1 = refA, yb1 = refB, nr = refNormed)
            fixed (byte* da = wa, db = wb)
            {
                bool gelu = type == WeightType.F16;
                MatVecCpu.MatVec(WorkerPool.Shared, px, inDim, [Part(da, pa, type, outA, null, ya), Part(db, pb, type, outB, null, yb)], rows,
                    new MatVecFusion { NormWeight = pn, NormEps = 1e-5f, Normed = nf, Gated = !gated ? null : gelu ? &ActivationCpu.GeluMul : &ActivationCpu.SiluMul });
                KernelEngine.Kernels.Norm.NormCpu.RmsNorm(WorkerPool.Shared, px, pn, nr, rows, inDim, 1e-5f);
                MatVecCpu.MatVec(WorkerPool.Shared, nr, inDim, [Part(da, pa, type, outA, null, ya1), Part(db, pb, type, outB, null, yb1)], rows);
                if (gated && gelu) ActivationCpu.GeluMul(WorkerPool.Shared, ya1, yb1, rows * outA);
                else if (gated) ActivationCpu.SiluMul(WorkerPool.Shared, ya1, yb1, rows * outA);
            }
            Assert.That(fusedNormed, Is.EqualTo(refNormed), "normed rows");
            Assert.That(fusedA, Is.EqualTo(refA), gated ? "act(gate) · up" : "part 0 of the normed rows");
            Assert.That(fusedB, Is.EqualTo(refB), "part 1 of the normed rows");
            Assert.That(x, Is.EqualTo(source), "the input is left as it was");
            Assert.That(refNormed.Any(v => v != 0) && refA.All(float.IsFinite) && refA.Any(v => v != 0), Is.True, "real numbers");
        }
        finally
        {
            if (pa != null) PackedQuant.Free(pa);
            if (pb != null) PackedQuant.Free(pb);
        }
    }

    [Test]
    public void GatedProduct_RefusesPartsOfDifferentRows()
    {
        var a = new MatVecPart { Type = WeightType.F32, OutDim = 48 };
        var b = new MatVecPart { Type = WeightType.F32, OutDim = 40 };
        Assert.That(MatVecCpu.CanGate(a.OutDim, b.OutDim), Is.False, "different rows");
        Assert.That(MatVecCpu.CanGate(b.OutDim, b.OutDim), Is.False, "rows not a multiple of 16");
        Assert.That(MatVecCpu.CanGate(a.OutDim, a.OutDim), Is.True);
        Assert.Throws<ArgumentException>(() =>
        {
            float x = 0;
            MatVecCpu.MatVec(WorkerPool.Shared, &x, 1, [a, b], 1, new MatVecFusion { Gated = &ActivationCpu.SiluMul });
        }, "gate and up of different rows");
        Assert.Throws<ArgumentException>(() =>
        {
            float x = 0, r = 0;
            MatVecCpu.MatVec(WorkerPool.Shared, &x, 1, [a, a], 1, new MatVecFusion { Residual = &r });
        }, "a residual epilogue over two parts");
    }

    /// <summary>residual += the product inside the launch (each task adding the rows it computed) equals the product,
    /// then ActivationCpu.Add over the batch, bit for bit; the product itself still lands in y.</summary>
    [TestCase(WeightType.F32, 1)]
    [TestCase(WeightType.F16, 6)]
    [TestCase(WeightType.Q8_0, 3)]
    [TestCase(WeightType.Q4_0, 1)]
    [TestCase(WeightType.Q4_0, 8)]
    [TestCase(WeightType.Q6_K, MatVecCpu.MaxRows)]
    public void ResidualEpilogue_EqualsProductThenAdd(WeightType type, int rows)
    {
        int inDim = KQuantMatVecCpu.Handles(type) ? 512 : 736, outDim = 37;
        var x = new float[rows * inDim];
        for (int r = 0; r < rows; r++) TestData.Random(inDim, 500 + r, MathF.Pow(4, r % 5 - 2)).CopyTo(x, r * inDim);
        var w = TestData.Encode(TestData.Random(outDim * inDim, 1), type, outDim, inDim);
        var bias = TestData.Random(outDim, 3);
        var residual = TestData.Random(rows * outDim, 4, 10f);
        var fusedResidual = (float[])residual.Clone();
        byte* packed = type.HasPackedCpuDecode() ? Pack(w, type, outDim, inDim) : null;
        try
        {
            var fusedY = new float[rows * outDim]; var refY = new float[rows * outDim];
            fixed (float* px = x, pb = bias, yf = fusedY, yr = refY, rf = fusedResidual, rr = residual)
            fixed (byte* pw = w)
            {
                MatVecCpu.MatVec(WorkerPool.Shared, px, inDim, [Part(pw, packed, type, outDim, pb, yf)], rows, new MatVecFusion { Residual = rf });
                MatVecCpu.MatVec(WorkerPool.Shared, px, inDim, [Part(pw, packed, type, outDim, pb, yr)], rows);
                ActivationCpu.Add(rr, yr, rows * outDim);
            }
            Assert.That(fusedResidual, Is.EqualTo(residual), "residual + product");
            Assert.That(fusedY, Is.EqualTo(refY), "the product");
            Assert.That(refY.Any(v => v != 0) && residual.All(float.IsFinite), Is.True, "real numbers");
        }
        finally
        {
            if (packed != null) PackedQuant.Free(packed);
        }
    }

    private static byte* Pack(byte[] stored, WeightType type, int rows, int cols)
    {
        fixed (byte* s = stored) return PackedQuant.Pack(s, type, rows, cols);
    }

    private static MatVecPart Part(byte* w, byte* packed, WeightType type, int outDim, float* bias, float* y) =>
        new() { W = w, Packed = packed, Type = type, OutDim = outDim, Bias = bias, Y = y };
}

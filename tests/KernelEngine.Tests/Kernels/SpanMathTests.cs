using KernelEngine.Kernels.Simd;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>SpanMath (the span operations of a decode step) against scalar double references, on odd lengths (tails of
/// every width), at each SIMD width through CI's DOTNET_EnableAVX512=0 / DOTNET_EnableAVX2=0 passes. Tolerance: 1e-5
/// relative (f32 sums in a different order; the runtime's vector exp is within a few ulp).</summary>
public sealed class SpanMathTests
{
    [TestCase(1)]
    [TestCase(7)]
    [TestCase(33)]
    [TestCase(1001)]
    public void Operations_MatchScalarReference(int n)
    {
        var x = TestData.Random(n, 71, 3f);
        var y = TestData.Random(n, 72, 3f);
        var w = TestData.Random(n, 73, 1f);
        double Rel(double got, double want) => Math.Abs(got - want) / Math.Max(1, Math.Abs(want));
        Assert.That(SpanMath.Max(x), Is.EqualTo(x.Max()));
        Assert.That(SpanMath.IndexOfMax(x), Is.EqualTo(Array.IndexOf(x, x.Max())));
        Assert.That(Rel(SpanMath.Sum(x), x.Sum(v => (double)v)), Is.LessThanOrEqualTo(1e-5));
        Assert.That(Rel(SpanMath.Dot(x, y), x.Zip(y).Sum(p => (double)p.First * p.Second)), Is.LessThanOrEqualTo(1e-5));
        Assert.That(Rel(SpanMath.SumOfSquares(x), x.Sum(v => (double)v * v)), Is.LessThanOrEqualTo(1e-5));
        var dst = new float[n];
        SpanMath.ScaleShift(x, 0.5f, -1.25f, dst);
        Assert.That(dst.Select((v, i) => Rel(v, x[i] * 0.5 - 1.25)).Max(), Is.LessThanOrEqualTo(1e-6));
        SpanMath.ExpScaleShift(x, 0.5f, -1.25f, dst);
        Assert.That(dst.Select((v, i) => Rel(v, Math.Exp(x[i] * 0.5 - 1.25))).Max(), Is.LessThanOrEqualTo(1e-5));
        SpanMath.MultiplyAdd(x, 2f, y, dst);
        Assert.That(dst.Select((v, i) => Rel(v, x[i] * 2.0 + y[i])).Max(), Is.LessThanOrEqualTo(1e-6));
        SpanMath.MultiplyScaled(x, w, 0.25f, dst);
        Assert.That(dst.Select((v, i) => Rel(v, x[i] * 0.25 * w[i])).Max(), Is.LessThanOrEqualTo(1e-6));
        SpanMath.FusedMultiplyAdd(x, w, y, dst);
        Assert.That(dst.Select((v, i) => Rel(v, (double)x[i] * w[i] + y[i])).Max(), Is.LessThanOrEqualTo(1e-6));
        // the exp polynomial's input clamp (native min/max) keeps a NaN a NaN and saturates the ends as e^±88 would
        var edges = new float[n];
        for (int i = 0; i < n; i++) edges[i] = (i % 4) switch { 0 => float.NaN, 1 => -1000f, 2 => 1000f, _ => 0f };
        SpanMath.ExpScaleShift(edges, 1f, 0f, dst);
        for (int i = 0; i < n; i++)
            Assert.That(dst[i], (i % 4) switch { 0 => Is.NaN, 1 => Is.LessThan(1e-37f), 2 => Is.GreaterThan(1e38f), _ => Is.EqualTo(1f) }, $"exp({edges[i]})");
        x[n / 2] = float.NaN;
        Assert.That(SpanMath.IndexOfMax(x), Is.EqualTo(n / 2), "a NaN is reported where it is, as TensorPrimitives does");
    }

    /// <summary>Equal maxima: the first one's index, wherever the two fall in or across vectors and tails.</summary>
    [TestCase(1001, 900, 950)]
    [TestCase(1001, 5, 17)]
    [TestCase(1001, 998, 1000)]
    [TestCase(40, 33, 34)]
    public void IndexOfMax_FirstOfEqualMaxima(int n, int first, int second)
    {
        var x = TestData.Random(n, 74, 1f);
        x[first] = x[second] = 5f;
        Assert.That(SpanMath.IndexOfMax(x), Is.EqualTo(first));
    }
}

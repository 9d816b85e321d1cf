using KernelEngine.Kernels;
using KernelEngine.Kernels.MatMul;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>
/// The tiled Q4_0 layout of the 512-bit kernels (<see cref="Q4_0Tiles"/>) on a matrix that is not whole tiles (37 rows:
/// 2 tiles and 5 rows of a third) with an odd block count (3): widening a row gives ggml's dequantization exactly; the
/// 1-, 2-, 4- and 8-row kernels match the scalar reference (Q8_0 activations, tolerance 1e-5 relative to the row's scale) and
/// one another bit for bit, over ranges that cut tiles, and write nothing outside the range.
/// </summary>
public sealed unsafe class Q4_0TileTests
{
    private const int Out = 37, Cols = 96;

    [SetUp]
    public void RequireTiles()
    {
        if (!Q4_0Tiles.IsUsed) Assert.Ignore("Q4_0 is packed row by row on this CPU (no AVX-512BW): the tiled layout is not used");
    }

    [Test]
    public void RowToF32_IsGgmlDequantization()
    {
        var stored = TestData.Encode(TestData.Random(Out * Cols, 11), WeightType.Q4_0, Out, Cols);
        var expected = ScalarReference.Dequantize(stored, WeightType.Q4_0, Out, Cols);
        byte* packed = Pack(stored);
        try
        {
            var row = new float[Cols];
            for (int r = 0; r < Out; r++)
            {
                fixed (float* p = row) PackedQuant.RowToF32(packed, WeightType.Q4_0, Cols, r, p);
                Assert.That(row, Is.EqualTo(expected.AsSpan(r * Cols, Cols).ToArray()), $"row {r}");
            }
        }
        finally { PackedQuant.Free(packed); }
    }

    [TestCase(0, Out)]
    [TestCase(5, Out)]
    [TestCase(17, 33)]
    [TestCase(16, 32)]
    public void OneTwoFourAndEightRows_MatchTheReference_AndEachOther(int o0, int o1)
    {
        var stored = TestData.Encode(TestData.Random(Out * Cols, 12), WeightType.Q4_0, Out, Cols);
        const int R = 8;
        var x = new float[R * Cols];
        for (int r = 0; r < R; r++) TestData.Random(Cols, 20 + r, MathF.Pow(8, r % 4 - 1)).CopyTo(x, r * Cols);
        var reference = ScalarReference.MatMulAsComputed(x, R, Cols, stored, WeightType.Q4_0, Out, null, cpuDecode: true);
        byte* packed = Pack(stored);
        try
        {
            var one = Fill(R * Out); var two = Fill(R * Out); var four = Fill(R * Out); var eight = Fill(R * Out);
            var act = stackalloc QuantMatVecCpu.Activations[R];
            fixed (float* px = x, y1 = one, y2 = two, y4 = four, y8 = eight)
            {
                for (int r = 0; r < R; r++) act[r] = QuantMatVecCpu.Prepare(px + r * Cols, Cols, groupOrder: true, slot: r);
                for (int r = 0; r < R; r++) Q4_0Tiles.Run<Q4_0Tiles.One>(packed, Out, Cols, act + r, o0, o1, y1 + r * Out, 0, prefetch: r == 0);
                for (int r = 0; r < R; r += 2) Q4_0Tiles.Run<Q4_0Tiles.Two>(packed, Out, Cols, act + r, o0, o1, y2 + r * Out, Out, prefetch: r == 2);
                for (int r = 0; r < R; r += 4) Q4_0Tiles.Run<Q4_0Tiles.Four>(packed, Out, Cols, act + r, o0, o1, y4 + r * Out, Out, prefetch: false);
                Q4_0Tiles.Run<Q4_0Tiles.Eight>(packed, Out, Cols, act, o0, o1, y8, Out, prefetch: true);
            }
            Assert.That(two, Is.EqualTo(one), "2 rows at a time = 1 row at a time, bit for bit");
            Assert.That(four, Is.EqualTo(one), "4 rows at a time = 1 row at a time, bit for bit");
            Assert.That(eight, Is.EqualTo(one), "8 rows at a time = 1 row at a time, bit for bit");
            for (int r = 0; r < R; r++)
            {
                float scale = reference.AsSpan(r * Out, Out).ToArray().Max(MathF.Abs);
                for (int o = 0; o < Out; o++)
                {
                    float got = one[r * Out + o];
                    if (o < o0 || o >= o1) Assert.That(float.IsNaN(got), Is.True, $"row {r}, output {o} lies outside [{o0}, {o1}) and must stay untouched");
                    else Assert.That(got, Is.EqualTo(reference[r * Out + o]).Within(1e-5 * scale), $"row {r}, output {o}");
                }
            }
        }
        finally { PackedQuant.Free(packed); }
    }

    private static float[] Fill(int n) => Enumerable.Repeat(float.NaN, n).ToArray();

    private static byte* Pack(byte[] stored)
    {
        fixed (byte* s = stored) return PackedQuant.Pack(s, WeightType.Q4_0, Out, Cols);
    }
}

using KernelEngine.Kernels.MatMul;
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
}

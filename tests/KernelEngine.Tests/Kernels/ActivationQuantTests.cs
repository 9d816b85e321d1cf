using KernelEngine.Kernels.MatMul;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>
/// The activation rows the integer decode kernels read, against a scalar reference written here from ggml's definitions
/// (block_q8_K for the K-quants: d = amax / 127, q = nearest_int(x / d) with ties to even, Σq per 16 and per 32;
/// block_q8_0 for the others: d = amax / 127 kept in fp16, q = roundf(x / d)). Tolerance 0: these are integers and one
/// float each, and every width must give the same ones (CI runs this file with AVX-512 and AVX2 turned off too).
/// </summary>
public sealed unsafe class ActivationQuantTests
{
    [TestCase(256, 1f)]
    [TestCase(768, 3f)]
    [TestCase(3072, 1e-3f)]
    public void KQuantActivations_EqualScalarReference(int n, float scale)
    {
        var x = TestData.Random(n, 5, scale);
        x[3] = 0.5f * scale; x[4] = -x[3];   // ties are likely somewhere; make the block's extremes matter too
        fixed (float* px = x)
        {
            var a = KQuantMatVecCpu.Prepare(px, n);
            for (int b = 0; b < n / 256; b++)
            {
                float amax = 0;
                for (int j = 0; j < 256; j++) amax = MathF.Max(amax, MathF.Abs(x[b * 256 + j]));
                float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
                Assert.That(a.Dx[b], Is.EqualTo(d), $"scale of block {b}");
                var q = new int[256];
                for (int j = 0; j < 256; j++)
                {
                    q[j] = (int)MathF.Round(x[b * 256 + j] * id, MidpointRounding.ToEven);
                    Assert.That(a.Qx[b * 256 + j], Is.EqualTo(q[j]), $"q[{b * 256 + j}]");
                }
                for (int g = 0; g < 16; g++)
                    Assert.That(a.Sum16[b * 16 + g], Is.EqualTo(q.Skip(16 * g).Take(16).Sum()), $"Σ16 {g} of block {b}");
                for (int g = 0; g < 8; g++)
                    Assert.That(a.Sum32[b * 8 + g], Is.EqualTo(q.Skip(32 * g).Take(32).Sum()), $"Σ32 {g} of block {b}");
                // QxNib: each half's runs in the order [0-31, 64-95, 32-63, 96-127]
                for (int h = 0; h < 2; h++)
                    for (int r = 0; r < 4; r++)
                        for (int j = 0; j < 32; j++)
                            Assert.That(a.QxNib[b * 256 + 128 * h + 32 * r + j], Is.EqualTo(q[128 * h + 32 * (r switch { 1 => 2, 2 => 1, _ => r }) + j]));
            }
        }
    }

    [TestCase(32, 1f)]
    [TestCase(736, 3f)]
    [TestCase(3072, 1e-3f)]
    public void Q8_0Activations_EqualScalarReference(int n, float scale)
    {
        var x = TestData.Random(n, 6, scale);
        fixed (float* px = x)
        {
            var a = QuantMatVecCpu.Prepare(px, n, groupOrder: true);
            for (int b = 0; b < n / 32; b++)
            {
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = MathF.Max(amax, MathF.Abs(x[b * 32 + j]));
                float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
                Assert.That(a.Dx[b], Is.EqualTo((float)(Half)d), $"scale of block {b}");
                int sum = 0;
                for (int j = 0; j < 32; j++)
                {
                    int q = (int)MathF.Round(x[b * 32 + j] * id, MidpointRounding.AwayFromZero);
                    sum += q;
                    Assert.That(a.Qx[b * 32 + j], Is.EqualTo(q), $"q[{b * 32 + j}]");
                }
                int sum4x8 = 0;
                for (int g = 0; g < 8; g++) sum4x8 += a.Sum4x8[b * 8 + g];
                Assert.That(sum4x8, Is.EqualTo(8 * sum), $"8·Σq of block {b}");
            }
        }
    }
}

using KernelEngine.Decoding;
using KernelEngine.Formats;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Quant;
using KernelEngine.Tests.Kernels;
using NUnit.Framework;

namespace KernelEngine.Tests.Quant;

public sealed class QuantizationTests
{
    /// <summary>ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref, transcribed independently, byte for byte.</summary>
    private static byte[] GgmlReference(float[] x, WeightType type)
    {
        int nb = x.Length / 32;
        var outBytes = new List<byte>();
        for (int b = 0; b < nb; b++)
        {
            var v = x.AsSpan(b * 32, 32);
            if (type == WeightType.Q8_0)
            {
                float amax = 0;
                foreach (var f in v) amax = Math.Max(amax, Math.Abs(f));
                float d = amax / ((1 << 7) - 1), id = d != 0 ? 1.0f / d : 0.0f;
                outBytes.AddRange(BitConverter.GetBytes((Half)d));
                foreach (var f in v) outBytes.Add((byte)(sbyte)MathF.Round(f * id, MidpointRounding.AwayFromZero));
            }
            else
            {
                float amax = 0, max = 0;
                foreach (var f in v) if (amax < Math.Abs(f)) { amax = Math.Abs(f); max = f; }
                float d = max / -8, id = d != 0 ? 1.0f / d : 0.0f;
                outBytes.AddRange(BitConverter.GetBytes((Half)d));
                for (int j = 0; j < 16; j++)
                {
                    byte xi0 = (byte)Math.Min(15, (int)(sbyte)(v[j] * id + 8.5f));
                    byte xi1 = (byte)Math.Min(15, (int)(sbyte)(v[16 + j] * id + 8.5f));
                    outBytes.Add((byte)(xi0 | (xi1 << 4)));
                }
            }
        }
        return outBytes.ToArray();
    }

    [TestCase(WeightType.Q8_0, 32)]
    [TestCase(WeightType.Q8_0, 96)]
    [TestCase(WeightType.Q4_0, 32)]
    [TestCase(WeightType.Q4_0, 224)]
    public void QuantizeRow_IsByteExactWithGgml_AndDequantizesToTheBlockFormula(WeightType type, int n)
    {
        var x = TestData.Random(n, 21, 3f);
        x[5] = 0; x[7] = -3f;                 // exact extremes exercise the scale and rounding
        var got = TestData.Encode(x, type, 1, n);
        Assert.That(got, Is.EqualTo(GgmlReference(x, type)));
        Assert.That(got.Length, Is.EqualTo(type.RowBytes(n)));
        var deq = new float[n];
        unsafe
        {
            fixed (byte* p = got) fixed (float* d = deq)
                if (type == WeightType.Q8_0) BlockQuant.DequantizeRowQ8_0(p, n, d); else BlockQuant.DequantizeRowQ4_0(p, n, d);
        }
        Assert.That(deq, Is.EqualTo(ScalarReference.Dequantize(got, type, 1, n)));
        // Round trip error is bounded by half a step: d/2 for Q8_0 (d = amax/127), d for Q4_0's asymmetric top code.
        for (int b = 0; b < n / 32; b++)
        {
            float amax = x.Skip(b * 32).Take(32).Max(Math.Abs);
            double step = type == WeightType.Q8_0 ? amax / 127 : amax / 8;
            for (int j = 0; j < 32; j++) Assert.That(Math.Abs(deq[b * 32 + j] - x[b * 32 + j]), Is.LessThanOrEqualTo(step * 1.01 + 1e-6));
        }
    }

    [Test]
    public void AllZeroBlock_QuantizesToZeros()
    {
        var x = new float[32];
        Assert.That(TestData.Encode(x, WeightType.Q8_0, 1, 32), Is.EqualTo(GgmlReference(x, WeightType.Q8_0)));
        Assert.That(ScalarReference.Dequantize(TestData.Encode(x, WeightType.Q4_0, 1, 32), WeightType.Q4_0, 1, 32), Is.All.EqualTo(0f));
    }

    [TestCase(WeightType.Q8_0, 0.98, 1e-3)]
    [TestCase(WeightType.Q4_0, 0.85, 0.1)]
    public void Stories260K_QuantizedQualityAgainstF32(WeightType type, double minTop1, double maxKl)
    {
        string outDir = TestScratch.Path($"q-{type}");
        try
        {
            var report = ModelQuantizer.Quantize(SharedData.Stories, outDir, new QuantizeOptions { Type = type });
            Assert.That(report.Where(r => r.Name.EndsWith("down_proj.weight")).Select(r => r.Note), Is.All.Contains("not a multiple of 32"));
            Assert.That(report.Single(r => r.Name == "model.embed_tokens.weight").To, Is.EqualTo("F32"));
            Assert.That(report.Where(r => r.Name.EndsWith("q_proj.weight")).Select(r => r.To), Is.All.EqualTo(type.Name()));
            using var f32 = Model.Load(SharedData.Stories);
            using var q = Model.Load(outDir);
            Assert.That(q.Transformer.Weights.Layers[0].Wq.Type, Is.EqualTo(type));
            var r = Scorer.ScoreTokens(q, Reference.Stories().BosGreedyIds, 565, baseModel: f32);
            TestContext.Out.WriteLine($"{type}: top-1 agreement {r.Top1Agreement:P2}, mean KL {r.MeanKl:E3}, ppl ratio {r.PerplexityRatio:F4}");
            Assert.That(r.Top1Agreement, Is.GreaterThanOrEqualTo(minTop1));
            Assert.That(r.MeanKl, Is.LessThanOrEqualTo(maxKl));
            // and it generates through the normal path (decode = integer dot products)
            using var s = q.CreateSession();
            Assert.That(s.Generate([1], new GenerationSettings { MaxTokens = 8, Sampling = SamplingSettings.Greedy }).Count(), Is.EqualTo(8));
        }
        finally { if (Directory.Exists(outDir)) Directory.Delete(outDir, true); }
    }

    [Test]
    public void F16Copy_MatchesF32Greedy()
    {
        string outDir = TestScratch.Path("q-f16");
        try
        {
            ModelQuantizer.Quantize(SharedData.Stories, outDir, new QuantizeOptions { Type = WeightType.F16, QuantizeEmbeddings = true });
            using var m = Model.Load(outDir);
            Assert.That(m.Transformer.Weights.TokenEmbedding.Type, Is.EqualTo(WeightType.F16));
            using var s = m.CreateSession();
            var ids = s.Generate([1], new GenerationSettings { MaxTokens = 64, Sampling = SamplingSettings.Greedy }).Select(t => t.Id);
            Assert.That(ids, Is.EqualTo(Reference.Stories().BosGreedyIds.Skip(1).Take(64)));
        }
        finally { if (Directory.Exists(outDir)) Directory.Delete(outDir, true); }
    }

    [Test]
    public void Bf16Rounding_IsNearestEven()
    {
        Assert.That(ModelQuantizer.ToBf16(1f), Is.EqualTo(0x3F80));
        Assert.That(ModelQuantizer.ToBf16(BitConverter.UInt32BitsToSingle(0x3F808000)), Is.EqualTo(0x3F80)); // tie -> even
        Assert.That(ModelQuantizer.ToBf16(BitConverter.UInt32BitsToSingle(0x3F818000)), Is.EqualTo(0x3F82)); // tie -> even (up)
        Assert.That(ModelQuantizer.ToBf16(BitConverter.UInt32BitsToSingle(0x3F808001)), Is.EqualTo(0x3F81));
    }
}

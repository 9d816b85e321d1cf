using KernelEngine.Formats;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Formats;
using NUnit.Framework;

namespace KernelEngine.Tests.Interop;

/// <summary>
/// GGUF files written by llama.cpp's own quantizer (LLamaSharp's LLamaQuantizer) from an F32 file we exported: every
/// tensor of a format in our table has the bytes our reference quantizer gives for the same F32 rows, and the model
/// loads and gives llama.cpp's logits on the same file.
/// </summary>
[Category("LlamaCpp")]
public sealed class LlamaCppGgufTests
{
    public static readonly string[] Ftypes = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k_m", "q5_k_m", "q6_k"];

    [TestCaseSource(nameof(Ftypes))]
    public unsafe void LlamaCppQuantizedTensors_EqualOurQuantizerByteForByte(string ftype)
    {
        using var f32 = GgufFile.Open(LlamaCpp.F32Gguf());
        using var q = GgufFile.Open(LlamaCpp.Quantized(ftype));
        var checkedTypes = new HashSet<string>();
        var mismatches = new List<string>();
        foreach (var t in q.Tensors)
        {
            var format = WeightFormat.FromGgml(t.Type);
            Assert.That(format, Is.Not.Null, $"{t.Name}: {t.Type} is not in the format table");
            if (format!.Type == WeightType.F32) continue;
            var src = f32.Tensor(t.Name)!;
            Assert.That(src.Type, Is.EqualTo(GgmlType.F32));
            int cols = (int)t.Dims[0];
            long rows = t.Elements / cols, rowBytes = format.RowBytes(cols);
            var ours = new byte[rowBytes];
            int bad = 0;
            for (long r = 0; r < rows; r++)
            {
                var x = new ReadOnlySpan<float>(f32.DataPointer(src) + r * cols * 4, cols);
                format.QuantizeRow(x, ours);
                var theirs = new ReadOnlySpan<byte>(q.DataPointer(t) + r * rowBytes, (int)rowBytes);
                if (!theirs.SequenceEqual(ours)) bad++;
            }
            checkedTypes.Add(format.Name);
            if (bad > 0) mismatches.Add($"{t.Name} ({format.Name}): {bad} of {rows} rows differ");
        }
        TestContext.Out.WriteLine($"{ftype}: compared {string.Join(", ", checkedTypes)}");
        Assert.That(mismatches, Is.Empty, string.Join("\n", mismatches));
    }
}

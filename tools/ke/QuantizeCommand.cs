using System.CommandLine;
using KernelEngine.Formats;
using KernelEngine.Kernels;

namespace KernelEngine.Cli;

internal static class QuantizeCommand
{
    public static Command Create()
    {
        var model = CliCommon.Model(); var json = CliCommon.Json();
        var outDir = new Option<string>("--out", "-o") { Description = "Output model folder", Required = true };
        var type = new Option<string>("--type") { Description = "A format (q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k, f16, bf16) or llama.cpp's mix (q4_k_m, q5_k_m, q4_k_s, q5_k_s)", Required = true };
        var keep = new Option<string[]>("--keep") { Description = "Tensor name (or suffix) to keep unquantized (repeatable)" };
        var embeddings = new Option<bool>("--quantize-embeddings") { Description = "Quantize the token embedding too" };
        var cmd = new Command("quantize", "Write a quantized copy of a model folder (ggml blocks of any format in the table, llama.cpp's K mixes, or F16/BF16)") { model, outDir, type, keep, embeddings, json };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var mix = QuantizationMix.Parse(p.GetValue(type)!);
            var t = mix.Base;
            bool asJson = p.GetValue(json);
            var report = CliProgress.Run($"quantizing to {p.GetValue(type)}", fraction => ModelQuantizer.Quantize(p.GetValue(model)!, p.GetValue(outDir)!, new QuantizeOptions
            {
                Type = t, Mix = QuantizationMix.Named.Contains(mix) ? mix : null, Keep = p.GetValue(keep) ?? [], QuantizeEmbeddings = p.GetValue(embeddings),
                Progress = new CliProgress.Reporter<(int Done, int Total, string Tensor)>(x => fraction(x.Total == 0 ? 1 : (double)x.Done / x.Total)),
            }));
            long before = report.Sum(r => r.BytesBefore), after = report.Sum(r => r.BytesAfter);
            if (asJson)
            {
                CliCommon.PrintJson(new { type = t.Name(), bytes_before = before, bytes_after = after, tensors = report });
                return 0;
            }
            foreach (var r in report)
                Console.WriteLine($"{r.Name,-50} {r.From,-5} -> {r.To,-5} {r.BytesBefore,12:N0} -> {r.BytesAfter,12:N0}{(r.Note != null ? "  " + r.Note : "")}");
            Console.WriteLine($"{before:N0} -> {after:N0} bytes ({(double)after / before:P1}); written to {p.GetValue(outDir)}");
            return 0;
        }));
        return cmd;
    }
}

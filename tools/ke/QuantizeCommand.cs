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
        var type = new Option<string>("--type") { Description = "q8_0 | q4_0 | f16 | bf16", Required = true };
        var keep = new Option<string[]>("--keep") { Description = "Tensor name (or suffix) to keep unquantized (repeatable)" };
        var embeddings = new Option<bool>("--quantize-embeddings") { Description = "Quantize the token embedding too" };
        var cmd = new Command("quantize", "Write a quantized copy of a model folder (Q8_0, Q4_0 ggml blocks; or F16/BF16)") { model, outDir, type, keep, embeddings, json };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var t = BenchCommand.ParseType(p.GetValue(type)!);
            bool asJson = p.GetValue(json);
            var progress = new Progress<(int Done, int Total, string Tensor)>(x => { if (!asJson) Console.Error.Write($"\r[{x.Done}/{x.Total}] {x.Tensor,-60}"); });
            var report = ModelQuantizer.Quantize(p.GetValue(model)!, p.GetValue(outDir)!, new QuantizeOptions
            {
                Type = t, Keep = p.GetValue(keep) ?? [], QuantizeEmbeddings = p.GetValue(embeddings), Progress = progress,
            });
            long before = report.Sum(r => r.BytesBefore), after = report.Sum(r => r.BytesAfter);
            if (asJson)
            {
                CliCommon.PrintJson(new { type = t.Name(), bytes_before = before, bytes_after = after, tensors = report });
                return 0;
            }
            Console.Error.WriteLine();
            foreach (var r in report)
                Console.WriteLine($"{r.Name,-50} {r.From,-5} -> {r.To,-5} {r.BytesBefore,12:N0} -> {r.BytesAfter,12:N0}{(r.Note != null ? "  " + r.Note : "")}");
            Console.WriteLine($"{before:N0} -> {after:N0} bytes ({(double)after / before:P1}); written to {p.GetValue(outDir)}");
            return 0;
        }));
        return cmd;
    }
}

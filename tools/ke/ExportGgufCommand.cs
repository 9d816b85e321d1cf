using System.CommandLine;
using KernelEngine.Formats;

namespace KernelEngine.Cli;

internal static class ExportGgufCommand
{
    public static Command Create()
    {
        var model = CliCommon.Model();
        var output = new Option<string>("--out", "-o") { Description = "Output .gguf file", Required = true };
        var type = new Option<string?>("--type") { Description = "Convert weights to a format of the table (f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k; default: as stored)" };
        var cmd = new Command("export-gguf", "Write a model of a Llama-architecture family (llama, qwen2, qwen3) as GGUF for llama.cpp") { model, output, type };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var t = p.GetValue(type) is string s ? BenchCommand.ParseType(s) : (Kernels.WeightType?)null;
            GgufExporter.Export(p.GetValue(model)!, p.GetValue(output)!, t);
            Console.WriteLine($"wrote {p.GetValue(output)} ({new FileInfo(p.GetValue(output)!).Length:N0} bytes)");
            return 0;
        }));
        return cmd;
    }
}

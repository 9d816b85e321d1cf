using BenchmarkDotNet.Running;
using KernelEngine.Bench;
using KernelEngine.Kernels;

// bench/: `compare` = KernelEngine vs llama.cpp in one run; `loops` = decoding loops vs plain decoding;
// anything else goes to BenchmarkDotNet (per-kernel suites), e.g. --filter '*MatVec*'.
if (args.Length > 0 && args[0] == "compare")
{
    string preset = Arg(args, "--preset") ?? "llama-160m";
    var types = (Arg(args, "--dtype") ?? "f32,f16,q8_0,q4_0").Split(',').Select(Parse).ToList();
    var rows = LlamaCppComparison.Run(preset, types, int.Parse(Arg(args, "--pp") ?? "512"), int.Parse(Arg(args, "--tg") ?? "128"),
        int.Parse(Arg(args, "--reps") ?? "3"), Environment.ProcessorCount, Console.Out, Arg(args, "--model"));
    LlamaCppComparison.PrintMarkdown(rows, Console.Out);
    return 0;
}
if (args.Length > 0 && args[0] == "loops")
{
    DecodingLoopBench.Run(Arg(args, "--model") ?? throw new ArgumentException("--model DIR"), Arg(args, "--draft"), int.Parse(Arg(args, "--tokens") ?? "200"), Console.Out);
    return 0;
}
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;

static string? Arg(string[] a, string name) { int i = Array.IndexOf(a, name); return i >= 0 && i + 1 < a.Length ? a[i + 1] : null; }
static WeightType Parse(string s) => KernelEngine.Kernels.Formats.WeightFormat.FromName(s.Trim())?.Type ?? throw new ArgumentException($"unknown dtype {s}");

public partial class Program;

using BenchmarkDotNet.Running;
using KernelEngine.Bench;
using KernelEngine.Kernels;

// bench/: `compare` = KernelEngine vs llama.cpp in one run; `loops` = decoding loops vs plain decoding; `shared-prefix` =
// prefix sharing between batched sequences, copied vs mapped;
// anything else goes to BenchmarkDotNet (per-kernel suites), e.g. --filter '*MatVec*'.
if (args.Length > 0 && args[0] == "compare")
{
    string preset = Arg(args, "--preset") ?? "llama-160m";
    int pp = int.Parse(Arg(args, "--pp") ?? "512"), tg = int.Parse(Arg(args, "--tg") ?? "128"), reps = int.Parse(Arg(args, "--reps") ?? "3");
    // --llama-avx avx2: llama.cpp's AVX2 build (LLamaSharp ships noavx/avx/avx2/avx512), to compare with our
    // DOTNET_EnableAVX512=0 path as a CPU without AVX-512 would run both.
    if (Arg(args, "--llama-avx") is string avx) LlamaCppComparison.UseBuild(avx);
    // --depth 4096: pp and tg measured after that many tokens of context (llama-bench's -d); --kv f16|q8_0: both caches of that type.
    string kvType = Arg(args, "--kv") ?? "f32";
    KernelEngine.Backends.KvCacheTypes.Parse(kvType);
    // --parallel 4,8: tg also with that many sequences decoded together in each engine (llama-batched-bench's S_TG).
    int[] parallel = Arg(args, "--parallel") is string par ? par.Split(',').Select(int.Parse).Where(n => n > 1).ToArray() : [];
    var settings = new LlamaCppComparison.Settings(pp, tg, reps, Environment.ProcessorCount, int.Parse(Arg(args, "--depth") ?? "0"), kvType, parallel);
    // --ftype q4_k_m,q5_k_m,q6_k: files written by llama.cpp's quantizer, loaded by both engines.
    var rows = Arg(args, "--ftype") is string ftypes
        ? LlamaCppComparison.RunLlamaCppFiles(preset, ftypes.Split(','), settings, Console.Out)
        : LlamaCppComparison.Run(preset, (Arg(args, "--dtype") ?? "f32,f16,q8_0,q4_0").Split(',').Select(Parse).ToList(), settings,
            Console.Out, Arg(args, "--model"));
    LlamaCppComparison.PrintMarkdown(rows, Console.Out);
    return 0;
}
if (args.Length > 0 && args[0] == "grammar")
{
    // bench grammar --preset llama-160m --dtype q4_0 --schema FILE [--docs 20] [--max-tokens 200] [--llama]
    if (args.Contains("--llama"))
    {
        LlamaCppGrammarBench.Run(Arg(args, "--preset") ?? "llama-160m", Parse(Arg(args, "--dtype") ?? "q4_0"), File.ReadAllText(Arg(args, "--schema")!),
            int.Parse(Arg(args, "--docs") ?? "20"), int.Parse(Arg(args, "--max-tokens") ?? "200"), Console.Out);
        return 0;
    }
    string dir = Arg(args, "--model") ?? KernelEngine.Benchmarking.Presets.Materialize(Arg(args, "--preset") ?? "llama-160m", Parse(Arg(args, "--dtype") ?? "q4_0"));
    using var gm = KernelEngine.Model.Load(dir, new KernelEngine.ModelOptions { ContextLength = 1024 });
    GrammarBench.Run(gm, File.ReadAllText(Arg(args, "--schema") ?? throw new ArgumentException("--schema FILE")), int.Parse(Arg(args, "--docs") ?? "20"),
        int.Parse(Arg(args, "--max-tokens") ?? "200"), Console.Out);
    return 0;
}
if (args.Length > 0 && args[0] == "shared-prefix")
{
    // bench shared-prefix --preset llama-160m --dtype f32 --system 1024 --requests 8 [--reps 2]: copied vs mapped prefixes
    string dir = Arg(args, "--model") ?? KernelEngine.Benchmarking.Presets.Materialize(Arg(args, "--preset") ?? "llama-160m", Parse(Arg(args, "--dtype") ?? "f32"));
    await SharedPrefixBench.Run(dir, int.Parse(Arg(args, "--system") ?? "1024"), int.Parse(Arg(args, "--requests") ?? "8"), int.Parse(Arg(args, "--reps") ?? "2"), Console.Out);
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

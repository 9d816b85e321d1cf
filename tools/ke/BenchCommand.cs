using System.CommandLine;
using KernelEngine.Benchmarking;
using KernelEngine.Kernels;

namespace KernelEngine.Cli;

internal static class BenchCommand
{
    /// <summary>A weight type by its name in the format table (f32, f16, bf16, q8_0, q4_0, ...).</summary>
    public static WeightType ParseType(string s) =>
        Kernels.Formats.WeightFormat.FromName(s.Trim())?.Type ?? throw new InvalidRequestException($"unknown weight type '{s}' ({Kernels.Formats.WeightFormat.Names})");

    public static Command Create()
    {
        var json = CliCommon.Json(); var device = CliCommon.Device();
        var model = new Option<string?>("--model", "-m") { Description = "Model folder" };
        var preset = new Option<string?>("--preset") { Description = $"Random-weight model of a real shape: {string.Join(", ", Presets.All.Select(p => p.Name))}" };
        var dtypes = new Option<string>("--dtype") { Description = "Preset weight types, comma-separated (f32,f16,bf16,q8_0,q4_0)", DefaultValueFactory = _ => "f32" };
        var pp = new Option<string>("--pp") { Description = "Prompt tokens, comma-separated for several (0 = skip)", DefaultValueFactory = _ => "512" };
        var tg = new Option<string>("--tg") { Description = "Generated tokens, comma-separated for several (0 = skip)", DefaultValueFactory = _ => "128" };
        var reps = new Option<int>("--reps", "-r") { Description = "Repetitions after one warm-up", DefaultValueFactory = _ => 5 }.InRange(1, 10_000);
        var depth = new Option<string>("--depth", "-d") { Description = "Tokens of context already in the cache when pp and tg are measured (llama-bench's -d), comma-separated for several", DefaultValueFactory = _ => "0" };
        var parallel = new Option<string>("--parallel", "-np") { Description = "tg: sequences decoded together in one batch (continuous batching; the result is their aggregate tok/s), comma-separated for several", DefaultValueFactory = _ => "1" };
        var threads = new Option<string?>("--threads", "-t") { Description = "CPU threads, comma-separated for several (default: one per core)" };
        var format = new Option<string>("--format") { Description = "Output: md (a table), csv, json (as --json)", DefaultValueFactory = _ => "md" }.AcceptOnlyFromAmong("md", "csv", "json");
        var noRoofline = new Option<bool>("--no-roofline") { Description = "Skip measuring memory bandwidth" };
        var f16kv = new Option<bool>("--f16-kv") { Description = "F16 KV cache (as --kv-type f16)" };
        var kvType = CliCommon.KvType();
        var mmap = new Option<bool>("--mmap") { Description = "CPU: read F32/F16/BF16 weights in place from the mapped files (faster load; default copies them into huge pages)" };
        var cmd = new Command("bench", "Prompt processing and token generation speed (llama-bench style): tok/s ± sd, GB/s, GFLOP/s, fraction of roofline; one row per combination of the listed values")
        {
            model, preset, dtypes, pp, tg, reps, depth, parallel, threads, device, noRoofline, f16kv, kvType, mmap, format, json,
        };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var pps = Ints(p.GetValue(pp)!, "--pp", 0, 1 << 20);
            var tgs = Ints(p.GetValue(tg)!, "--tg", 0, 1 << 20);
            var depths = Ints(p.GetValue(depth)!, "--depth", 0, 1 << 24);
            var parallels = Ints(p.GetValue(parallel)!, "--parallel", 1, Kernels.MatMul.MatVecCpu.MaxRows);
            if (parallels.Any(n => n > 1) && depths.Any(d => d > 0)) throw new InvalidRequestException("--parallel runs from an empty cache: drop --depth");
            var threadCounts = p.GetValue(threads) is { } tl ? Ints(tl, "--threads", 1, 1024).Select(t => (int?)t).ToList() : [null];
            var folders = new List<(string Label, string Dir)>();
            if (p.GetValue(model) is string m) folders.Add((Path.GetFileName(Path.TrimEndingDirectorySeparator(m)), m));
            else if (p.GetValue(preset) is string name)
                foreach (var t in p.GetValue(dtypes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    Console.Error.WriteLine($"[preparing preset {name} {t}]");
                    folders.Add(($"{name} {t}", Presets.Materialize(name, ParseType(t))));
                }
            else throw new InvalidRequestException("give --model DIR or --preset NAME");
            string fmt = p.GetValue(json) ? "json" : p.GetValue(format)!;
            RooflineResult? roof = p.GetValue(noRoofline) ? null : Roofline.Measure();
            var rows = new List<object>();
            bool asJson = fmt == "json";
            if (fmt == "md" && roof != null) Console.WriteLine($"roofline: read {roof.ReadGBps:F1} GB/s, triad {roof.TriadGBps:F1} GB/s, F32 GEMM {roof.GemmGflops:F0} GFLOP/s ({roof.Threads} threads), Q4_0 x8 in cache {roof.Q4_0BatchGflops:F0} GFLOP/s ({roof.Q4_0BatchGflops1:F0} on one thread)");
            if (fmt == "md") Console.WriteLine($"| model | params | weights | device | threads | test | t/s | GB/s | GFLOP/s | % roofline |\n|---|---|---|---|---|---|---|---|---|---|");
            if (fmt == "csv") Console.WriteLine("model,parameters,weight_bytes,device,threads,test,depth,tokens_per_second,stddev,gbps,gflops,roofline_fraction");
            foreach (var (label, dir) in folders)
                foreach (var threadCount in threadCounts)
                {
                    int dmax = depths.Max();
                    // at depth the cache holds what the tests use, not the model's whole max_position_embeddings
                    int? context = dmax > 0 ? dmax + Math.Max(pps.Max(), tgs.Max()) + 8 : null;
                    using var mm = CliProgress.Load(dir, new ModelOptions
                    {
                        Device = p.GetValue(device)!, KvCacheType = p.GetValue(f16kv) ? "f16" : p.GetValue(kvType), CopyWeights = !p.GetValue(mmap),
                        ContextLength = context, Threads = threadCount,
                    });
                    int nThreads = threadCount ?? Environment.ProcessorCount;
                    foreach (int d in depths)
                    {
                        var tests = pps.Where(x => x > 0).Select(x => (Pp: x, Tg: 0, Np: 1))
                            .Concat(tgs.Where(x => x > 0).SelectMany(x => parallels.Select(np => (Pp: 0, Tg: x, Np: np)))).ToList();
                        foreach (var (testPp, testTg, np) in tests)
                            foreach (var r in np > 1 ? [BenchRunner.RunParallel(mm, testTg, np, p.GetValue(reps), roof?.ReadGBps)]
                                         : BenchRunner.Run(mm, testPp, testTg, p.GetValue(reps), roof?.ReadGBps, d))
                            {
                                rows.Add(new { model = label, parameters = mm.ParameterCount, weight_bytes = mm.WeightBytes, device = mm.Device.Id, threads = nThreads, test = r.Test, depth = d, parallel = np,
                                    tokens_per_second = r.TokensPerSecond.Mean, stddev = r.TokensPerSecond.StdDev, gbps = r.GBps, gflops = r.Gflops, roofline_fraction = r.RooflineFraction });
                                if (fmt == "md")
                                    Console.WriteLine($"| {label} | {mm.ParameterCount / 1e6:F1} M | {mm.WeightBytes / 1048576.0:F0} MiB | {mm.Device.Id} | {nThreads} | {r.Test} | {r.TokensPerSecond} | {r.GBps:F1} | {r.Gflops:F1} | {(r.RooflineFraction is double f ? f.ToString("P0") : "")} |");
                                else if (fmt == "csv")
                                    Console.WriteLine(string.Join(',', Csv(label), mm.ParameterCount, mm.WeightBytes, mm.Device.Id, nThreads, Csv(r.Test), d,
                                        F(r.TokensPerSecond.Mean), F(r.TokensPerSecond.StdDev), F(r.GBps), F(r.Gflops), r.RooflineFraction is double rf ? F(rf) : ""));
                            }
                    }
                }
            if (asJson) CliCommon.PrintJson(new { roofline = roof, results = rows });
            return 0;
        }));
        return cmd;
    }

    /// <summary>A comma-separated list of whole numbers in [min, max] (a usage error names the option otherwise).</summary>
    private static List<int> Ints(string list, string option, int min, int max)
    {
        var values = new List<int>();
        foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int v) || v < min || v > max)
                throw new InvalidRequestException($"{option} {part} is not a whole number in {min}..{max}");
            values.Add(v);
        }
        if (values.Count == 0) throw new InvalidRequestException($"{option} needs at least one value");
        return values;
    }

    private static string Csv(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
    private static string F(double v) => v.ToString("G6", System.Globalization.CultureInfo.InvariantCulture);
}

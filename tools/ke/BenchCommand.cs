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
        var pp = new Option<int>("--pp") { Description = "Prompt tokens (0 = skip)", DefaultValueFactory = _ => 512 }.InRange(0, 1 << 20);
        var tg = new Option<int>("--tg") { Description = "Generated tokens (0 = skip)", DefaultValueFactory = _ => 128 }.InRange(0, 1 << 20);
        var reps = new Option<int>("--reps", "-r") { Description = "Repetitions after one warm-up", DefaultValueFactory = _ => 5 }.InRange(1, 10_000);
        var depth = new Option<int>("--depth", "-d") { Description = "Tokens of context already in the cache when pp and tg are measured (llama-bench's -d)", DefaultValueFactory = _ => 0 }.InRange(0, 1 << 24);
        var noRoofline = new Option<bool>("--no-roofline") { Description = "Skip measuring memory bandwidth" };
        var f16kv = new Option<bool>("--f16-kv") { Description = "F16 KV cache (as --kv-type f16)" };
        var kvType = CliCommon.KvType();
        var mmap = new Option<bool>("--mmap") { Description = "CPU: read F32/F16/BF16 weights in place from the mapped files (faster load; default copies them into huge pages)" };
        var cmd = new Command("bench", "Prompt processing and token generation speed (llama-bench style): tok/s ± sd, GB/s, GFLOP/s, fraction of roofline")
        {
            model, preset, dtypes, pp, tg, reps, depth, device, noRoofline, f16kv, kvType, mmap, json,
        };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var folders = new List<(string Label, string Dir)>();
            if (p.GetValue(model) is string m) folders.Add((Path.GetFileName(Path.TrimEndingDirectorySeparator(m)), m));
            else if (p.GetValue(preset) is string name)
                foreach (var t in p.GetValue(dtypes)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    Console.Error.WriteLine($"[preparing preset {name} {t}]");
                    folders.Add(($"{name} {t}", Presets.Materialize(name, ParseType(t))));
                }
            else throw new InvalidRequestException("give --model DIR or --preset NAME");
            RooflineResult? roof = p.GetValue(noRoofline) ? null : Roofline.Measure();
            var rows = new List<object>();
            bool asJson = p.GetValue(json);
            if (!asJson && roof != null) Console.WriteLine($"roofline: read {roof.ReadGBps:F1} GB/s, triad {roof.TriadGBps:F1} GB/s, F32 GEMM {roof.GemmGflops:F0} GFLOP/s ({roof.Threads} threads)");
            if (!asJson) Console.WriteLine($"| model | params | weights | device | test | t/s | GB/s | GFLOP/s | % roofline |\n|---|---|---|---|---|---|---|---|---|");
            foreach (var (label, dir) in folders)
            {
                int d = p.GetValue(depth);
                // at depth the cache holds what the tests use, not the model's whole max_position_embeddings
                int? context = d > 0 ? d + Math.Max(p.GetValue(pp), p.GetValue(tg)) + 8 : null;
                using var mm = Model.Load(dir, new ModelOptions { Device = p.GetValue(device)!, KvCacheType = p.GetValue(f16kv) ? "f16" : p.GetValue(kvType), CopyWeights = !p.GetValue(mmap), ContextLength = context });
                foreach (var r in BenchRunner.Run(mm, p.GetValue(pp), p.GetValue(tg), p.GetValue(reps), roof?.ReadGBps, d))
                {
                    rows.Add(new { model = label, parameters = mm.ParameterCount, weight_bytes = mm.WeightBytes, device = mm.Device.Id, test = r.Test, depth = d,
                        tokens_per_second = r.TokensPerSecond.Mean, stddev = r.TokensPerSecond.StdDev, gbps = r.GBps, gflops = r.Gflops, roofline_fraction = r.RooflineFraction });
                    if (!asJson)
                        Console.WriteLine($"| {label} | {mm.ParameterCount / 1e6:F1} M | {mm.WeightBytes / 1048576.0:F0} MiB | {mm.Device.Id} | {r.Test} | {r.TokensPerSecond} | {r.GBps:F1} | {r.Gflops:F1} | {(r.RooflineFraction is double f ? f.ToString("P0") : "")} |");
                }
            }
            if (asJson) CliCommon.PrintJson(new { roofline = roof, results = rows });
            return 0;
        }));
        return cmd;
    }
}

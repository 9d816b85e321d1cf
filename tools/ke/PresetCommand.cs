using System.CommandLine;
using KernelEngine.Benchmarking;

namespace KernelEngine.Cli;

/// <summary><c>ke preset</c>: lists the presets, or writes one as an ordinary model folder (a real shape without a download).</summary>
internal static class PresetCommand
{
    public static Command Create()
    {
        var name = new Argument<string?>("name") { Description = "Preset to write (none: list them)", Arity = ArgumentArity.ZeroOrOne };
        var dtype = new Option<string>("--dtype") { Description = "Weight type of the matrices (a format of the table)", DefaultValueFactory = _ => "f32" };
        var output = new Option<string?>("--out", "-o") { Description = "Folder to write (config.json, model.safetensors, tokenizer.json)" };
        var cmd = new Command("preset", "List the random-weight presets of real model shapes, or write one as a model folder") { name, dtype, output };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            if (p.GetValue(name) is not string n)
            {
                foreach (var preset in Presets.All)
                    Console.WriteLine($"{preset.Name,-12} {preset.Family,-7} dim {preset.Dim,5}, {preset.Layers,2} layers, heads {preset.Heads}/{preset.KvHeads}, vocab {preset.Vocab,6}  {preset.Description}");
                return 0;
            }
            string outDir = p.GetValue(output) ?? throw new InvalidRequestException("--out is required to write a preset");
            if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
                throw new InvalidRequestException($"--out {outDir} exists and is not empty");
            string cached = Presets.Materialize(n, BenchCommand.ParseType(p.GetValue(dtype)!));
            Directory.CreateDirectory(outDir);
            foreach (var f in Directory.GetFiles(cached)) File.Copy(f, Path.Combine(outDir, Path.GetFileName(f)));
            Console.WriteLine($"wrote {n} ({p.GetValue(dtype)}) to {outDir}");
            return 0;
        }));
        return cmd;
    }
}

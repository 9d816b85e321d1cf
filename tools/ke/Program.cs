using System.CommandLine;
using KernelEngine.Cli;

var root = new RootCommand("ke — KernelEngine: fast local LLM inference in .NET (CPU SIMD kernels, ILGPU for GPUs)");
root.Options.Add(CliCommon.Verbose);
root.Subcommands.Add(DevicesCommand.Create());
root.Subcommands.Add(InspectCommand.Create());
root.Subcommands.Add(TokenizeCommand.Create());
root.Subcommands.Add(TemplateCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(ChatCommand.Create());
root.Subcommands.Add(ScoreCommand.Create());
root.Subcommands.Add(QuantizeCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(RooflineCommand.Create());
root.Subcommands.Add(ProfileCommand.Create());
root.Subcommands.Add(CheckCommand.Create());
root.Subcommands.Add(KernelsCommand.Create());
root.Subcommands.Add(ExportGgufCommand.Create());
root.Subcommands.Add(PresetCommand.Create());
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(LoadTestCommand.Create());
var parse = root.Parse(args);
if (parse.Errors.Count > 0)
{
    // Usage errors (unknown options, values out of range) are one line like every other error.
    string command = parse.CommandResult.Command == root ? "ke" : $"ke {parse.CommandResult.Command.Name}";
    Console.Error.WriteLine($"error: {string.Join("; ", parse.Errors.Select(e => e.Message))} (see '{command} --help')");
    return 1;
}
return parse.Invoke();

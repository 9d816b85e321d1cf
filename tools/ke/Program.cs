using System.CommandLine;
using KernelEngine.Cli;

var root = new RootCommand("ke — KernelEngine: fast local LLM inference in .NET (CPU SIMD kernels, ILGPU for GPUs)");
root.Options.Add(CliCommon.Verbose);
root.Subcommands.Add(DevicesCommand.Create());
root.Subcommands.Add(InspectCommand.Create());
root.Subcommands.Add(TokenizeCommand.Create());
root.Subcommands.Add(GenerateCommand.Create());
root.Subcommands.Add(ScoreCommand.Create());
root.Subcommands.Add(QuantizeCommand.Create());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(RooflineCommand.Create());
root.Subcommands.Add(ProfileCommand.Create());
root.Subcommands.Add(CheckCommand.Create());
root.Subcommands.Add(ExportGgufCommand.Create());
return root.Parse(args).Invoke();

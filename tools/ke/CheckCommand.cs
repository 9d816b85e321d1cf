using System.CommandLine;
using KernelEngine.Diagnostics;

namespace KernelEngine.Cli;

internal static class CheckCommand
{
    public static Command Create()
    {
        var json = CliCommon.Json(); var device = CliCommon.Device();
        var model = new Option<string?>("--model", "-m") { Description = "A model folder with reference.json (bos_greedy) to reproduce" };
        var tokens = new Option<int>("--tokens") { Description = "Reference ids to reproduce", DefaultValueFactory = _ => 64 }.InRange(0, 1 << 20);
        var cmd = new Command("check", "Self-check a device: every kernel against the CPU backend, and a model's reference greedy ids") { device, model, tokens, json };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var results = SelfCheck.Run(p.GetValue(device)!, p.GetValue(model), p.GetValue(tokens));
            if (p.GetValue(json)) CliCommon.PrintJson(new { device = p.GetValue(device), passed = results.Count(r => r.Passed), failed = results.Count(r => !r.Passed), results });
            else
            {
                foreach (var r in results)
                    Console.WriteLine($"{(r.Passed ? "PASS" : "FAIL")}  {r.Name,-36} max error {r.MaxError:E2} (tolerance {r.Tolerance:E0}) {r.Milliseconds,8:F1} ms {r.Note}");
                Console.WriteLine($"check: {results.Count(r => r.Passed)} passed, {results.Count(r => !r.Passed)} failed");
            }
            return results.All(r => r.Passed) ? 0 : 1;
        }));
        return cmd;
    }
}

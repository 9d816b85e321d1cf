using System.CommandLine;
using KernelEngine.Benchmarking;

namespace KernelEngine.Cli;

internal static class RooflineCommand
{
    public static Command Create()
    {
        var json = CliCommon.Json();
        var cmd = new Command("roofline", "Measure this machine: DRAM read and triad bandwidth (all cores), FP32 GEMM peak of our kernel") { json };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var r = Roofline.Measure();
            if (p.GetValue(json)) CliCommon.PrintJson(r);
            else Console.WriteLine($"memory read {r.ReadGBps:F1} GB/s, triad {r.TriadGBps:F1} GB/s, F32 GEMM {r.GemmGflops:F1} GFLOP/s, {r.Threads} threads");
            return 0;
        }));
        return cmd;
    }
}

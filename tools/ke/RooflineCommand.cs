using System.CommandLine;
using KernelEngine.Benchmarking;

namespace KernelEngine.Cli;

internal static class RooflineCommand
{
    public static Command Create()
    {
        var json = CliCommon.Json();
        var cmd = new Command("roofline", "Measure this machine: DRAM read and triad bandwidth (all cores), FP32 GEMM peak of our kernel and batched Q4_0 decode's compute ceiling (all cores and one)") { json };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var r = Roofline.Measure();
            if (p.GetValue(json)) CliCommon.PrintJson(r);
            else Console.WriteLine($"memory read {r.ReadGBps:F1} GB/s, triad {r.TriadGBps:F1} GB/s, {r.Threads} threads; "
                + $"F32 GEMM {r.GemmGflops:F1} GFLOP/s ({r.GemmGflops1:F1} on one thread, {r.GemmGflops / r.GemmGflops1:F2}x), "
                + $"Q4_0 x8 in cache {r.Q4_0BatchGflops:F1} GFLOP/s ({r.Q4_0BatchGflops1:F1} on one thread, {r.Q4_0BatchGflops / r.Q4_0BatchGflops1:F2}x)");
            return 0;
        }));
        return cmd;
    }
}

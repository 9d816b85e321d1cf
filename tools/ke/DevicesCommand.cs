using System.CommandLine;
using KernelEngine.Backends;

namespace KernelEngine.Cli;

internal static class DevicesCommand
{
    public static Command Create()
    {
        var json = CliCommon.Json();
        var cmd = new Command("devices", "List compute devices (CPU backend, ILGPU CPU accelerator, CUDA, OpenCL) and which one --device auto picks") { json };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var list = Devices.List();
            var auto = new DeviceInfo(Devices.Auto(list), "", 0, "").Id;
            if (p.GetValue(json))
            {
                CliCommon.PrintJson(new { devices = list.Select(d => new { id = d.Id, kind = d.Kind.ToString(), name = d.Name, memory_bytes = d.MemoryBytes, capabilities = d.Capabilities,
                    kernels = d.Kind == DeviceKind.Cpu ? KernelEngine.Kernels.Simd.SimdLevel.Describe() : null }), auto });
                return 0;
            }
            foreach (var d in list)
            {
                Console.WriteLine($"{d.Id,-10} {d.Name}  memory {d.MemoryBytes / (1 << 20)} MiB  [{d.Capabilities}]");
                if (d.Kind == DeviceKind.Cpu) Console.WriteLine($"{"",-10} {KernelEngine.Kernels.Simd.SimdLevel.Describe()}");
            }
            Console.WriteLine($"--device auto -> {auto}");
            return 0;
        }));
        return cmd;
    }
}

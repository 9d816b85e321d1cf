using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace KernelEngine.Backends;

/// <summary>
/// Enumerates compute devices and creates backends. The CPU backend is always there; ILGPU's CPU accelerator
/// (a debugging simulator), CUDA and OpenCL devices are listed when ILGPU finds them.
/// <c>auto</c> picks CUDA, then OpenCL, then the CPU backend.
/// </summary>
public static class Devices
{
    /// <summary>Every device this machine offers: the CPU first, then ILGPU's CUDA and OpenCL devices (and its CPU accelerator).</summary>
    public static IReadOnlyList<DeviceInfo> List()
    {
        var list = new List<DeviceInfo> { CpuBackend.Describe(Environment.ProcessorCount) };
        try
        {
            using var ctx = Context.Create(b => b.Default());
            foreach (var d in ctx.Devices)
            {
                var kind = d.AcceleratorType switch
                {
                    AcceleratorType.Cuda => DeviceKind.Cuda,
                    AcceleratorType.OpenCL => DeviceKind.OpenCL,
                    _ => DeviceKind.IlgpuCpu,
                };
                string caps = d switch
                {
                    CudaDevice c => $"sm_{(int)c.Architecture.GetValueOrDefault().Major}{c.Architecture.GetValueOrDefault().Minor}, {c.NumMultiprocessors} SMs, warp {c.WarpSize}",
                    CLDevice cl => $"{cl.CVersion}, warp {cl.WarpSize}, generic address space {(cl.Capabilities.GenericAddressSpace ? "yes" : "no")}",
                    _ => $"warp {d.WarpSize}, max group {d.MaxNumThreadsPerGroup} (simulator, for tests)",
                };
                list.Add(new DeviceInfo(kind, d.Name, d.MemorySize, caps));
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // ILGPU could not scan (missing drivers): the CPU backend remains.
        }
        return list;
    }

    /// <summary>Parses "auto", "cpu", "ilgpu-cpu", "cuda", "opencl" (an index after a colon is <see cref="ParseIndex"/>'s).</summary>
    public static DeviceKind? Parse(string device) => (device.IndexOf(':') is int c and >= 0 ? device[..c] : device).ToLowerInvariant() switch
    {
        "auto" => null,
        "cpu" => DeviceKind.Cpu,
        "ilgpu-cpu" => DeviceKind.IlgpuCpu,
        "cuda" => DeviceKind.Cuda,
        "opencl" => DeviceKind.OpenCL,
        _ => throw new DeviceException($"unknown device '{device}' (auto, cpu, ilgpu-cpu, cuda, opencl; cuda:1 picks the second CUDA device)"),
    };

    /// <summary>The device index of "cuda:1" / "opencl:0" (0 without one).</summary>
    public static int ParseIndex(string device)
    {
        int c = device.IndexOf(':');
        if (c < 0) return 0;
        if (!int.TryParse(device.AsSpan(c + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int index))
            throw new DeviceException($"device '{device}': the index after ':' must be a number (cuda:0, opencl:1)");
        if (Parse(device) is not (DeviceKind.Cuda or DeviceKind.OpenCL))
            throw new DeviceException($"device '{device}': only cuda and opencl devices take an index");
        return index;
    }

    /// <summary>
    /// True when a CUDA driver or an OpenCL loader can be loaded. Without either ILGPU finds no GPU, so "auto" skips its
    /// scan, which costs a large part of a small model's load time (ILGPU's context and its JIT).
    /// </summary>
    internal static bool GpuRuntimePresent()
    {
        string[] names = OperatingSystem.IsWindows() ? ["nvcuda.dll", "OpenCL.dll"]
            : OperatingSystem.IsMacOS() ? ["/System/Library/Frameworks/OpenCL.framework/OpenCL"]
            : ["libcuda.so.1", "libcuda.so", "libOpenCL.so.1", "libOpenCL.so"];
        foreach (var name in names)
        {
            if (!System.Runtime.InteropServices.NativeLibrary.TryLoad(name, out var handle)) continue;
            System.Runtime.InteropServices.NativeLibrary.Free(handle);
            return true;
        }
        return false;
    }

    /// <summary>What "auto" picks among the listed devices: CUDA, then an OpenCL device ILGPU can run, then the CPU backend.</summary>
    public static DeviceKind Auto(IReadOnlyList<DeviceInfo> found) =>
        found.Any(d => d.Kind == DeviceKind.Cuda) ? DeviceKind.Cuda
        : found.Any(d => d.Kind == DeviceKind.OpenCL) && IlgpuBackendFactory.CanRunOpenCL() ? DeviceKind.OpenCL
        : DeviceKind.Cpu;

    /// <param name="copyWeights">CPU: copy dense weights into huge-page memory (<see cref="ModelOptions.CopyWeights"/>)</param>
    /// <param name="threads">CPU: threads of the worker pool (null: one per core, the process-wide pool)</param>
    internal static IBackend Create(string device, bool copyWeights = false, int? threads = null)
    {
        var kind = Parse(device) ?? (GpuRuntimePresent() ? Auto(List()) : DeviceKind.Cpu);
        int index = ParseIndex(device);
        if (kind != DeviceKind.Cpu) return IlgpuBackendFactory.Create(kind, index);
        return threads is int n && n != Kernels.Threading.WorkerPool.Shared.Threads
            ? new CpuBackend(new Kernels.Threading.WorkerPool(n), copyWeights, ownsPool: true)
            : new CpuBackend(copyWeights: copyWeights);
    }
}

using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.OpenCL;

namespace KernelEngine.Backends;

/// <summary>Creates the ILGPU backend for CUDA, OpenCL or ILGPU's CPU accelerator.</summary>
internal static class IlgpuBackendFactory
{
    /// <summary>True when an OpenCL device supports what ILGPU's OpenCL backend needs (CL 2.0 generic address space).</summary>
    public static bool CanRunOpenCL()
    {
        try
        {
            using var ctx = Context.Create(b => b.OpenCL());
            return ctx.Devices.Any(d => d is ILGPU.Runtime.OpenCL.CLDevice cl && cl.Capabilities.GenericAddressSpace);
        }
        catch (Exception e) when (e is not OutOfMemoryException) { return false; }
    }

    public static IBackend Create(DeviceKind kind, int index = 0) => new IlgpuBackend(kind, index);
}

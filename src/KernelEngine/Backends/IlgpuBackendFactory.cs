namespace KernelEngine.Backends;

/// <summary>Creates the ILGPU backend for CUDA, OpenCL or ILGPU's CPU accelerator.</summary>
internal static class IlgpuBackendFactory
{
    public static bool CanRunOpenCL() => false;

    public static IBackend Create(DeviceKind kind) =>
        throw new DeviceException($"device '{kind}': the ILGPU backend is not available in this build (use --device cpu)");
}

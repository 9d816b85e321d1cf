using KernelEngine.Backends;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Tests.Kernels;

/// <summary>Backends under test, by name, and helpers to move test data through the kernel contract.</summary>
public static class TestBackends
{
    private static readonly WorkerPool SingleThread = new(1);

    internal static IBackend Create(string name) => name switch
    {
        "cpu" => new CpuBackend(),
        "cpu-1thread" => new CpuBackend(SingleThread),
        "ilgpu-cpu-groups" => new IlgpuBackend(DeviceKind.IlgpuCpu) { GroupKernels = true },
        // a GPU's 128-thread groups (4 warps): the reductions' cross-warp step runs too
        "ilgpu-cpu-groups128" => new IlgpuBackend(DeviceKind.IlgpuCpu, groupThreads: 128) { GroupKernels = true },
        _ => Devices.Create(name),
    };

    internal static DeviceTensor Tensor(this IBackend b, float[] data, int rows, int cols)
    {
        var t = b.Allocate(rows, cols);
        b.Write(t, data);
        return t;
    }

    /// <summary>Writes host data into a tensor by uploading it as an F32 "weight" and embedding rows 0..rows-1.</summary>
    internal static void Write(this IBackend b, DeviceTensor t, float[] data)
    {
        using var w = b.Upload(HostWeight.FromFloats("test-data", data, t.Rows, t.Cols));
        b.Embed(w, Enumerable.Range(0, t.Rows).ToArray(), t);
    }

    internal static float[] ReadAll(this IBackend b, DeviceTensor t, int rows = -1)
    {
        if (rows < 0) rows = t.Rows;
        var dst = new float[rows * t.Cols];
        b.Read(t, 0, rows, dst);
        return dst;
    }

    internal static DeviceWeight Weight(this IBackend b, float[] w, WeightType type, int rows, int cols) =>
        b.Upload(new HostWeight("w", rows, cols, type, TestData.Encode(w, type, rows, cols)));
}

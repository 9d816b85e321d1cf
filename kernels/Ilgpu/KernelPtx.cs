using System.Text.RegularExpressions;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace KernelEngine.Kernels.Ilgpu;

/// <summary>The PTX of a kernel and the instructions its design is judged by (issue "GPU kernels"): 128-bit loads,
/// warp shuffles, dp4a, tensor-core mma, local memory (spills).</summary>
internal sealed record PtxShape(int Lines, int VectorLoads, int Shuffles, int Dp4a, int Mma, int LocalAccesses)
{
    /// <summary>Counts of a PTX text's instructions: 128-bit loads (ld.v4, ld.global.v4, ld.global.nc.v4: ILGPU addresses
    /// memory generically, without .global), shfl.sync, dp4a, mma.sync, and ld/st.local.</summary>
    public static PtxShape Of(string ptx) => new(
        ptx.Split('\n').Length,
        Regex.Count(ptx, @"\bld(\.global)?(\.nc)?\.v4\."),
        Regex.Count(ptx, @"\bshfl\.sync\."),
        Regex.Count(ptx, @"\bdp4a\."),
        Regex.Count(ptx, @"\bmma\.sync\."),
        Regex.Count(ptx, @"\b(ld|st)\.local\."));
}

/// <summary>Every kernel of <see cref="KernelCatalog"/> compiled to PTX by ILGPU's backend, with no GPU present.</summary>
internal static class KernelPtx
{
    /// <summary>The architectures the tools take by name.</summary>
    public static CudaArchitecture Architecture(string name) => name.Trim().ToLowerInvariant() switch
    {
        "sm_80" => CudaArchitecture.SM_80,
        "sm_86" => CudaArchitecture.SM_86,
        "sm_89" => CudaArchitecture.SM_89,
        "sm_90" => CudaArchitecture.SM_90,
        _ => throw new ArgumentException($"unknown architecture '{name}' (sm_80, sm_86, sm_89, sm_90)", nameof(name)),
    };

    /// <summary>A context for compiling only (no accelerator is created).</summary>
    public static Context CreateContext() => Context.Create(b => b.Default().EnableAlgorithms().Optimize(OptimizationLevel.O1));

    /// <summary>One kernel's PTX for <paramref name="arch"/> (instruction set 8.0).</summary>
    public static string Compile(Context context, KernelEntry kernel, CudaArchitecture arch)
    {
        using var ptx = new PTXBackend(context, arch, CudaInstructionSet.ISA_80, null!);
        var entry = kernel.ExplicitlyGrouped
            ? EntryPointDescription.FromExplicitlyGroupedKernel(kernel.Method)
            : EntryPointDescription.FromImplicitlyGroupedKernel(kernel.Method);
        return ((PTXCompiledKernel)ptx.Compile(entry, KernelSpecialization.Empty)).PTXAssembly;
    }
}

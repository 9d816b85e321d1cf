using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using KernelEngine.Kernels.Ilgpu;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>Every ILGPU kernel compiles to PTX (sm_80+) and to OpenCL C 2.0 with no GPU present: CI proves the GPU build.</summary>
public sealed class GpuCompileTests
{
    private static Context _ctx = null!;

    [OneTimeSetUp] public static void Setup() => _ctx = Context.Create(b => b.Default().EnableAlgorithms().Optimize(OptimizationLevel.O1));
    [OneTimeTearDown] public static void TearDown() => _ctx.Dispose();

    private static IEnumerable<string> Names() => KernelCatalog.All.Select(k => k.Name);

    private static EntryPointDescription Entry(KernelEntry k) =>
        k.ExplicitlyGrouped ? EntryPointDescription.FromExplicitlyGroupedKernel(k.Method) : EntryPointDescription.FromImplicitlyGroupedKernel(k.Method);

    [TestCaseSource(nameof(Names))]
    public void CompilesToPtx(string name)
    {
        var k = KernelCatalog.All.Single(e => e.Name == name);
        using var ptx = new PTXBackend(_ctx, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null!);
        string code = ((PTXCompiledKernel)ptx.Compile(Entry(k), KernelSpecialization.Empty)).PTXAssembly;
        Assert.That(code, Does.Contain(".entry").And.Contain(".target sm_"));
        int sm = int.Parse(System.Text.RegularExpressions.Regex.Match(code, @"\.target sm_(\d+)").Groups[1].Value);
        Assert.That(sm, Is.GreaterThanOrEqualTo(80));
    }

    [TestCaseSource(nameof(Names))]
    public void CompilesToOpenCl(string name)
    {
        var k = KernelCatalog.All.Single(e => e.Name == name);
        using var cl = new CLBackend(_ctx, new CLCapabilityContext(float16: true, float64: true, genericAddressSpace: true, int64_Atomics: true, subGroups: false),
            CLDeviceVendor.Other, CLCVersion.CL20);
        string source = ((CLCompiledKernel)cl.Compile(Entry(k), KernelSpecialization.Empty)).Source;
        Assert.That(source, Does.Contain("kernel"));
    }

    [Test]
    public void CatalogListsEveryKernelMethod()
    {
        // Any public static kernel method in the *Ilgpu classes must be in the catalog (so it is compile-tested).
        var kernelTypes = typeof(KernelCatalog).Assembly.GetTypes().Where(t => t.Name.EndsWith("Ilgpu"));
        var methods = kernelTypes.SelectMany(t => t.GetMethods(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static))
            .Where(m => m.ReturnType == typeof(void) && m.GetParameters().Length > 0 &&
                        (m.GetParameters()[0].ParameterType == typeof(Index1D) || m.GetParameters()[0].ParameterType.Name.EndsWith("Args")))
            .ToList();
        Assert.That(methods.Select(m => m.DeclaringType!.Name + "." + m.Name),
            Is.SubsetOf(KernelCatalog.All.Select(k => k.Method.DeclaringType!.Name + "." + k.Method.Name)));
        Assert.That(methods, Has.Count.EqualTo(KernelCatalog.All.Count));
    }
}

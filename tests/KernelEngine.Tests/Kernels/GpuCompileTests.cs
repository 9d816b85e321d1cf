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

    [OneTimeSetUp] public static void Setup() => _ctx = KernelPtx.CreateContext();
    [OneTimeTearDown] public static void TearDown() => _ctx.Dispose();

    private static IEnumerable<string> Names() => KernelCatalog.All.Select(k => k.Name);

    private static EntryPointDescription Entry(KernelEntry k) =>
        k.ExplicitlyGrouped ? EntryPointDescription.FromExplicitlyGroupedKernel(k.Method) : EntryPointDescription.FromImplicitlyGroupedKernel(k.Method);

    [TestCaseSource(nameof(Names))]
    public void CompilesToPtx(string name)
    {
        var k = KernelCatalog.All.Single(e => e.Name == name);
        string code = KernelPtx.Compile(_ctx, k, CudaArchitecture.SM_90);
        Assert.That(code, Does.Contain(".entry").And.Contain(".target sm_"));
        int sm = int.Parse(System.Text.RegularExpressions.Regex.Match(code, @"\.target sm_(\d+)").Groups[1].Value);
        Assert.That(sm, Is.GreaterThanOrEqualTo(80));
    }

    [TestCaseSource(nameof(Names))]
    public void CompilesToOpenCl(string name)
    {
        var k = KernelCatalog.All.Single(e => e.Name == name);
        // Kernels that shuffle between lanes compile (in ILGPU 1.5.3) for Intel's sub-group extension only; every other
        // kernel compiles for any OpenCL 2.0 device, sub-groups or not (elsewhere the backend runs the shared-memory twin).
        using var cl = new CLBackend(_ctx, new CLCapabilityContext(float16: true, float64: true, genericAddressSpace: true, int64_Atomics: true, subGroups: k.WarpShuffles),
            k.WarpShuffles ? CLDeviceVendor.Intel : CLDeviceVendor.Other, CLCVersion.CL20);
        string source = ((CLCompiledKernel)cl.Compile(Entry(k), KernelSpecialization.Empty)).Source;
        Assert.That(source, Does.Contain("kernel"));
    }

    /// <summary>Kernels a GPU runs keep everything in registers and shared memory: no <c>.local</c> in their PTX (RoPE's
    /// angles come from the host, as ILGPU's double cos/sin would iterate through local memory). The exception is the CPU
    /// simulator's one-thread-per-query attention, which holds a head's output in thread-local memory by design.</summary>
    [TestCaseSource(nameof(GpuKernelNames))]
    public void Ptx_HasNoLocalMemory(string name)
    {
        string ptx = KernelPtx.Compile(_ctx, KernelCatalog.All.Single(e => e.Name == name), CudaArchitecture.SM_80);
        Assert.That(PtxShape.Of(ptx).LocalAccesses, Is.Zero);
    }

    private static IEnumerable<string> GpuKernelNames() => Names().Where(n => n != "attention-per-query");

    /// <summary>
    /// Each GPU kernel's design (issue "GPU kernels") held in its PTX: at least so many 128-bit load sites and shuffle
    /// sites, at most so many barriers, no local memory, and one instruction the design names.
    /// matvec-warp: weights and x as 128-bit loads (F32 and 16-bit paths), a shuffle sum per row, barriers only in the
    /// norm prologue's group sum, fp16 widened by the hardware conversion. attention-fused: the matvec's shape, warp-level
    /// attention (shuffled max, sum and softmax weights), the unit's ticket. attention-decode-warp: shuffled max, sum,
    /// weights and ticket, no barrier at all. attention-prefill-tiled: K/V tiles staged once per group (two barriers per
    /// tile), warp-level softmax. matmul-tiled: x and F32 W as 128-bit global loads, both staged tiles read as 128-bit
    /// shared loads in the inner loop (16 FMAs per pair), the 16 accumulators in registers, one barrier per step of the
    /// double-buffered loop (two in all). softmax-entropy-warp: the (m, S, T) triples and the argmax merged by shuffle
    /// butterflies, then across warps (two barriers per merge instead of one per tree level).
    /// </summary>
    [TestCase("matvec-warp", 4, 1, 3, @"cvt\.f32\.f16")]
    [TestCase("attention-fused", 4, 3, int.MaxValue, @"atom(\.global)?\.add")]
    [TestCase("attention-decode-warp", 0, 4, 0, @"atom(\.global)?\.add")]
    [TestCase("attention-prefill-tiled", 0, 3, 2, @"shfl\.sync\.idx")]
    [TestCase("matmul-tiled", 2, 0, 2, @"\bld\.shared\.v4\.")]
    [TestCase("softmax-entropy-warp", 0, 10, 5, @"atom(\.global)?\.add")]
    public void Ptx_HasTheDesignedShape(string kernel, int minVectorLoads, int minShuffles, int maxBarriers, string mustMatch)
    {
        string ptx = KernelPtx.Compile(_ctx, KernelCatalog.All.Single(e => e.Name == kernel), CudaArchitecture.SM_80);
        var shape = PtxShape.Of(ptx);
        Assert.That(shape.VectorLoads, Is.GreaterThanOrEqualTo(minVectorLoads), "128-bit loads");
        Assert.That(shape.Shuffles, Is.GreaterThanOrEqualTo(minShuffles), "shuffles");
        Assert.That(shape.LocalAccesses, Is.Zero, "local memory");
        Assert.That(System.Text.RegularExpressions.Regex.Count(ptx, @"\bbar(rier)?\.sync"), Is.LessThanOrEqualTo(maxBarriers), "barriers");
        Assert.That(ptx, Does.Match(mustMatch));
    }

    /// <summary>The shape counts the GPU design is checked by, on a hand-written PTX text with one of each (and look-alikes
    /// that must not count: a scalar global load, a 64-bit vector load, a parameter store).</summary>
    [Test]
    public void PtxShape_CountsTheInstructionsTheDesignNames()
    {
        const string ptx = """
            ld.global.nc.v4.u32 {%r1, %r2, %r3, %r4}, [%rd1];
            ld.v4.f32 {%f1, %f2, %f3, %f4}, [%rd2];
            ld.global.v4.b32 {%r5, %r6, %r7, %r8}, [%rd3];
            ld.global.f32 %f5, [%rd4];
            ld.v2.f32 {%f6, %f7}, [%rd5];
            shfl.sync.bfly.b32 %r9, %r10, 16, 31, -1;
            dp4a.s32.s32 %r11, %r12, %r13, %r14;
            mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%f8, %f9, %f10, %f11}, {%r15, %r16, %r17, %r18}, {%r19, %r20}, {%f12, %f13, %f14, %f15};
            st.local.f32 [%rd6], %f16;
            ld.local.f32 %f17, [%rd6];
            st.param.b64 [param0], %rd7;
            """;
        var s = PtxShape.Of(ptx);
        Assert.That((s.VectorLoads, s.Shuffles, s.Dp4a, s.Mma, s.LocalAccesses), Is.EqualTo((3, 1, 1, 1, 2)));
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

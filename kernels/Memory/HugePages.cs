using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.Memory;

/// <summary>
/// Native allocations for weights the CPU kernels stream every token. On Linux, buffers of 2 MiB and more are 2 MiB
/// aligned and advised MADV_HUGEPAGE (transparent huge pages in "madvise" mode, the common default): one TLB entry
/// per 2 MiB instead of per 4 KiB. Measured on the 2-core Zen 5 VM: +5-7 % read bandwidth for an F32 matrix-vector
/// product streaming from DRAM. Elsewhere (or if the advice fails) it is a plain 64-byte aligned allocation.
/// </summary>
internal static unsafe class HugePages
{
    private const nuint HugePage = 2u << 20;

    /// <summary>Allocates <paramref name="bytes"/> (uninitialized); release with <see cref="Free"/>.</summary>
    public static byte* Alloc(long bytes)
    {
        if (bytes <= 0) throw new ArgumentOutOfRangeException(nameof(bytes), bytes, "allocation size must be positive");
        if (!OperatingSystem.IsLinux() || bytes < (long)HugePage) return (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        nuint rounded = ((nuint)bytes + HugePage - 1) & ~(HugePage - 1);
        var p = (byte*)NativeMemory.AlignedAlloc(rounded, HugePage);
        Madvise.Advise((nint)p, rounded, Madvise.HugePage);   // refused or unavailable: 4 KiB pages
        return p;
    }

    public static void Free(byte* p) => NativeMemory.AlignedFree(p);
}

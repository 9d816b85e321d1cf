using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.Memory;

/// <summary>
/// Zero-filled native buffers whose pages are committed only when first written. Large activation and KV-cache
/// buffers are sized for the whole context but a session touches only the positions it uses; on Linux they come from
/// an anonymous mapping (the kernel hands out zero pages on demand), elsewhere from a cleared aligned allocation.
/// Mappings of 2 MiB and more start on a 2 MiB boundary and are advised MADV_HUGEPAGE, as the weights are
/// (<see cref="HugePages"/>): decode attention reads every cached row of every layer each step, and on 4 KiB pages it
/// missed the TLB once per 4 KiB (README: "Batched decoding"). Pages are then committed 2 MiB at a time.
/// </summary>
internal static unsafe class ZeroPages
{
    private const long MapThreshold = 1L << 20;
    private const long HugeBytes = 2L << 20;
    private const int ProtReadWrite = 0x1 | 0x2;
    private const int MapPrivateAnonymous = 0x02 | 0x20;

    /// <summary>Allocates <paramref name="bytes"/> zeroed bytes, 64-byte aligned; release with <see cref="Free"/> and the same size.</summary>
    public static void* Alloc(long bytes)
    {
        if (bytes <= 0) throw new ArgumentOutOfRangeException(nameof(bytes), bytes, "allocation size must be positive");
        if (OperatingSystem.IsLinux() && bytes >= MapThreshold)
        {
            if (bytes < HugeBytes)
            {
                nint p = mmap(0, (nuint)bytes, ProtReadWrite, MapPrivateAnonymous, -1, 0);
                if (p == -1) throw new OutOfMemoryException($"mmap of {bytes} bytes failed (errno {Marshal.GetLastPInvokeError()})");
                return (void*)p;
            }
            // map 2 MiB more, keep the aligned part (what Free unmaps), return the rest
            long page = Environment.SystemPageSize, kept = (bytes + page - 1) / page * page;
            nint raw = mmap(0, (nuint)(kept + HugeBytes), ProtReadWrite, MapPrivateAnonymous, -1, 0);
            if (raw == -1) throw new OutOfMemoryException($"mmap of {bytes} bytes failed (errno {Marshal.GetLastPInvokeError()})");
            nint aligned = (nint)(((long)raw + HugeBytes - 1) & ~(HugeBytes - 1)), end = raw + (nint)(kept + HugeBytes), tail = aligned + (nint)kept;
            if (aligned > raw) _ = munmap(raw, (nuint)(aligned - raw));
            if (end > tail) _ = munmap(tail, (nuint)(end - tail));
            Madvise.Advise(aligned, (nuint)bytes, Madvise.HugePage);   // refused or unavailable: 4 KiB pages
            return (void*)aligned;
        }
        void* q = NativeMemory.AlignedAlloc((nuint)bytes, 64);
        NativeMemory.Clear(q, (nuint)bytes);
        return q;
    }

    public static void Free(void* p, long bytes)
    {
        if (p == null) return;
        if (OperatingSystem.IsLinux() && bytes >= MapThreshold) _ = munmap((nint)p, (nuint)bytes);
        else NativeMemory.AlignedFree(p);
    }

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [DllImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static extern int munmap(nint addr, nuint length);
}

using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.Memory;

/// <summary>
/// Zero-filled buffers backed by an anonymous memory file (Linux memfd), whose pages another buffer can map in place of
/// its own: KV-cache prefix sharing without a copy. Like <see cref="ZeroPages"/>, a page is committed when first written.
/// A range mapped from another buffer is a private (copy-on-write) mapping of that buffer's file: reads see its pages,
/// a write copies the page first, and the pages stay alive while mapped even after their owner is freed. The owner must
/// not rewrite a range while others map it (they would see the new bytes): callers pin what they share.
/// Linux only (<see cref="IsSupported"/>); elsewhere callers allocate plainly and copy.
/// </summary>
internal static unsafe class SharedPages
{
    private const int ProtReadWrite = 0x1 | 0x2;
    private const int MapShared = 0x01, MapPrivate = 0x02, MapFixed = 0x10;
    private const uint MfdCloexec = 1;
    private const int FallocPunchHole = 0x02, FallocKeepSize = 0x01;

    /// <summary>The granule of every offset and length below (bytes).</summary>
    public static readonly int PageBytes = Environment.SystemPageSize;

    /// <summary>Whether this OS can share pages between buffers (a memfd: Linux 3.17 and later).</summary>
    public static bool IsSupported { get; } = OperatingSystem.IsLinux() && Probe();

    private static bool Probe()
    {
        try
        {
            int fd = memfd_create("ke-probe", MfdCloexec);
            if (fd < 0) return false;
            _ = close(fd);
            return true;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    /// <summary>Allocates <paramref name="bytes"/> zeroed, shareable bytes (page aligned); release with <see cref="Free"/>.</summary>
    /// <param name="fd">the memory file that owns the pages</param>
    public static byte* Alloc(long bytes, string name, out int fd)
    {
        if (bytes <= 0) throw new ArgumentOutOfRangeException(nameof(bytes), bytes, "allocation size must be positive");
        if (!IsSupported) throw new PlatformNotSupportedException("shared pages need Linux memfd");
        fd = memfd_create(name, MfdCloexec);
        if (fd < 0) throw new OutOfMemoryException($"memfd_create failed (errno {Marshal.GetLastPInvokeError()})");
        if (ftruncate(fd, bytes) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            _ = close(fd);
            throw new OutOfMemoryException($"sizing a shared buffer of {bytes} bytes failed (errno {errno})");
        }
        nint p = mmap(0, (nuint)bytes, ProtReadWrite, MapShared, fd, 0);
        if (p == -1)
        {
            int errno = Marshal.GetLastPInvokeError();
            _ = close(fd);
            throw new OutOfMemoryException($"mmap of {bytes} shared bytes failed (errno {errno})");
        }
        return (byte*)p;
    }

    /// <summary>Unmaps the buffer and closes its file; pages other buffers still map stay alive until they unmap them.</summary>
    public static void Free(byte* p, long bytes, int fd)
    {
        if (p != null) _ = munmap((nint)p, (nuint)bytes);
        if (fd >= 0) _ = close(fd);
    }

    /// <summary>Maps bytes [sourceOffset, sourceOffset + bytes) of <paramref name="sourceFd"/>'s file copy-on-write at
    /// <paramref name="target"/> (inside a buffer from <see cref="Alloc"/>, whose file is <paramref name="targetFd"/> at
    /// <paramref name="targetOffset"/>), and frees the pages the target's own file held there.</summary>
    public static void MapFrom(byte* target, int targetFd, long targetOffset, int sourceFd, long sourceOffset, long bytes)
    {
        CheckAligned(targetOffset, sourceOffset, bytes, target);
        if (bytes == 0) return;
        nint p = mmap((nint)target, (nuint)bytes, ProtReadWrite, MapPrivate | MapFixed, sourceFd, (nint)sourceOffset);
        if (p != (nint)target) throw new OutOfMemoryException($"mapping {bytes} shared bytes failed (errno {Marshal.GetLastPInvokeError()})");
        _ = fallocate(targetFd, FallocPunchHole | FallocKeepSize, targetOffset, bytes);   // best effort: the own pages are not read
    }

    /// <summary>Undoes <see cref="MapFrom"/>: the range maps the target's own file again (zero pages until written).</summary>
    public static void MapOwn(byte* target, int targetFd, long targetOffset, long bytes)
    {
        CheckAligned(targetOffset, 0, bytes, target);
        if (bytes == 0) return;
        nint p = mmap((nint)target, (nuint)bytes, ProtReadWrite, MapShared | MapFixed, targetFd, (nint)targetOffset);
        if (p != (nint)target) throw new OutOfMemoryException($"remapping {bytes} bytes failed (errno {Marshal.GetLastPInvokeError()})");
    }

    private static void CheckAligned(long targetOffset, long sourceOffset, long bytes, byte* target)
    {
        if (((targetOffset | sourceOffset | bytes | (long)target) & (PageBytes - 1)) != 0 || bytes < 0)
            throw new ArgumentException($"shared ranges must be whole pages of {PageBytes} bytes (offsets {targetOffset}, {sourceOffset}, length {bytes})");
    }

    [DllImport("libc", EntryPoint = "memfd_create", SetLastError = true)]
    private static extern int memfd_create([MarshalAs(UnmanagedType.LPUTF8Str)] string name, uint flags);

    [DllImport("libc", EntryPoint = "ftruncate", SetLastError = true)]
    private static extern int ftruncate(int fd, long length);

    [DllImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static extern int fallocate(int fd, int mode, long offset, long length);

    [DllImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static extern nint mmap(nint addr, nuint length, int prot, int flags, int fd, nint offset);

    [DllImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static extern int munmap(nint addr, nuint length);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int close(int fd);
}

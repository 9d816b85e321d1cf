namespace KernelEngine.Kernels.Memory;

/// <summary>
/// Drops the pages of a memory-mapped file range from this process (Linux MADV_DONTNEED; elsewhere nothing): once a
/// weight has been copied or repacked, its file pages need not stay resident as well. The range stays mapped and
/// readable — a later read (an embedding row) faults the page back in from the file — so this is only for file-backed
/// ranges: on anonymous memory it would discard the contents.
/// </summary>
internal static unsafe class MappedPages
{
    private static readonly long PageSize = Environment.SystemPageSize;

    /// <summary>Releases the whole pages inside [start, start + bytes).</summary>
    public static void Release(byte* start, long bytes)
    {
        if (!OperatingSystem.IsLinux() || bytes <= 0) return;
        long first = ((long)start + PageSize - 1) & ~(PageSize - 1), end = ((long)start + bytes) & ~(PageSize - 1);
        if (end <= first) return;
        Madvise.Advise((nint)first, (nuint)(end - first), Madvise.DontNeed);
    }
}

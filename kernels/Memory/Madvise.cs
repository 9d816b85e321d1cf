using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.Memory;

/// <summary>libc's madvise, as the memory helpers use it: Linux only, and a libc without it means no advice.</summary>
internal static class Madvise
{
    public const int DontNeed = 4;
    public const int HugePage = 14;

    /// <summary>Advises the range; false when the advice could not be given.</summary>
    public static bool Advise(nint address, nuint length, int advice)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return madvise(address, length, advice) == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return false; }
    }

    [DllImport("libc", EntryPoint = "madvise")]
    private static extern int madvise(nint addr, nuint length, int advice);
}

using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace KernelEngine.Backends;

/// <summary>
/// Copies between host spans and ILGPU views with the host memory pinned for the whole copy. ILGPU's
/// <c>CopyFromCPU(ref T, length)</c> / <c>CopyToCPU(ref T, length)</c> take the address they are given as it is: a managed
/// array that a compacting GC moves during the call (any thread's allocation can start one) is then read or written at
/// its old place, and the device sees stale ids or the caller keeps the array's old contents (ILGPU's CPU accelerator
/// showed both: a read-back of all zeros, ids out of range).
/// </summary>
internal static unsafe class HostCopy
{
    public static void ToDevice<T>(ArrayView<T> dst, ReadOnlySpan<T> src) where T : unmanaged
    {
        if (src.Length != dst.Length) throw new ArgumentException($"copy of {src.Length} host elements into a view of {dst.Length}");
        if (src.IsEmpty) return;
        fixed (T* p = src) dst.CopyFromCPU(ref Unsafe.AsRef<T>(p), src.Length);
    }

    public static void ToHost<T>(ArrayView<T> src, Span<T> dst) where T : unmanaged
    {
        if (src.Length != dst.Length) throw new ArgumentException($"copy of a view of {src.Length} elements into {dst.Length} host elements");
        if (dst.IsEmpty) return;
        fixed (T* p = dst) src.CopyToCPU(ref Unsafe.AsRef<T>(p), dst.Length);
    }
}

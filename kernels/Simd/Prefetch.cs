using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace KernelEngine.Kernels.Simd;

/// <summary>
/// Software prefetch of a weight stream a fixed distance ahead of the kernel that reads it (x86 <c>prefetcht0</c>; a no-op
/// where .NET exposes no prefetch). Decode reads every weight once per token: on some CPUs the hardware prefetchers alone
/// keep too few lines in flight for one core's stream (README: "Software prefetch").
/// </summary>
internal static unsafe class Prefetch
{
    /// <summary>How far ahead of the row being read the decode matvec prefetches, in bytes (KE_PREFETCH_BYTES overrides; 0 turns it off).</summary>
    public static readonly int DecodeDistanceBytes = int.TryParse(Environment.GetEnvironmentVariable("KE_PREFETCH_BYTES"), out int d) ? Math.Max(0, d) : 2048;

    public static bool IsSupported => Sse.IsSupported;

    /// <summary>Prefetches the row <see cref="DecodeDistanceBytes"/> ahead of <paramref name="row"/>, inside the matrix that
    /// ends at <paramref name="end"/> (a multi-row pass that reads a weight matrix from memory, one row at a time).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void RowAhead(byte* row, long rowBytes, byte* end)
    {
        byte* ahead = row + DecodeDistanceBytes;
        if (DecodeDistanceBytes > 0 && ahead < end) Range(ahead, Math.Min(rowBytes, end - ahead));
    }

    /// <summary>Prefetches the cache lines of [p, p + bytes) into every cache level.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Range(byte* p, long bytes)
    {
        if (!Sse.IsSupported) return;
        byte* end = p + bytes;
        for (byte* q = (byte*)((nint)p & ~63); q < end; q += 64) Sse.Prefetch0(q);
    }
}

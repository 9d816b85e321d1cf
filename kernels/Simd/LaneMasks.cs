using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.Simd;

/// <summary>Byte-shuffle masks that copy one int16 lane of a 128-bit vector to every lane (pshufb / tbl).</summary>
internal static unsafe class LaneMasks
{
    /// <summary>Lane l (0-7): 16 bytes [2l, 2l + 1] × 8, then lane l + 1's 16 bytes follow (so a 32-byte read at lane l
    /// is [l × 8 | l + 1 × 8]); a ninth entry keeps that read inside.</summary>
    public static readonly byte* I16 = Build();

    /// <summary><see cref="I16"/>'s masks each repeated in both 128-bit halves (32 bytes per lane: one vpshufb operand).</summary>
    public static readonly byte* I16x2 = BuildWide();

    private static byte* BuildWide()
    {
        var p = (byte*)NativeMemory.AlignedAlloc(8 * 32, 64);
        for (int l = 0; l < 8; l++)
            for (int i = 0; i < 32; i++) p[32 * l + i] = I16[16 * l + i % 16];
        return p;
    }

    private static byte* Build()
    {
        var p = (byte*)NativeMemory.AlignedAlloc(9 * 16, 64);
        for (int l = 0; l < 9; l++)
            for (int i = 0; i < 8; i++) { p[16 * l + 2 * i] = (byte)(2 * (l & 7)); p[16 * l + 2 * i + 1] = (byte)(2 * (l & 7) + 1); }
        return p;
    }
}

using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.MatMul;

/// <summary>Native buffers of one thread, one per slot (a row of a multi-row product prepares its activations into its
/// own slot), 64-byte aligned, grown and never shrunk. Kept in a [ThreadStatic] field and called on that field.</summary>
internal unsafe struct ScratchSlots
{
    private nint[]? _pointers;
    private long[]? _bytes;

    /// <summary>The slot's buffer of at least <paramref name="bytes"/> bytes (contents undefined).</summary>
    public byte* Get(int slot, long bytes)
    {
        if (_pointers == null || _pointers.Length <= slot)
        {
            Array.Resize(ref _pointers, slot + 1);
            Array.Resize(ref _bytes, slot + 1);
        }
        if (_bytes![slot] < bytes)
        {
            if (_pointers[slot] != 0) NativeMemory.AlignedFree((void*)_pointers[slot]);
            _pointers[slot] = (nint)NativeMemory.AlignedAlloc((nuint)bytes, 64);
            _bytes[slot] = bytes;
        }
        return (byte*)_pointers[slot];
    }

    /// <summary>Rounds a sub-buffer's size up to whole cache lines (so the next one starts aligned).</summary>
    public static long Line(long bytes) => (bytes + 63) & ~63L;
}

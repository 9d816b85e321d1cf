using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// The CPU's resident layout of a Q8_0/Q4_0 matrix, repacked once at load from ggml's interleaved blocks
/// (fp16 scale + quants, 34/18 bytes) so that the kernels read each row as one aligned stream with no wasted bytes:
/// <code>
/// row r (RowBytes(type, cols) bytes, 64-byte aligned):
///   scales  (blocks) fp16, padded to a multiple of 64 bytes
///   quants  Q8_0: (blocks, 32) int8;  Q4_0: (blocks, 16) bytes, byte j of a block = q[j] | q[j + 16] &lt;&lt; 4 (ggml's order)
/// </code>
/// Q8_0 block pairs are then one 64-byte load, Q4_0 block quads one 64-byte load, and the bytes read per weight equal
/// ggml's (8.5 / 4.5 bits), where widened f32 scales would add 1 bit. Where the 512-bit kernels run, Q4_0 is packed in
/// tiles of 16 interleaved rows instead (<see cref="Q4_0Tiles"/>); <see cref="IsTiled"/> says which.
/// </summary>
internal static unsafe class PackedQuant
{
    private const int B = WeightTypes.BlockElements;

    /// <summary>Bytes of the padded scale area of a row of <paramref name="blocks"/> blocks.</summary>
    public static int ScaleBytes(int blocks) => (blocks * 2 + 63) & ~63;

    /// <summary>Quant bytes per block.</summary>
    public static int QuantBytes(WeightType type) => type switch
    {
        WeightType.Q8_0 => B,
        WeightType.Q4_0 => B / 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "only Q8_0 and Q4_0 are packed"),
    };

    /// <summary>Whether <paramref name="type"/> is packed in row tiles here (<see cref="Q4_0Tiles"/>), not row by row.</summary>
    public static bool IsTiled(WeightType type) => type == WeightType.Q4_0 && Q4_0Tiles.IsUsed;

    /// <summary>The rows a decode task or chunk takes whole: a tile of a tiled type, else 4 (the multi-row kernels' group).</summary>
    public static int RowAlign(WeightType type) => IsTiled(type) ? Q4_0Tiles.Rows : 4;

    /// <summary>Bytes of one packed row (a multiple of 64); of a tiled type, a tile's bytes per row (a size, not a stride).</summary>
    public static long RowBytes(WeightType type, int cols)
    {
        if (IsTiled(type)) return Q4_0Tiles.TileBytes(cols) / Q4_0Tiles.Rows;
        int blocks = cols / B;
        return (ScaleBytes(blocks) + (long)blocks * QuantBytes(type) + 63) & ~63L;
    }

    /// <summary>Repacks a (rows, cols) matrix stored in ggml blocks into native 64-byte aligned memory (huge pages where the
    /// OS gives them, see <see cref="Memory.HugePages"/>); release it with <see cref="Free"/>.</summary>
    public static byte* Pack(byte* w, WeightType type, int rows, int cols)
    {
        if (cols % B != 0) throw new ArgumentException($"row length {cols} is not a multiple of {B}");
        if (IsTiled(type))
        {
            long bytes = Q4_0Tiles.Bytes(rows, cols);
            var tiles = Memory.HugePages.Alloc(bytes);
            NativeMemory.Clear(tiles, (nuint)bytes);
            Q4_0Tiles.Pack(w, rows, cols, tiles);
            return tiles;
        }
        int blocks = cols / B, qBytes = QuantBytes(type), blockBytes = 2 + qBytes, scaleBytes = ScaleBytes(blocks);
        long srcRow = type.RowBytes(cols), dstRow = RowBytes(type, cols);
        var packed = Memory.HugePages.Alloc(dstRow * rows);
        for (long r = 0; r < rows; r++)
        {
            byte* src = w + r * srcRow, dst = packed + r * dstRow;
            NativeMemory.Clear(dst, (nuint)dstRow);
            for (int b = 0; b < blocks; b++)
            {
                ((ushort*)dst)[b] = Unsafe.ReadUnaligned<ushort>(src + b * blockBytes);
                Buffer.MemoryCopy(src + b * blockBytes + 2, dst + scaleBytes + b * qBytes, qBytes, qBytes);
            }
        }
        return packed;
    }

    public static void Free(byte* packed) => Memory.HugePages.Free(packed);

    /// <summary>Widens row <paramref name="row"/> of a packed matrix to F32 (prefill's weight blocks).</summary>
    public static void RowToF32(byte* packed, WeightType type, int cols, int row, float* dst)
    {
        if (IsTiled(type)) Q4_0Tiles.RowToF32(packed, cols, row, dst);
        else ToF32(packed + row * RowBytes(type, cols), type, cols, dst);
    }

    /// <summary>Widens one packed row (row by row layout) to F32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ToF32(byte* row, WeightType type, int cols, float* dst)
    {
        int blocks = cols / B;
        ushort* scales = (ushort*)row;
        byte* q = row + ScaleBytes(blocks);
        int qBytes = QuantBytes(type);
        for (int b = 0; b < blocks; b++)
        {
            float d = HalfVector.ToSingle(scales[b]);
            if (type == WeightType.Q8_0) Quant.BlockQuant.DequantizeBlockQ8_0(d, (sbyte*)q + b * qBytes, dst + b * B);
            else Quant.BlockQuant.DequantizeBlockQ4_0(d, q + b * qBytes, dst + b * B);
        }
    }
}

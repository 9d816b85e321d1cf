namespace KernelEngine.Kernels.Ilgpu;

/// <summary>
/// How a weight's rows lie in device memory. Q8_0 and Q4_0 are repacked at upload so that every row and every block's
/// quants start on 16 bytes (ggml's 34- and 18-byte blocks do not): per row, the blocks' fp16 scales (padded to 16
/// bytes), then their quants — 32 int8 per Q8_0 block, 16 bytes of nibbles per Q4_0 block in ggml's order (byte j: element
/// j low, element j + 16 high). The warp matvec reads them as 128-bit loads; <see cref="DeviceMath.ReadWeight"/> reads
/// this layout element by element. Every other format keeps its file layout.
/// </summary>
internal static unsafe class DeviceWeightLayout
{
    public static bool IsRepacked(WeightType type) => type is WeightType.Q8_0 or WeightType.Q4_0;

    private static int QuantBytes(WeightType type) => type == WeightType.Q8_0 ? 32 : 16;

    /// <summary>Bytes of the scale area of a repacked row of <paramref name="blocks"/> blocks (16-byte multiple).</summary>
    public static long ScaleBytes(int blocks) => (2L * blocks + 15) & ~15L;

    /// <summary>Bytes of one row on the device.</summary>
    public static long RowBytes(WeightType type, int cols) =>
        IsRepacked(type) ? ScaleBytes(cols / 32) + (long)cols / 32 * QuantBytes(type) : type.RowBytes(cols);

    /// <summary>Blocks of a repacked row from its byte length (the scale padding is below one block's bytes).</summary>
    public static long Blocks(WeightType type, long rowBytes) => rowBytes / (QuantBytes(type) + 2);

    /// <summary>Rewrites one row from the file layout (<paramref name="src"/>) to the device layout (<paramref name="dst"/>, <see cref="RowBytes"/> long).</summary>
    public static void RepackRow(byte* src, byte* dst, WeightType type, int cols)
    {
        int blocks = cols / 32, q = QuantBytes(type), blockBytes = q + 2;
        long scaleBytes = ScaleBytes(blocks);
        new Span<byte>(dst, (int)scaleBytes).Clear();
        for (int b = 0; b < blocks; b++)
        {
            byte* block = src + (long)b * blockBytes;
            ((ushort*)dst)[b] = *(ushort*)block;
            Buffer.MemoryCopy(block + 2, dst + scaleBytes + (long)b * q, q, q);
        }
    }
}

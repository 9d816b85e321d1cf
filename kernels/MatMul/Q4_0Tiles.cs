using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KernelEngine.Kernels.Simd;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// Q4_0 at 512 bits (<see cref="IsUsed"/>): the resident layout <see cref="PackedQuant"/> packs Q4_0 in there, 16 rows
/// interleaved so that a lane of a vector is a row (llama.cpp's repacked Q4_0xN idea). A 64-byte load holds 4 packed
/// bytes of each of 16 rows; against the 4 activation quants those bytes meet (broadcast to every lane) one vpmaddubsw
/// gives every row its products, so a block of 16 rows is 8 vpmaddubsw, adds in int16 and one vpmaddwd, and no row
/// ever needs a horizontal sum or a scale permute:
/// <code>
/// tile t (rows 16t .. 16t + 15, <see cref="TileBytes"/>, 64-byte aligned; rows past the matrix are zero):
///   scales  (blocks, 16) fp16: block b's scale of each row, padded to a multiple of 64 bytes
///   quants  (blocks, 4, 16, 4) bytes: block b, vector k, lane i = bytes 4k .. 4k + 3 of row i's block
///           (ggml's order: byte j holds q[j] | q[j + 16] &lt;&lt; 4)
/// </code>
/// Per row, block by block: s = Σ q·x (exact int32, the −8 offset as 8·Σx subtracted in integers), then
/// acc += float(s) · (d_w · d_x) in block order. The 1-, 2-, 4- and 8-row kernels do exactly that per row, so a row's
/// result does not depend on how many rows meet the weights; 8 rows unpack each weight vector once for all of them.
/// Bytes per weight are ggml's 4.5 bits.
/// </summary>
internal static unsafe class Q4_0Tiles
{
    private const int B = WeightTypes.BlockElements;

    /// <summary>Rows per tile: one per float lane of a 512-bit vector.</summary>
    public const int Rows = 16;

    /// <summary>Whether Q4_0 is packed in tiles here (the 512-bit kernels' layout).</summary>
    public static bool IsUsed => Avx512BW.IsSupported;

    /// <summary>Bytes of a tile's padded scale area.</summary>
    public static int ScaleBytes(int blocks) => (blocks * 2 * Rows + 63) & ~63;

    /// <summary>Bytes of one tile of 16 rows of <paramref name="cols"/> (a multiple of 64).</summary>
    public static long TileBytes(int cols)
    {
        int blocks = cols / B;
        return ScaleBytes(blocks) + (long)blocks * Rows * B / 2;
    }

    /// <summary>Bytes of a (rows, cols) matrix: whole tiles.</summary>
    public static long Bytes(int rows, int cols) => (rows + Rows - 1) / Rows * TileBytes(cols);

    /// <summary>Writes a (rows, cols) matrix stored in ggml blocks into <paramref name="dst"/> (<see cref="Bytes"/>, zeroed).</summary>
    public static void Pack(byte* w, int rows, int cols, byte* dst)
    {
        int blocks = cols / B, scaleBytes = ScaleBytes(blocks);
        long srcRow = WeightType.Q4_0.RowBytes(cols), tileBytes = TileBytes(cols);
        const int blockBytes = 2 + B / 2;
        for (int r = 0; r < rows; r++)
        {
            byte* src = w + r * srcRow, tile = dst + r / Rows * tileBytes;
            int lane = r % Rows;
            for (int b = 0; b < blocks; b++)
            {
                ((ushort*)tile)[b * Rows + lane] = Unsafe.ReadUnaligned<ushort>(src + b * blockBytes);
                byte* q = tile + scaleBytes + (long)b * Rows * (B / 2);
                for (int k = 0; k < 4; k++)
                    *(uint*)(q + k * 64 + lane * 4) = Unsafe.ReadUnaligned<uint>(src + b * blockBytes + 2 + 4 * k);
            }
        }
    }

    /// <summary>Widens row <paramref name="row"/> of a tiled matrix to F32 (prefill's weight blocks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RowToF32(byte* packed, int cols, int row, float* dst)
    {
        int blocks = cols / B;
        byte* tile = packed + row / Rows * TileBytes(cols);
        ushort* scales = (ushort*)tile + row % Rows;
        byte* src = tile + ScaleBytes(blocks) + row % Rows * 4;
        for (int b = 0; b < blocks; b++, src += Rows * (B / 2))
        {
            // the block's 16 bytes: 4 from each of its 4 vectors
            var raw = Vector128.Create(*(uint*)src, *(uint*)(src + 64), *(uint*)(src + 128), *(uint*)(src + 192)).AsByte();
            Quant.BlockQuant.DequantizeBlockQ4_0(HalfVector.ToSingle(scales[b * Rows]), raw, dst + b * B);
        }
    }

    /// <summary>How far ahead a pass that reads the tiles from memory prefetches them: a tile is two streams (its scales,
    /// its quants) consumed faster than one row, and 4x a row's distance measured best for one sequence's decode; several
    /// activation rows take longer over each tile, and half that distance measured best for 8.</summary>
    private static int PrefetchBytes(int activationRows) => (activationRows == 1 ? 4 : 2) * Prefetch.DecodeDistanceBytes;

    /// <summary>How many activation rows a kernel instance takes (a constant per instantiation).</summary>
    public interface IRowCount { static abstract int Count { get; } }
    public readonly struct One : IRowCount { public static int Count => 1; }
    public readonly struct Two : IRowCount { public static int Count => 2; }
    public readonly struct Four : IRowCount { public static int Count => 4; }
    public readonly struct Eight : IRowCount { public static int Count => 8; }

    /// <summary>
    /// y_r[o] = W[o] · x_r for o in [o0, o1) and the <typeparamref name="N"/> activation rows a[0..N) (Q8_0 quants
    /// <see cref="QuantMatVecCpu.Activations.Qx"/>, scales Dx and per-block 8·Σx <see cref="QuantMatVecCpu.Activations.BlockSum8"/>);
    /// y_r lies at y + r · yStride. Tiles that [o0, o1) cuts are computed whole and stored in part.
    /// <paramref name="prefetch"/>: this pass reads the weights from memory (prefetched <see cref="PrefetchBytes"/> ahead).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run<N>(byte* packed, int outDim, int cols, QuantMatVecCpu.Activations* a, int o0, int o1, float* y, long yStride, bool prefetch)
        where N : struct, IRowCount
    {
        int n = N.Count, blocks = cols / B, scaleBytes = ScaleBytes(blocks);
        long tileBytes = TileBytes(cols);
        byte* end = packed + Bytes(outDim, cols);
        int distance = prefetch ? PrefetchBytes(n) : 0;
        // rows past N alias row 0 (their code is compiled out: N is a constant)
        var rows = stackalloc QuantMatVecCpu.Activations[8];
        for (int r = 0; r < 8; r++) rows[r] = a[r < n ? r : 0];
        var mask = Vector512.Create((byte)0x0F);
        var ones = Vector512.Create((short)1);
        float* part = stackalloc float[Rows];
        for (int t = o0 / Rows; t * Rows < o1; t++)
        {
            byte* tile = packed + t * tileBytes;
            ushort* scales = (ushort*)tile;
            byte* quants = tile + scaleBytes;
            Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
            for (int b = 0; b < blocks; b++)
            {
                byte* q = quants + (long)b * Rows * (B / 2);
                if (distance > 0 && q + distance < end) Prefetch.Range(q + distance, Rows * (B / 2));
                var dw = HalfVector.LoadHalf16(scales + b * Rows);
                // 4 packed bytes of each row per vector: low nibbles meet activation units 0-3, high nibbles units 4-7
                var v0 = Vector512.Load(q); var v1 = Vector512.Load(q + 64); var v2 = Vector512.Load(q + 128); var v3 = Vector512.Load(q + 192);
                var l0 = v0 & mask; var l1 = v1 & mask; var l2 = v2 & mask; var l3 = v3 & mask;
                var h0 = Vector512.ShiftRightLogical(v0.AsUInt16(), 4).AsByte() & mask;
                var h1 = Vector512.ShiftRightLogical(v1.AsUInt16(), 4).AsByte() & mask;
                var h2 = Vector512.ShiftRightLogical(v2.AsUInt16(), 4).AsByte() & mask;
                var h3 = Vector512.ShiftRightLogical(v3.AsUInt16(), 4).AsByte() & mask;
                c0 = Accumulate(l0, l1, l2, l3, h0, h1, h2, h3, rows[0], b, dw, c0, ones);
                if (n > 1) c1 = Accumulate(l0, l1, l2, l3, h0, h1, h2, h3, rows[1], b, dw, c1, ones);
                if (n > 2)
                {
                    c2 = Accumulate(l0, l1, l2, l3, h0, h1, h2, h3, rows[2], b, dw, c2, ones);
                    c3 = Accumulate(l0, l1, l2, l3, h0, h1, h2, h3, rows[3], b, dw, c3, ones);
                }
                if (n > 4)
                {
                    c4 = Accumulate(l0, l1, l2, l3, h0, h1, h2, h3, rows[4], b, dw, c4, ones);
                    c5 = Accumulate(l0, l1, l2, l3, h0, h1, h2, h3, rows[5], b, dw, c5, ones);
                    c6 = Accumulate(l0, l1, l2, l3, h0, h1, h2, h3, rows[6], b, dw, c6, ones);
                    c7 = Accumulate(l0, l1, l2, l3, h0, h1, h2, h3, rows[7], b, dw, c7, ones);
                }
            }
            int first = t * Rows;
            Store(c0, y, first, o0, o1, outDim, part);
            if (n > 1) Store(c1, y + yStride, first, o0, o1, outDim, part);
            if (n > 2) { Store(c2, y + 2 * yStride, first, o0, o1, outDim, part); Store(c3, y + 3 * yStride, first, o0, o1, outDim, part); }
            if (n > 4)
            {
                Store(c4, y + 4 * yStride, first, o0, o1, outDim, part); Store(c5, y + 5 * yStride, first, o0, o1, outDim, part);
                Store(c6, y + 6 * yStride, first, o0, o1, outDim, part); Store(c7, y + 7 * yStride, first, o0, o1, outDim, part);
            }
        }
    }

    /// <summary>acc + float(Σ q·x − 8·Σx) · (d_w · d_x) for one activation row and block b: 8 vpmaddubsw of the unpacked
    /// nibbles against the row's broadcast quants summed as a tree in int16 (exact: |Σ| ≤ 8 · 2 · 15 · 127), widened by one
    /// vpmaddwd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector512<float> Accumulate(Vector512<byte> l0, Vector512<byte> l1, Vector512<byte> l2, Vector512<byte> l3,
        Vector512<byte> h0, Vector512<byte> h1, Vector512<byte> h2, Vector512<byte> h3, in QuantMatVecCpu.Activations x, int b,
        Vector512<float> dw, Vector512<float> acc, Vector512<short> ones)
    {
        int* u = (int*)x.Qx + b * 8;
        var p = (Avx512BW.MultiplyAddAdjacent(l0, Vector512.Create(u[0]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h0, Vector512.Create(u[4]).AsSByte()))
            + (Avx512BW.MultiplyAddAdjacent(l1, Vector512.Create(u[1]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h1, Vector512.Create(u[5]).AsSByte()))
            + ((Avx512BW.MultiplyAddAdjacent(l2, Vector512.Create(u[2]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h2, Vector512.Create(u[6]).AsSByte()))
            + (Avx512BW.MultiplyAddAdjacent(l3, Vector512.Create(u[3]).AsSByte()) + Avx512BW.MultiplyAddAdjacent(h3, Vector512.Create(u[7]).AsSByte())));
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent(p, ones) - Vector512.Create(x.BlockSum8[b])),
            dw * Vector512.Create(x.Dx[b]), acc);
    }

    /// <summary>The tile's 16 results (rows first .. first + 15) into y where they fall in [o0, o1) and the matrix.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(Vector512<float> v, float* y, int first, int o0, int o1, int outDim, float* part)
    {
        int lo = Math.Max(o0, first), hi = Math.Min(Math.Min(o1, outDim), first + Rows);
        if (lo == first && hi == first + Rows) { v.Store(y + first); return; }
        v.Store(part);
        for (int o = lo; o < hi; o++) y[o] = part[o - first];
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// Decode for ggml's other 32-element formats, read in place: Q4_1 (d, m, nibbles), Q5_0 (d, fifth bits, nibbles,
/// offset 16) and Q5_1 (d, m, fifth bits, nibbles) — llama.cpp's fallbacks when a row is not whole K super-blocks (a
/// Q4_K_M Qwen2 with 896-wide rows is mostly Q5_0). Activations are quantized to 8 bits per 32 once per token (as for
/// Q8_0); per block the unsigned 5-bit quants meet them in vpmaddubsw + vpmaddwd, and the offset or min term comes from
/// the block's activation sum. AVX2 path; scalar elsewhere.
/// </summary>
internal static unsafe class LegacyQuantMatVecCpu
{
    private const int B = WeightTypes.BlockElements;

    public static bool Handles(WeightType type) => type is WeightType.Q4_1 or WeightType.Q5_0 or WeightType.Q5_1;

    /// <summary>The Q8_0 activations (<see cref="QuantMatVecCpu.Prepare"/>) plus Σ qx per block.</summary>
    public struct Activations
    {
        public QuantMatVecCpu.Activations Q;
        public int* BlockSum;   // (n / 32)
    }

    [ThreadStatic] private static ScratchSlots t_slots;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static Activations Prepare(in QuantMatVecCpu.Activations q, int n, int slot = 0)
    {
        int blocks = n / B;
        int* sums = (int*)t_slots.Get(slot, blocks * 4L);
        for (int b = 0; b < blocks; b++)
        {
            int s = 0;
            for (int g = 0; g < 8; g++) s += q.Sum4x8[b * 8 + g];
            sums[b] = s / 8;
        }
        return new Activations { Q = q, BlockSum = sums };
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(in MatVecPart part, in Activations a, int n, int o0, int o1)
    {
        long rowBytes = part.Type.RowBytes(n);
        int blocks = n / B;
        sbyte* qx = a.Q.Qx; float* dx = a.Q.Dx; int* s4 = a.BlockSum;
        switch (part.Type)
        {
            case WeightType.Q4_1: for (int o = o0; o < o1; o++) part.Y[o] = Dot<KQuantMatVecCpu.Yes, KQuantMatVecCpu.No>(part.W + o * rowBytes, qx, dx, s4, blocks); break;
            case WeightType.Q5_0: for (int o = o0; o < o1; o++) part.Y[o] = Dot<KQuantMatVecCpu.No, KQuantMatVecCpu.Yes>(part.W + o * rowBytes, qx, dx, s4, blocks); break;
            default: for (int o = o0; o < o1; o++) part.Y[o] = Dot<KQuantMatVecCpu.Yes, KQuantMatVecCpu.Yes>(part.W + o * rowBytes, qx, dx, s4, blocks); break;
        }
    }

    // vpshufb control: each byte of the 32 fifth bits replicated over the 8 elements it covers (within 128-bit lanes)
    private static readonly Vector256<byte> SpreadBits = Vector256.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    private static readonly Vector256<byte> BitOfByte = Vector256.Create((byte)1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128,
        1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);

    /// <summary>One row; <typeparamref name="THasMin"/>: Q4_1/Q5_1 (d·q + m), else Q5_0 (d·(q − 16)); <typeparamref name="TFifth"/>: Q5_*.
    /// The flags are compile-time so the JIT keeps the loop's accumulators in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot<THasMin, TFifth>(byte* row, sbyte* qx, float* dx, int* blockSums, int blocks)
        where THasMin : struct, KQuantMatVecCpu.IFlag where TFifth : struct, KQuantMatVecCpu.IFlag
    {
        bool hasMin = THasMin.Value, fifth = TFifth.Value;
        int blockBytes = !fifth ? 20 : hasMin ? 24 : 22;
        int qsAt = !fifth ? 4 : hasMin ? 8 : 6, qhAt = hasMin ? 4 : 2;
        if (Avx2.IsSupported)
        {
            var acc = Vector256<float>.Zero;
            float minTerm = 0;
            var mask = Vector128.Create((byte)0x0F);
            var ones = Vector256.Create((short)1);
            Vector256<byte> spread = SpreadBits, bits = BitOfByte;
            var sixteen = Vector256.Create((byte)0x10);
            for (int b = 0; b < blocks; b++)
            {
                byte* blk = row + b * blockBytes;
                float d = HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk)) * dx[b];
                var raw = Vector128.Load(blk + qsAt);
                var q = Vector256.Create(raw & mask, Vector128.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask);
                if (fifth)
                {
                    var qh = Vector256.Create(Unsafe.ReadUnaligned<uint>(blk + qhAt)).AsByte();
                    var set = Vector256.Equals(Avx2.Shuffle(qh, spread) & bits, bits);
                    q |= set & sixteen;
                }
                var p = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(qx + b * B)), ones);
                acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p), Vector256.Create(d), acc);
                // Q5_0: Σ (q − 16)·x = Σ q·x − 16·Σx; Q4_1/Q5_1: + m·Σx
                float offset = hasMin ? HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk + 2)) * dx[b] : -16f * d;
                minTerm += offset * blockSums[b];
            }
            return Vector256.Sum(acc) + minTerm;
        }
        float sum = 0;
        for (int b = 0; b < blocks; b++)
        {
            byte* blk = row + b * blockBytes;
            float d = HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk)) * dx[b];
            uint qh = fifth ? Unsafe.ReadUnaligned<uint>(blk + qhAt) : 0;
            int isum = 0;
            for (int j = 0; j < 16; j++)
            {
                int lo = (blk[qsAt + j] & 0x0F) | (int)(((qh >> j) & 1) << 4);
                int hi = (blk[qsAt + j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
                isum += lo * qx[b * B + j] + hi * qx[b * B + j + 16];
            }
            float offset = hasMin ? HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk + 2)) * dx[b] : -16f * d;
            sum += d * isum + offset * blockSums[b];
        }
        return sum;
    }
}

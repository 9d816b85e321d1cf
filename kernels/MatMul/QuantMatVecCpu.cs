using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KernelEngine.Kernels.Threading;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// Decode matrix-vector product for Q8_0 / Q4_0 weights, the way llama.cpp does it: the activation row is quantized
/// once to 8-bit blocks (dx = amax / 127), then each weight block meets its activation block in an integer dot
/// product scaled by dw·dx. On AVX-512BW two blocks go through one 512-bit vpmaddubsw + vpmaddwd (unsigned × signed
/// bytes → int16 pairs → int32 quads); the sign of Q8_0 weights moves onto the activations (|w| · sign(w)x), Q4_0's
/// unsigned nibbles q (packed per row at load) go in directly and the −8 offset is subtracted as 8·Σx per group of four (precomputed once).
/// Other CPUs take the 256-bit AVX2 or the scalar path. (.NET 10 exposes no AVX-512 VNNI intrinsic, so vpdpbusd is
/// out of reach; vpmaddubsw + vpmaddwd is the same arithmetic in two instructions.)
/// </summary>
public static unsafe class QuantMatVecCpu
{
    private const int B = WeightTypes.BlockElements;

    [ThreadStatic] private static sbyte[]? t_qx;
    [ThreadStatic] private static float[]? t_dx;
    [ThreadStatic] private static int[]? t_sum4;
    [ThreadStatic] private static sbyte[]? t_qxp;
    [ThreadStatic] private static int[]? t_sum4p;

    private struct Job
    {
        public sbyte* Qx;       // (n) quantized activations
        public float* Dx;       // (n / 32) activation block scales
        public int* Sum4x8;     // (n / 4) 8 · Σ qx over each group of 4 (Q4_0 offset)
        public float* Scales;   // (outDim, n / 32) weight block scales widened to f32 once at load
        public byte* Nibbles;   // Q4_0: (outDim, n / 2) the quants of each row back to back
        public sbyte* Qxp;      // Q4_0: qx reordered per block pair as [a0-15, b0-15, a16-31, b16-31] (the nibble order)
        public int* Sum4x8p;    // Q4_0: Sum4x8 in the same order
        public int Blocks;
        public byte* W;
        public long RowBytes;
        public WeightType Type;
        public int OutDim;
        public float* Bias;
        public float* Y;
        public int RowsPerTask;
    }

    /// <param name="scales">(outDim, n / 32) the weight blocks' fp16 scales as f32 (<see cref="WidenScales"/>), read
    /// instead of converting two halves per block pair in the inner loop</param>
    /// <param name="nibbles">Q4_0: the quants repacked by <see cref="PackNibbles"/></param>
    public static void MatVec(WorkerPool pool, float* x, int n, byte* w, WeightType type, int outDim, float* bias, float* y, float* scales, byte* nibbles)
    {
        if (type == WeightType.Q4_0 && nibbles == null) throw new ArgumentNullException(nameof(nibbles), "Q4_0 decode needs the packed quants");
        if (n % B != 0) throw new ArgumentException($"row length {n} is not a multiple of {B}");
        if (t_qx == null || t_qx.Length < n)
        {
            t_qx = GC.AllocateUninitializedArray<sbyte>(n, pinned: true);
            t_dx = GC.AllocateUninitializedArray<float>(n / B, pinned: true);
            t_sum4 = GC.AllocateUninitializedArray<int>(n / 4, pinned: true);
        }
        var job = new Job
        {
            Qx = (sbyte*)Unsafe.AsPointer(ref t_qx[0]), Dx = (float*)Unsafe.AsPointer(ref t_dx![0]), Sum4x8 = (int*)Unsafe.AsPointer(ref t_sum4![0]),
            Blocks = n / B, W = w, RowBytes = type.RowBytes(n), Type = type, OutDim = outDim, Bias = bias, Y = y, Scales = scales, Nibbles = nibbles,
        };
        QuantizeActivations(x, n, job.Qx, job.Dx, job.Sum4x8);
        if (type == WeightType.Q4_0)
        {
            if (t_qxp == null || t_qxp.Length < n)
            {
                t_qxp = GC.AllocateUninitializedArray<sbyte>(n, pinned: true);
                t_sum4p = GC.AllocateUninitializedArray<int>(n / 4, pinned: true);
            }
            job.Qxp = (sbyte*)Unsafe.AsPointer(ref t_qxp[0]);
            job.Sum4x8p = (int*)Unsafe.AsPointer(ref t_sum4p![0]);
            PairOrder(job.Qx, job.Sum4x8, n / B, job.Qxp, job.Sum4x8p);
        }
        int tasksWanted = pool.Threads * 8;
        job.RowsPerTask = Math.Max(4, (outDim + tasksWanted - 1) / tasksWanted);
        pool.For((outDim + job.RowsPerTask - 1) / job.RowsPerTask, &Task, &job, (long)outDim * n);
    }

    /// <summary>Q8_0 blocks of the activation row exactly as ggml's quantize_row_q8_0 (d = amax / 127 kept in fp16, q = roundf(x / d)); plus 8 · Σq per group of 4.</summary>
    public static void QuantizeActivations(float* x, int n, sbyte* qx, float* dx, int* sum4x8)
    {
        int blocks = n / B, b = 0;
        if (Avx512BW.IsSupported)
        {
            var half = Vector512.Create(0.5f);
            for (; b < blocks; b++)
            {
                float* src = x + b * B;
                var v0 = Vector512.Load(src); var v1 = Vector512.Load(src + 16);
                float amax = Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1)) is var m ? MaxAcross(m) : 0;
                float d = amax / 127f;
                var id = Vector512.Create(d != 0 ? 1f / d : 0f);
                dx[b] = (float)(Half)d;
                // roundf: away from zero (x + copysign(0.5, x), truncated)
                var a0 = v0 * id; var a1 = v1 * id;
                var q0 = Avx512F.ConvertToVector512Int32WithTruncation(a0 + Vector512.CopySign(half, a0));
                var q1 = Avx512F.ConvertToVector512Int32WithTruncation(a1 + Vector512.CopySign(half, a1));
                Avx512F.ConvertToVector128SByte(q0).Store(qx + b * B);
                Avx512F.ConvertToVector128SByte(q1).Store(qx + b * B + 16);
                // 8 · (sum of each 4 consecutive quants): lanes of 4 int32 summed by a 4x4 transpose-free add tree
                var s0 = Sum4(q0); var s1 = Sum4(q1);
                Vector128.ShiftLeft(s0, 3).Store(sum4x8 + b * 8);
                Vector128.ShiftLeft(s1, 3).Store(sum4x8 + b * 8 + 4);
            }
            return;
        }
        for (; b < blocks; b++)
        {
            float* src = x + b * B;
            float amax = 0;
            for (int j = 0; j < B; j++) amax = MathF.Max(amax, MathF.Abs(src[j]));
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            dx[b] = (float)(Half)d;   // as ggml's block_q8_0: the scale is stored in fp16
            for (int j = 0; j < B; j++) qx[b * B + j] = (sbyte)MathF.Round(src[j] * id, MidpointRounding.AwayFromZero);
            for (int g = 0; g < B / 4; g++)
            {
                sbyte* q = qx + b * B + g * 4;
                sum4x8[b * (B / 4) + g] = 8 * (q[0] + q[1] + q[2] + q[3]);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxAcross(Vector512<float> v)
    {
        var m = Vector256.Max(v.GetLower(), v.GetUpper());
        var m2 = Vector128.Max(m.GetLower(), m.GetUpper());
        return MathF.Max(MathF.Max(m2[0], m2[1]), MathF.Max(m2[2], m2[3]));
    }

    /// <summary>Sums of lanes (0-3), (4-7), (8-11), (12-15).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Sum4(Vector512<int> q)
    {
        // Transpose-free: gather lanes k, k+4, k+8, k+12 of each group with permutes and add.
        var a = Avx512F.PermuteVar16x32(q, Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
        var s = a.GetLower() + a.GetUpper();              // (l0+l2, l4+l6...) pairs per group across halves
        return s.GetLower() + s.GetUpper();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Task(void* ctx, int task)
    {
        ref Job j = ref Unsafe.AsRef<Job>(ctx);
        int o0 = task * j.RowsPerTask, o1 = Math.Min(j.OutDim, o0 + j.RowsPerTask);
        for (int o = o0; o < o1; o++)
        {
            byte* row = j.W + o * j.RowBytes;
            float* ws = j.Scales + (long)o * j.Blocks;
            float v = j.Type == WeightType.Q8_0 ? DotQ8_0(row, ws, j.Qx, j.Dx, j.Blocks)
                : DotQ4_0Packed(j.Nibbles + (long)o * j.Blocks * (B / 2), ws, j.Qx, j.Qxp, j.Dx, j.Sum4x8p, j.Blocks);
            j.Y[o] = j.Bias != null ? v + j.Bias[o] : v;
        }
    }

    /// <summary>The 16 quant bytes of every Q4_0 block, back to back per row: (rows, cols / 2), 64-byte aligned.</summary>
    public static byte[] PackNibbles(byte* w, int rows, int cols)
    {
        int blocks = cols / B;
        long rowBytes = WeightType.Q4_0.RowBytes(cols);
        var packed = GC.AllocateUninitializedArray<byte>(rows * (cols / 2), pinned: true);
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < blocks; b++)
                new ReadOnlySpan<byte>(w + r * rowBytes + b * WeightTypes.Q4_0BlockBytes + 2, B / 2).CopyTo(packed.AsSpan(r * (cols / 2) + b * (B / 2), B / 2));
        return packed;
    }

    /// <summary>Reorders activation quants (and their group sums) per block pair to the packed nibbles' order.</summary>
    private static void PairOrder(sbyte* qx, int* sum4x8, int blocks, sbyte* qxp, int* sum4x8p)
    {
        int b = 0;
        for (; b + 2 <= blocks; b += 2)
        {
            sbyte* a = qx + b * B, c = a + B, d = qxp + b * B;
            Buffer.MemoryCopy(a, d, 16, 16); Buffer.MemoryCopy(c, d + 16, 16, 16);
            Buffer.MemoryCopy(a + 16, d + 32, 16, 16); Buffer.MemoryCopy(c + 16, d + 48, 16, 16);
            int* sa = sum4x8 + b * 8, sc = sa + 8, sd = sum4x8p + b * 8;
            for (int g = 0; g < 4; g++) { sd[g] = sa[g]; sd[4 + g] = sc[g]; sd[8 + g] = sa[4 + g]; sd[12 + g] = sc[4 + g]; }
        }
        if (b < blocks)
        {
            Buffer.MemoryCopy(qx + b * B, qxp + b * B, B, B);
            Buffer.MemoryCopy(sum4x8 + b * 8, sum4x8p + b * 8, 32, 32);
        }
    }

    /// <summary>
    /// Q4_0 with packed quants: one 32-byte load holds two blocks; low nibbles [a0-15 | b0-15], high [a16-31 | b16-31]
    /// meet activations stored in that order (<see cref="PairOrder"/>), so no shuffle is needed; the int32 lanes are
    /// then (a, b, a, b) in groups of 4, which the scale permute reproduces.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ4_0Packed(byte* nib, float* ws, sbyte* qx, sbyte* qxp, float* dx, int* sum4x8p, int blocks)
    {
        int b = 0;
        float sum = 0;
        if (Avx512BW.IsSupported)
        {
            var acc = Vector512<float>.Zero;
            var acc2 = Vector512<float>.Zero;
            var ones = Vector512.Create((short)1);
            var mask = Vector256.Create((byte)0x0F);
            // 8 blocks per step: their 8 scale products come from one multiply and are spread to each pair's lanes
            // with one permute, instead of broadcasts and inserts per pair.
            for (; b + 8 <= blocks; b += 8)
            {
                var s8 = Vector256.Load(ws + b) * Vector256.Load(dx + b);
                var s16 = Vector512.Create(s8, s8);
                acc = Q4Pair(nib, qxp, sum4x8p, b, Avx512F.PermuteVar16x32(s16, Q4Pair0), acc, mask, ones);
                acc2 = Q4Pair(nib, qxp, sum4x8p, b + 2, Avx512F.PermuteVar16x32(s16, Q4Pair1), acc2, mask, ones);
                acc = Q4Pair(nib, qxp, sum4x8p, b + 4, Avx512F.PermuteVar16x32(s16, Q4Pair2), acc, mask, ones);
                acc2 = Q4Pair(nib, qxp, sum4x8p, b + 6, Avx512F.PermuteVar16x32(s16, Q4Pair3), acc2, mask, ones);
            }
            for (; b + 2 <= blocks; b += 2)
            {
                var h = Vector256.Create(Vector128.Create(ws[b] * dx[b]), Vector128.Create(ws[b + 1] * dx[b + 1]));
                acc = Q4Pair(nib, qxp, sum4x8p, b, Vector512.Create(h, h), acc, mask, ones);
            }
            sum = Vector512.Sum(acc + acc2);
        }
        for (; b < blocks; b++)
        {
            byte* q = nib + b * (B / 2);
            int s = 0;
            for (int k = 0; k < B / 2; k++)
            {
                s += ((q[k] & 0x0F) - 8) * qx[b * B + k];
                s += ((q[k] >> 4) - 8) * qx[b * B + k + B / 2];
            }
            sum += s * ws[b] * dx[b];
        }
        return sum;
    }

    private static readonly Vector512<int> Pair0 = Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    private static readonly Vector512<int> Pair1 = Vector512.Create(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    private static readonly Vector512<int> Pair2 = Vector512.Create(4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5);
    private static readonly Vector512<int> Pair3 = Vector512.Create(6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7);

    /// <summary>One pair of Q8_0 blocks (b, b + 1): |w| · sign(w)x through vpmaddubsw + vpmaddwd, scaled and accumulated.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q8Pair(byte* row, sbyte* qx, int b, Vector512<float> scale, Vector512<float> acc, Vector512<short> ones)
    {
        byte* ba = row + b * WeightTypes.Q8_0BlockBytes;
        var w = Vector512.Create(Vector256.Load((sbyte*)(ba + 2)), Vector256.Load((sbyte*)(ba + WeightTypes.Q8_0BlockBytes + 2)));
        var x = Vector512.Load(qx + b * B);
        var sx = Vector512.ConditionalSelect(Vector512.LessThan(w, Vector512<sbyte>.Zero), -x, x);
        var p32 = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(Avx512BW.Abs(w), sx), ones);
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(p32), scale, acc);
    }

    private static readonly Vector512<int> Q4Pair0 = Vector512.Create(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
    private static readonly Vector512<int> Q4Pair1 = Vector512.Create(2, 2, 2, 2, 3, 3, 3, 3, 2, 2, 2, 2, 3, 3, 3, 3);
    private static readonly Vector512<int> Q4Pair2 = Vector512.Create(4, 4, 4, 4, 5, 5, 5, 5, 4, 4, 4, 4, 5, 5, 5, 5);
    private static readonly Vector512<int> Q4Pair3 = Vector512.Create(6, 6, 6, 6, 7, 7, 7, 7, 6, 6, 6, 6, 7, 7, 7, 7);

    /// <summary>One pair of packed Q4_0 blocks (b, b + 1) against pair-ordered activations, scaled and accumulated.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q4Pair(byte* nib, sbyte* qxp, int* sum4x8p, int b, Vector512<float> scale, Vector512<float> acc,
        Vector256<byte> mask, Vector512<short> ones)
    {
        var v = Vector256.Load(nib + b * (B / 2));
        var q = Vector512.Create(v & mask, Vector256.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask);
        var p32 = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, Vector512.Load(qxp + b * B)), ones) - Vector512.Load(sum4x8p + b * (B / 4));
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(p32), scale, acc);
    }

    /// <summary>The fp16 scale of every block of a Q8_0/Q4_0 matrix as f32: (rows, cols / 32).</summary>
    public static float[] WidenScales(byte* w, WeightType type, int rows, int cols)
    {
        int blocks = cols / B;
        long rowBytes = type.RowBytes(cols);
        int blockBytes = type == WeightType.Q8_0 ? WeightTypes.Q8_0BlockBytes : WeightTypes.Q4_0BlockBytes;
        var s = GC.AllocateUninitializedArray<float>(rows * blocks, pinned: true);
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < blocks; b++)
                s[r * blocks + b] = HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(w + r * rowBytes + b * blockBytes));
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ8_0(byte* row, float* ws, sbyte* qx, float* dx, int blocks)
    {
        int b = 0;
        float sum = 0;
        if (Avx512BW.IsSupported)
        {
            var acc = Vector512<float>.Zero;
            var ones = Vector512.Create((short)1);
            for (; b + 8 <= blocks; b += 8)
            {
                var s8 = Vector256.Load(ws + b) * Vector256.Load(dx + b);
                var s16 = Vector512.Create(s8, s8);
                acc = Q8Pair(row, qx, b, Avx512F.PermuteVar16x32(s16, Pair0), acc, ones);
                acc = Q8Pair(row, qx, b + 2, Avx512F.PermuteVar16x32(s16, Pair1), acc, ones);
                acc = Q8Pair(row, qx, b + 4, Avx512F.PermuteVar16x32(s16, Pair2), acc, ones);
                acc = Q8Pair(row, qx, b + 6, Avx512F.PermuteVar16x32(s16, Pair3), acc, ones);
            }
            for (; b + 2 <= blocks; b += 2)
            {
                byte* ba = row + b * WeightTypes.Q8_0BlockBytes, bb = ba + WeightTypes.Q8_0BlockBytes;
                var w = Vector512.Create(Vector256.Load((sbyte*)(ba + 2)), Vector256.Load((sbyte*)(bb + 2)));
                var x = Vector512.Load(qx + b * B);
                var sx = Vector512.ConditionalSelect(Vector512.LessThan(w, Vector512<sbyte>.Zero), -x, x);
                var p16 = Avx512BW.MultiplyAddAdjacent(Avx512BW.Abs(w), sx);
                var p32 = Avx512BW.MultiplyAddAdjacent(p16, ones);
                var scale = Vector512.Create(Vector256.Create(ws[b] * dx[b]), Vector256.Create(ws[b + 1] * dx[b + 1]));
                acc = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(p32), scale, acc);
            }
            sum = Vector512.Sum(acc);
        }
        else if (Avx2.IsSupported)
        {
            var acc = Vector256<float>.Zero;
            var ones = Vector256.Create((short)1);
            for (; b < blocks; b++)
            {
                byte* blk = row + b * WeightTypes.Q8_0BlockBytes;
                var w = Vector256.Load((sbyte*)(blk + 2));
                var x = Vector256.Load(qx + b * B);
                var p32 = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w)), ones);
                acc = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(p32), Vector256.Create(ws[b] * dx[b]), acc);
            }
            sum = Vector256.Sum(acc);
        }
        for (; b < blocks; b++)
        {
            byte* blk = row + b * WeightTypes.Q8_0BlockBytes;
            sbyte* q = (sbyte*)(blk + 2);
            int s = 0;
            for (int k = 0; k < B; k++) s += q[k] * qx[b * B + k];
            sum += s * ws[b] * dx[b];
        }
        return sum;
    }
}

using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KernelEngine.Kernels.Simd;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// Decode matrix-vector product for Q8_0 / Q4_0 weights, the way llama.cpp does it: the activation row is quantized
/// once to 8-bit blocks (dx = amax / 127), then each weight block meets its activation block in an integer dot
/// product scaled by dw·dx. On AVX-512BW two blocks go through one 512-bit vpmaddubsw + vpmaddwd (unsigned × signed
/// bytes → int16 pairs → int32 quads); the sign of Q8_0 weights moves onto the activations (|w| · sign(w)x). Q4_0 at
/// 512 bits runs on 16-row tiles (<see cref="Q4_0Tiles"/>); below it its quants (packed per row at load) go in as
/// unsigned nibbles a group of blocks per load, and the −8 offset joins per group as weight scale · (−dx · 8·Σx)
/// (precomputed once per token, one FMA instead of a subtraction per lane). Other CPUs take the 256-bit AVX2, the
/// 128-bit or the scalar path. (.NET 10 exposes no AVX-512 VNNI intrinsic, so vpdpbusd is
/// out of reach; vpmaddubsw + vpmaddwd is the same arithmetic in two instructions.)
/// </summary>
internal static unsafe class QuantMatVecCpu
{
    private const int B = WeightTypes.BlockElements;

    [ThreadStatic] private static ScratchSlots t_slots;

    /// <summary>The activation row quantized once per product (and shared by every matrix that reads it).</summary>
    public struct Activations
    {
        public sbyte* Qx;       // (n) quantized activations
        public float* Dx;       // (n / 32) activation block scales
        public int* Sum4x8;     // (n / 4) 8 · Σ qx over each group of 4 (Q4_0 offset)
        public sbyte* Qxp;      // Q4_0 below 512 bits: (1.5 n) per group of G blocks, one stream: [x0-15 of each block |
                                // x16-31 of each block] and each block's scale repeated over its 4 int32 lanes (48 bytes per block)
        public float* NegOff;   // Q4_0 below 512 bits: (n / 32, zero-padded by a vector) −dx · 8·Σ qx per block (the −8 offset)
        public int* BlockSum8;  // Q4_0 at 512 bits (Q4_0Tiles): (n / 32) 8 · Σ qx per block (the −8 offset, in integers)
    }

    /// <summary>Quantizes x (n a multiple of 32) into the calling thread's buffers of <paramref name="slot"/> (one per
    /// row of a multi-row product); <paramref name="groupOrder"/> adds what the Q4_0 kernels read (at 512 bits the
    /// per-block sums of <see cref="Q4_0Tiles"/>, below it the grouped stream). Valid until the same thread prepares that
    /// slot again.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static Activations Prepare(float* x, int n, bool groupOrder, int slot = 0)
    {
        if (n % B != 0) throw new ArgumentException($"row length {n} is not a multiple of {B}");
        // dx and NegOff carry a vector of padding: the scale products and offsets read whole vectors
        long qx = ScratchSlots.Line(n), dx = ScratchSlots.Line((n / B + 16) * 4L), sum4 = ScratchSlots.Line(n / 4 * 4L);
        byte* p = t_slots.Get(slot, qx + dx + sum4 + 2 * qx + dx);
        var a = new Activations
        {
            Qx = (sbyte*)p, Dx = (float*)(p + qx), Sum4x8 = (int*)(p + qx + dx),
            Qxp = (sbyte*)(p + qx + dx + sum4), NegOff = (float*)(p + 3 * qx + dx + sum4), BlockSum8 = (int*)(p + 3 * qx + dx + sum4),
        };
        // the padding must be finite (0 · pad, never NaN)
        new Span<float>(a.Dx + n / B, 16).Clear();
        QuantizeActivations(x, n, a.Qx, a.Dx, a.Sum4x8);
        if (groupOrder)
        {
            int blocks = n / B;
            if (Q4_0Tiles.IsUsed)
                for (int b = 0; b < blocks; b++) a.BlockSum8[b] = Vector256.Sum(Vector256.Load(a.Sum4x8 + 8 * b));
            else
            {
                GroupStream(a, blocks);
                for (int b = 0; b < blocks; b++) a.NegOff[b] = -a.Dx[b] * Vector256.Sum(Vector256.Load(a.Sum4x8 + 8 * b));
                new Span<float>(a.NegOff + blocks, 16).Clear();
            }
        }
        return a;
    }

    /// <summary>y[o] = W[o] · x for o in [o0, o1) of one Q8_0/Q4_0 matrix in <see cref="PackedQuant"/> layout (bias not added).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(in MatVecPart part, in Activations a, int n, int o0, int o1)
    {
        int blocks = n / B;
        long rowBytes = PackedQuant.RowBytes(part.Type, n);
        byte* w = part.Packed;
        if (!Avx512BW.IsSupported && Simd256.IsSupported) { Rows<Simd256, Vector256<float>>(part, a, blocks, rowBytes, o0, o1); return; }
        if (!Avx512BW.IsSupported && Simd128.IsSupported) { Rows<Simd128, Vector128<float>>(part, a, blocks, rowBytes, o0, o1); return; }
        if (part.Type == WeightType.Q8_0)
            for (int o = o0; o < o1; o++) part.Y[o] = DotQ8_0(w + o * rowBytes, a.Qx, a.Dx, blocks);
        else TiledRows(part, a, n, o0, o1, prefetch: false);
    }

    /// <summary>y[o] = W[o] · x for o in [o0, o1) of a tiled Q4_0 matrix (<see cref="PackedQuant.IsTiled"/>, bias not
    /// added); <paramref name="prefetch"/>: the pass that reads the tiles from memory.</summary>
    public static void TiledRows(in MatVecPart part, in Activations a, int n, int o0, int o1, bool prefetch)
    {
        var one = a;
        Q4_0Tiles.Run<Q4_0Tiles.One>(part.Packed, part.OutDim, n, &one, o0, o1, part.Y, 0, prefetch);
    }

    /// <summary>Q8_0 blocks of the activation row exactly as ggml's quantize_row_q8_0 (d = amax / 127 kept in fp16, q = roundf(x / d)); plus 8 · Σq per group of 4.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
                float amax = Vector512.Max(Vector512.Abs(v0), Vector512.Abs(v1)) is var m ? VectorMath.MaxNative(m) : 0;
                float d = amax / 127f;
                var id = Vector512.Create(d != 0 ? 1f / d : 0f);
                dx[b] = RoundToHalf(d);
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
        if (Avx2.IsSupported)
        {
            // 256-bit: the same arithmetic, 8 lanes at a time
            var half = Vector256.Create(0.5f);
            for (; b < blocks; b++)
            {
                float* src = x + b * B;
                var v0 = Vector256.Load(src); var v1 = Vector256.Load(src + 8); var v2 = Vector256.Load(src + 16); var v3 = Vector256.Load(src + 24);
                var m = Avx.Max(Avx.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Avx.Max(Vector256.Abs(v2), Vector256.Abs(v3)));
                float d = VectorMath.MaxNative(m) / 127f;
                var id = Vector256.Create(d != 0 ? 1f / d : 0f);
                dx[b] = RoundToHalf(d);
                var q0 = RoundAway(v0 * id, half); var q1 = RoundAway(v1 * id, half); var q2 = RoundAway(v2 * id, half); var q3 = RoundAway(v3 * id, half);
                Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).Store(qx + b * B);
                // sums of 4: two horizontal adds leave [q0 0-3, q1 0-3, q2 0-3, q3 0-3 | q0 4-7, ...]; one permute orders them
                var h = Avx2.HorizontalAdd(Avx2.HorizontalAdd(q0, q1), Avx2.HorizontalAdd(q2, q3));
                Vector256.ShiftLeft(Avx2.PermuteVar8x32(h, Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7)), 3).Store(sum4x8 + b * 8);
            }
            return;
        }
        if (Simd128.IsSupported)
        {
            // 128-bit (every x86-64 and ARM64): the same arithmetic, 4 lanes at a time
            var half = Vector128.Create(0.5f);
            for (; b < blocks; b++)
            {
                float* src = x + b * B;
                var m = Vector128.Abs(Vector128.Load(src));
                for (int j = 4; j < B; j += 4) m = Vector128.Max(m, Vector128.Abs(Vector128.Load(src + j)));
                float d = Simd128.Max(m) / 127f;
                var id = Vector128.Create(d != 0 ? 1f / d : 0f);
                dx[b] = RoundToHalf(d);
                for (int j = 0; j < B; j += 16)
                {
                    var q0 = RoundAway(Vector128.Load(src + j) * id, half); var q1 = RoundAway(Vector128.Load(src + j + 4) * id, half);
                    var q2 = RoundAway(Vector128.Load(src + j + 8) * id, half); var q3 = RoundAway(Vector128.Load(src + j + 12) * id, half);
                    Vector128.Narrow(Vector128.Narrow(q0, q1), Vector128.Narrow(q2, q3)).Store(qx + b * B + j);
                    int* s = sum4x8 + b * (B / 4) + j / 4;
                    s[0] = 8 * Vector128.Sum(q0); s[1] = 8 * Vector128.Sum(q1); s[2] = 8 * Vector128.Sum(q2); s[3] = 8 * Vector128.Sum(q3);
                }
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
            dx[b] = RoundToHalf(d);   // as ggml's block_q8_0: the scale is stored in fp16
            for (int j = 0; j < B; j++) qx[b * B + j] = (sbyte)MathF.Round(src[j] * id, MidpointRounding.AwayFromZero);
            for (int g = 0; g < B / 4; g++)
            {
                sbyte* q = qx + b * B + g * 4;
                sum4x8[b * (B / 4) + g] = 8 * (q[0] + q[1] + q[2] + q[3]);
            }
        }
    }

    /// <summary>roundf: half away from zero, then truncation.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector256<int> RoundAway(Vector256<float> v, Vector256<float> half) => Avx.ConvertToVector256Int32WithTruncation(v + Vector256.CopySign(half, v));

    /// <summary>roundf: half away from zero, then truncation.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector128<int> RoundAway(Vector128<float> v, Vector128<float> half) => Vector128.ConvertToInt32(v + Vector128.CopySign(half, v));

    /// <summary>(float)(Half)d, without the library's calls where d is in fp16's normal range: the mantissa rounded to 10 bits,
    /// half to even (exactly what the conversion does there).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float RoundToHalf(float d)
    {
        if (!(d >= 6.103515625e-05f && d <= 65504f)) return (float)(Half)d;
        uint u = BitConverter.SingleToUInt32Bits(d);
        return BitConverter.UInt32BitsToSingle((u + 0xFFFu + ((u >> 13) & 1)) & ~0x1FFFu);
    }

    /// <summary>Sums of lanes (0-3), (4-7), (8-11), (12-15).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector128<int> Sum4(Vector512<int> q)
    {
        // Transpose-free: gather lanes k, k+4, k+8, k+12 of each group with permutes and add.
        var a = Avx512F.PermuteVar16x32(q, Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
        var s = a.GetLower() + a.GetUpper();              // (l0+l2, l4+l6...) pairs per group across halves
        return s.GetLower() + s.GetUpper();
    }

    /// <summary>Blocks per Q4_0 nibble load of the narrow kernels (32-byte loads: 2, 16: 1; 512 bits reads tiles).</summary>
    private static readonly int GroupBlocks = Simd256.IsSupported ? 2 : 1;

    /// <summary>Writes per group what the narrow Q4_0 kernels read (<see cref="Activations.Qxp"/>): one sequential stream and
    /// one pointer per activation row. Group g of G blocks, vectors of VB = 16 · G bytes, block k of the group:
    /// [elements 0-15 at 16k | elements 16-31 at VB + 16k | its scale ×4 at 2 VB + 16k].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GroupStream(in Activations a, int blocks)
    {
        int G = GroupBlocks, vb = 16 * G;
        for (int b = 0; b < blocks - blocks % G; b++)
        {
            int k = b % G;
            sbyte* dst = a.Qxp + (b / G) * 3 * vb + 16 * k;
            Vector128.Load(a.Qx + b * B).Store(dst);
            Vector128.Load(a.Qx + b * B + 16).Store(dst + vb);
            Vector128.Create(a.Dx[b]).Store((float*)(dst + 2 * vb));
        }
    }

    /// <summary>Whether <see cref="Rows4"/> takes this type here: Q4_0 at every width, Q8_0 below 512 bits.</summary>
    public static bool HasRows4(WeightType type) =>
        type == WeightType.Q4_0 ? Avx512BW.IsSupported || Simd256.IsSupported || Simd128.IsSupported
        : type == WeightType.Q8_0 && !Avx512BW.IsSupported && (Simd256.IsSupported || Simd128.IsSupported);

    /// <summary>
    /// <see cref="Rows"/> for 4 activation rows at once (batched decoding): each weight row is unpacked once for all 4
    /// and each row's arithmetic is the one-row kernel's, operation for operation, so every result is bit for bit the
    /// one-row result. y_r[o] for r in 0-3 lies at y + r · yStride + o. <paramref name="prefetch"/>: this pass reads
    /// the rows from memory (prefetched ahead as a single row's pass is).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows4(in MatVecPart part, Activations* a, int n, int o0, int o1, float* y, long yStride, bool prefetch)
    {
        int blocks = n / B;
        long rowBytes = PackedQuant.RowBytes(part.Type, n);
        if (!Avx512BW.IsSupported)
        {
            if (Simd256.IsSupported) Rows4<Simd256, Vector256<float>>(part, a, blocks, rowBytes, o0, o1, y, yStride, prefetch);
            else Rows4<Simd128, Vector128<float>>(part, a, blocks, rowBytes, o0, o1, y, yStride, prefetch);
            return;
        }
        if (part.Type != WeightType.Q4_0) throw new ArgumentException($"{part.Type}: no 4-row kernel at 512 bits (HasRows4)");
        Q4_0Tiles.Run<Q4_0Tiles.Four>(part.Packed, part.OutDim, n, a, o0, o1, y, yStride, prefetch);
    }

    /// <summary>Whether <see cref="Rows8"/> takes this type here: Q4_0 in tiles (512 bits).</summary>
    public static bool HasRows8(WeightType type) => type == WeightType.Q4_0 && Q4_0Tiles.IsUsed;

    /// <summary><see cref="Rows4"/> for 8 activation rows: each weight vector unpacked once for all 8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows8(in MatVecPart part, Activations* a, int n, int o0, int o1, float* y, long yStride, bool prefetch)
    {
        if (!HasRows8(part.Type)) throw new ArgumentException($"{part.Type}: no 8-row kernel here (HasRows8)");
        Q4_0Tiles.Run<Q4_0Tiles.Eight>(part.Packed, part.OutDim, n, a, o0, o1, y, yStride, prefetch);
    }

    /// <summary>Whether <see cref="Rows2"/> takes this type here: Q4_0 (at every width).</summary>
    public static bool HasRows2(WeightType type) => type == WeightType.Q4_0 && (Avx512BW.IsSupported || Simd256.IsSupported || Simd128.IsSupported);

    /// <summary><see cref="Rows4"/> for 2 activation rows (what is left of a batch after its fours).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows2(in MatVecPart part, Activations* a, int n, int o0, int o1, float* y, long yStride, bool prefetch)
    {
        if (!HasRows2(part.Type)) throw new ArgumentException($"{part.Type}: no 2-row kernel here (HasRows2)");
        if (Q4_0Tiles.IsUsed) { Q4_0Tiles.Run<Q4_0Tiles.Two>(part.Packed, part.OutDim, n, a, o0, o1, y, yStride, prefetch); return; }
        int blocks = n / B;
        long rowBytes = PackedQuant.RowBytes(part.Type, n);
        byte* end = part.Packed + part.OutDim * rowBytes;
        float* sums = stackalloc float[2];
        for (int o = o0; o < o1; o++)
        {
            byte* row = part.Packed + o * rowBytes;
            if (prefetch) Prefetch.RowAhead(row, rowBytes, end);
            if (Simd256.IsSupported) GroupDotQ4_0Rows<Simd256, Vector256<float>, KQuantMatVecCpu.No>(row, a, blocks, sums);
            else GroupDotQ4_0Rows<Simd128, Vector128<float>, KQuantMatVecCpu.No>(row, a, blocks, sums);
            y[o] = sums[0];
            y[yStride + o] = sums[1];
        }
    }

    /// <summary><see cref="Rows{S, V}"/> for 4 activation rows: their scale products per weight row, then one pass over the quants.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows4<S, V>(in MatVecPart part, Activations* a, int blocks, long rowBytes, int o0, int o1, float* y, long yStride, bool prefetch)
        where S : ISimd<V> where V : struct
    {
        int stride = blocks + 16;
        float[]? heap = blocks > 4096 ? GC.AllocateUninitializedArray<float>(4 * stride, pinned: true) : null;
        float* stack = stackalloc float[heap == null ? 4 * stride : 1];
        float* sc = heap != null ? (float*)Unsafe.AsPointer(ref heap[0]) : stack;
        float* sums = stackalloc float[4];
        int scaleBytes = PackedQuant.ScaleBytes(blocks);
        byte* end = part.Packed + part.OutDim * rowBytes;
        for (int o = o0; o < o1; o++)
        {
            byte* row = part.Packed + o * rowBytes;
            if (prefetch) Prefetch.RowAhead(row, rowBytes, end);
            if (part.Type == WeightType.Q8_0)
            {
                for (int r = 0; r < 4; r++) ScaleProducts<S, V>((ushort*)row, a[r].Dx, blocks, sc + r * stride);
                BlockDotQ8_0x4<S, V>((sbyte*)(row + scaleBytes), a, sc, stride, blocks, sums);
            }
            else GroupDotQ4_0Rows<S, V, KQuantMatVecCpu.Yes>(row, a, blocks, sums);
            for (int r = 0; r < 4; r++) y[r * yStride + o] = sums[r];
        }
    }

    /// <summary>The scalar step of the narrow Q4_0 kernels for one block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float TailBlock(byte* nib, in Activations a, ushort* scales, int b)
    {
        byte* q = nib + b * (B / 2);
        int s = 0;
        for (int k = 0; k < B / 2; k++)
        {
            s += ((q[k] & 0x0F) - 8) * a.Qx[b * B + k];
            s += ((q[k] >> 4) - 8) * a.Qx[b * B + k + B / 2];
        }
        return s * HalfVector.ToSingle(scales[b]) * a.Dx[b];
    }

    /// <summary>
    /// Q8_0 row (<see cref="PackedQuant"/>): a block pair is one 64-byte load; |w| · sign(w)x through vpmaddubsw +
    /// vpmaddwd leaves int32 lanes in groups of 8 per block, scaled by the pair's permuted scale products.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ8_0(byte* row, sbyte* qx, float* dx, int blocks)
    {
        ushort* scales = (ushort*)row;
        sbyte* q = (sbyte*)(row + PackedQuant.ScaleBytes(blocks));
        int b = 0;
        float sum = 0;
        if (Avx512BW.IsSupported)
        {
            var acc = Vector512<float>.Zero;
            var acc2 = Vector512<float>.Zero;
            var ones = Vector512.Create((short)1);
            sbyte* pq = q, px = qx;
            for (; b + 16 <= blocks; b += 16, pq += 16 * B, px += 16 * B)
            {
                var s16 = HalfVector.LoadHalf16(scales + b) * Vector512.Load(dx + b);
                acc = Q8Pair(pq, px, Avx512F.PermuteVar16x32(s16, Pair0), acc, ones);
                acc2 = Q8Pair(pq + 2 * B, px + 2 * B, Avx512F.PermuteVar16x32(s16, Pair1), acc2, ones);
                acc = Q8Pair(pq + 4 * B, px + 4 * B, Avx512F.PermuteVar16x32(s16, Pair2), acc, ones);
                acc2 = Q8Pair(pq + 6 * B, px + 6 * B, Avx512F.PermuteVar16x32(s16, Pair3), acc2, ones);
                acc = Q8Pair(pq + 8 * B, px + 8 * B, Avx512F.PermuteVar16x32(s16, Pair4), acc, ones);
                acc2 = Q8Pair(pq + 10 * B, px + 10 * B, Avx512F.PermuteVar16x32(s16, Pair5), acc2, ones);
                acc = Q8Pair(pq + 12 * B, px + 12 * B, Avx512F.PermuteVar16x32(s16, Pair6), acc, ones);
                acc2 = Q8Pair(pq + 14 * B, px + 14 * B, Avx512F.PermuteVar16x32(s16, Pair7), acc2, ones);
            }
            for (; b + 2 <= blocks; b += 2, pq += 2 * B, px += 2 * B)
            {
                var scale = Vector512.Create(Vector256.Create(HalfVector.ToSingle(scales[b]) * dx[b]), Vector256.Create(HalfVector.ToSingle(scales[b + 1]) * dx[b + 1]));
                acc = Q8Pair(pq, px, scale, acc, ones);
            }
            sum = VectorMath.Sum(acc + acc2);
        }
        for (; b < blocks; b++)
        {
            int s = 0;
            for (int k = 0; k < B; k++) s += q[b * B + k] * qx[b * B + k];
            sum += s * HalfVector.ToSingle(scales[b]) * dx[b];
        }
        return sum;
    }

    private static readonly Vector512<int> Pair0 = PairIndex(0), Pair1 = PairIndex(1), Pair2 = PairIndex(2), Pair3 = PairIndex(3),
        Pair4 = PairIndex(4), Pair5 = PairIndex(5), Pair6 = PairIndex(6), Pair7 = PairIndex(7);

    /// <summary>Lanes 0-7 take scale 2k, lanes 8-15 scale 2k + 1.</summary>
    private static Vector512<int> PairIndex(int k) => Vector512.Create(Vector256.Create(2 * k), Vector256.Create(2 * k + 1));

    /// <summary>One pair of Q8_0 blocks: |w| · sign(w)x through vpmaddubsw + vpmaddwd, scaled and accumulated.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector512<float> Q8Pair(sbyte* q, sbyte* qx, Vector512<float> scale, Vector512<float> acc, Vector512<short> ones)
    {
        var w = Vector512.Load(q);
        var x = Vector512.Load(qx);
        var sx = Vector512.ConditionalSelect(Vector512.LessThan(w, Vector512<sbyte>.Zero), -x, x);
        var p32 = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(Avx512BW.Abs(w), sx), ones);
        return Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(p32), scale, acc);
    }

    /// <summary>The rows of a band at a width below 512 bits: each row's block scale products (fp16 weight scale ·
    /// activation scale) are made a vector at a time into a stack buffer the band reuses, then the row's dot reads them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<S, V>(in MatVecPart part, in Activations a, int blocks, long rowBytes, int o0, int o1) where S : ISimd<V> where V : struct
    {
        float[]? heap = blocks > 4096 ? GC.AllocateUninitializedArray<float>(blocks + 16, pinned: true) : null;
        float* stack = stackalloc float[heap == null ? blocks + 16 : 1];
        float* sc = heap != null ? (float*)Unsafe.AsPointer(ref heap[0]) : stack;
        byte* w = part.Packed;
        int scaleBytes = PackedQuant.ScaleBytes(blocks);
        for (int o = o0; o < o1; o++)
        {
            byte* row = w + o * rowBytes;
            if (part.Type == WeightType.Q8_0)
            {
                ScaleProducts<S, V>((ushort*)row, a.Dx, blocks, sc);
                part.Y[o] = BlockDotQ8_0<S, V>((sbyte*)(row + scaleBytes), a.Qx, sc, blocks);
            }
            else if (o + 1 < o1)
            {
                // two weight rows per pass share the activation loads and the call
                GroupDotQ4_0x2<S, V>(row, row + rowBytes, a, blocks, part.Y + o);
                o++;
            }
            else part.Y[o] = GroupDotQ4_0<S, V>(row, a, blocks);
        }
    }

    /// <summary>sc[b] = fp16 weight scale · activation scale for every block of a row, a vector at a time (the scale area
    /// is padded to 64 bytes and dx by a vector, so whole vectors stay inside both).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void ScaleProducts<S, V>(ushort* scales, float* dx, int blocks, float* sc) where S : ISimd<V> where V : struct
    {
        for (int b = 0; b < blocks; b += S.Floats) S.Store(S.Mul(S.LoadHalf(scales + b), S.Load(dx + b)), sc + b);
    }

    /// <summary>
    /// Q8_0 row at a width of at most one block per vector (256: a block per load; 128: a block in two): |w| · sign(w)x
    /// into int32 lanes, times the block's scale product, two accumulators in turn.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float BlockDotQ8_0<S, V>(sbyte* q, sbyte* qx, float* sc, int blocks) where S : ISimd<V> where V : struct
    {
        V acc0 = S.Zero, acc1 = S.Zero;
        int b = 0;
        for (; b + 2 <= blocks; b += 2)
        {
            acc0 = S.Fma(S.ConvertI32ToF32(BlockQ8<S, V>(q + b * B, qx + b * B)), S.Broadcast(sc[b]), acc0);
            acc1 = S.Fma(S.ConvertI32ToF32(BlockQ8<S, V>(q + b * B + B, qx + b * B + B)), S.Broadcast(sc[b + 1]), acc1);
        }
        if (b < blocks) acc0 = S.Fma(S.ConvertI32ToF32(BlockQ8<S, V>(q + b * B, qx + b * B)), S.Broadcast(sc[b]), acc0);
        return S.Sum(S.Add(acc0, acc1));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static V BlockQ8<S, V>(sbyte* q, sbyte* qx) where S : ISimd<V> where V : struct
    {
        var p = S.DotS8S8(S.LoadBytes(q), S.LoadBytes(qx));
        return S.Floats == 4 ? S.AddI32(p, S.DotS8S8(S.LoadBytes(q + 16), S.LoadBytes(qx + 16))) : p;
    }

    /// <summary>
    /// Q4_0 row (<see cref="PackedQuant"/>, from its scales) at a width below 512 bits: one load holds the nibbles of
    /// G = Floats / 4 blocks (a group), its low nibbles [elements 0-15 of each block] and high nibbles [16-31 of each]
    /// meet the group-ordered activations (<see cref="Activations.Qxp"/>), so no shuffle is needed: the two vpmaddubsw results
    /// add as int16 (|q·x| ≤ 15·127·4 fits) and one vpmaddwd leaves int32 lanes in fours per block. The weight scales are
    /// widened 4 groups (Floats blocks) at a time and spread over their lanes (<see cref="ISimd{V}.Repeat4"/>), times the
    /// activation scales already repeated per lane; the −8 offset joins the lanes once per Floats blocks as weight scale ·
    /// (−dx · 8·Σx) (<see cref="Activations.NegOff"/>). Two accumulators take the groups in turn. Whole groups only; the
    /// last blocks % G go the scalar way.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float GroupDotQ4_0<S, V>(byte* row, in Activations a, int blocks) where S : ISimd<V> where V : struct
    {
        int G = S.Floats / 4;
        ushort* scales = (ushort*)row;
        byte* nib = row + PackedQuant.ScaleBytes(blocks);
        var mask = S.BroadcastByte(0x0F);
        var ones = S.BroadcastI16(1);
        V acc0 = S.Zero, acc1 = S.Zero;
        // pointers advance (no index arithmetic per load): nibbles G · 16 bytes and activations 48 · G bytes per group
        int nb = G * B / 2, xb = 3 * 16 * G;
        byte* pn = nib; sbyte* px = a.Qxp;
        int b = 0;
        for (; b + 4 * G <= blocks; b += 4 * G, pn += 4 * nb, px += 4 * xb)
        {
            var ws = S.LoadHalf(scales + b);
            // Σ (q − 8)·x = Σ q·x − 8·Σx: the second term of these Floats blocks, scaled, into the lanes summed at the end
            acc1 = S.Fma(ws, S.Load(a.NegOff + b), acc1);
            acc0 = Q4Step<S, V>(pn, px, S.Repeat4(ws, 0), mask, ones, acc0);
            acc1 = Q4Step<S, V>(pn + nb, px + xb, S.Repeat4(ws, 1), mask, ones, acc1);
            acc0 = Q4Step<S, V>(pn + 2 * nb, px + 2 * xb, S.Repeat4(ws, 2), mask, ones, acc0);
            acc1 = Q4Step<S, V>(pn + 3 * nb, px + 3 * xb, S.Repeat4(ws, 3), mask, ones, acc1);
        }
        // Floats halves read for G used: the read stays inside the row (scale padding or the quants that follow)
        int rest = b;
        for (; b + G <= blocks; b += G, pn += nb, px += xb) acc0 = Q4Step<S, V>(pn, px, S.Repeat4(S.LoadHalf(scales + b), 0), mask, ones, acc0);
        float sum = S.Sum(S.Add(acc0, acc1));
        for (; rest < b; rest++) sum += HalfVector.ToSingle(scales[rest]) * a.NegOff[rest];
        for (; b < blocks; b++) sum += TailBlock(nib, a, scales, b);
        return sum;
    }

    /// <summary><see cref="GroupDotQ4_0{S, V}"/> of two weight rows against one activation row (y[0], y[1]): each group's
    /// activations loaded once for both, each row's accumulators and sums those of the one-row kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GroupDotQ4_0x2<S, V>(byte* row0, byte* row1, in Activations a, int blocks, float* y) where S : ISimd<V> where V : struct
    {
        int G = S.Floats / 4;
        ushort* scales0 = (ushort*)row0, scales1 = (ushort*)row1;
        int scaleBytes = PackedQuant.ScaleBytes(blocks);
        byte* nib0 = row0 + scaleBytes, nib1 = row1 + scaleBytes;
        var mask = S.BroadcastByte(0x0F);
        var ones = S.BroadcastI16(1);
        V a00 = S.Zero, a01 = S.Zero, a10 = S.Zero, a11 = S.Zero;
        int nb = G * B / 2, xb = 3 * 16 * G;
        byte* p0 = nib0, p1 = nib1; sbyte* px = a.Qxp;
        int b = 0;
        for (; b + 4 * G <= blocks; b += 4 * G, p0 += 4 * nb, p1 += 4 * nb, px += 4 * xb)
        {
            var ws0 = S.LoadHalf(scales0 + b);
            var ws1 = S.LoadHalf(scales1 + b);
            var off = S.Load(a.NegOff + b);
            a01 = S.Fma(ws0, off, a01);
            a11 = S.Fma(ws1, off, a11);
            Q4Step2<S, V>(p0, p1, px, S.Repeat4(ws0, 0), S.Repeat4(ws1, 0), mask, ones, ref a00, ref a10);
            Q4Step2<S, V>(p0 + nb, p1 + nb, px + xb, S.Repeat4(ws0, 1), S.Repeat4(ws1, 1), mask, ones, ref a01, ref a11);
            Q4Step2<S, V>(p0 + 2 * nb, p1 + 2 * nb, px + 2 * xb, S.Repeat4(ws0, 2), S.Repeat4(ws1, 2), mask, ones, ref a00, ref a10);
            Q4Step2<S, V>(p0 + 3 * nb, p1 + 3 * nb, px + 3 * xb, S.Repeat4(ws0, 3), S.Repeat4(ws1, 3), mask, ones, ref a01, ref a11);
        }
        int rest = b;
        for (; b + G <= blocks; b += G, p0 += nb, p1 += nb, px += xb)
            Q4Step2<S, V>(p0, p1, px, S.Repeat4(S.LoadHalf(scales0 + b), 0), S.Repeat4(S.LoadHalf(scales1 + b), 0), mask, ones, ref a00, ref a10);
        float s0 = S.Sum(S.Add(a00, a01)), s1 = S.Sum(S.Add(a10, a11));
        for (; rest < b; rest++)
        {
            s0 += HalfVector.ToSingle(scales0[rest]) * a.NegOff[rest];
            s1 += HalfVector.ToSingle(scales1[rest]) * a.NegOff[rest];
        }
        for (; b < blocks; b++)
        {
            s0 += TailBlock(nib0, a, scales0, b);
            s1 += TailBlock(nib1, a, scales1, b);
        }
        y[0] = s0; y[1] = s1;
    }

    /// <summary>One group of two weight rows (nibbles at <paramref name="p0"/>, <paramref name="p1"/>) against the group's
    /// activations at <paramref name="px"/>, loaded once: <see cref="Q4Step{S, V}"/> for each row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Q4Step2<S, V>(byte* p0, byte* p1, sbyte* px, V wScale0, V wScale1, V mask, V ones, ref V c0, ref V c1) where S : ISimd<V> where V : struct
    {
        int vb = 4 * S.Floats;
        var xl = S.LoadBytes(px);
        var xh = S.LoadBytes(px + vb);
        var dr = S.Load((float*)(px + 2 * vb));
        var (lo, hi) = Nibbles<S, V>(p0, mask);
        c0 = S.Fma(S.ConvertI32ToF32(Q4Dot<S, V>(lo, hi, xl, xh, ones)), S.Mul(wScale0, dr), c0);
        (lo, hi) = Nibbles<S, V>(p1, mask);
        c1 = S.Fma(S.ConvertI32ToF32(Q4Dot<S, V>(lo, hi, xl, xh, ones)), S.Mul(wScale1, dr), c1);
    }

    /// <summary>One group of Q4_0 blocks (nibbles at <paramref name="pn"/>, its part of <see cref="Activations.Qxp"/> at
    /// <paramref name="px"/>): Σ q·x lanes times the scale products (<paramref name="wScale"/>: the weight scales spread over
    /// the lanes), accumulated.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static V Q4Step<S, V>(byte* pn, sbyte* px, V wScale, V mask, V ones, V acc) where S : ISimd<V> where V : struct
    {
        var (lo, hi) = Nibbles<S, V>(pn, mask);
        return Q4Lanes<S, V>(lo, hi, px, wScale, ones, acc);
    }

    /// <summary><see cref="Q4Step{S, V}"/> on nibbles already unpacked.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static V Q4Lanes<S, V>(V lo, V hi, sbyte* p, V wScale, V ones, V acc) where S : ISimd<V> where V : struct
    {
        int vb = 4 * S.Floats;   // the group's low and high quants and lane scales: a vector each
        return S.Fma(S.ConvertI32ToF32(Q4Unpacked<S, V>(lo, hi, p, vb, ones)), S.Mul(wScale, S.Load((float*)(p + 2 * vb))), acc);
    }

    /// <summary><see cref="BlockDotQ8_0{S, V}"/> of one weight row against 4 activation rows (scale products of row r at
    /// sc + r · scStride): each block loaded once, each row's accumulators and sums those of the one-row kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BlockDotQ8_0x4<S, V>(sbyte* q, Activations* a, float* sc, int scStride, int blocks, float* sums) where S : ISimd<V> where V : struct
    {
        sbyte* x0 = a[0].Qx, x1 = a[1].Qx, x2 = a[2].Qx, x3 = a[3].Qx;
        float* s0 = sc, s1 = sc + scStride, s2 = sc + 2 * scStride, s3 = sc + 3 * scStride;
        V a00 = S.Zero, a01 = S.Zero, a10 = S.Zero, a11 = S.Zero, a20 = S.Zero, a21 = S.Zero, a30 = S.Zero, a31 = S.Zero;
        int b = 0;
        for (; b + 2 <= blocks; b += 2)
        {
            Q8Block4<S, V>(q, x0, x1, x2, x3, b, s0, s1, s2, s3, ref a00, ref a10, ref a20, ref a30);
            Q8Block4<S, V>(q, x0, x1, x2, x3, b + 1, s0, s1, s2, s3, ref a01, ref a11, ref a21, ref a31);
        }
        if (b < blocks) Q8Block4<S, V>(q, x0, x1, x2, x3, b, s0, s1, s2, s3, ref a00, ref a10, ref a20, ref a30);
        sums[0] = S.Sum(S.Add(a00, a01)); sums[1] = S.Sum(S.Add(a10, a11));
        sums[2] = S.Sum(S.Add(a20, a21)); sums[3] = S.Sum(S.Add(a30, a31));
    }

    /// <summary>Block b of a Q8_0 row against 4 activation rows: each weight vector loaded once (its |w| shared by the rows'
    /// sign products), each row's <see cref="BlockQ8{S, V}"/> lanes times its scale product, accumulated.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Q8Block4<S, V>(sbyte* q, sbyte* x0, sbyte* x1, sbyte* x2, sbyte* x3, int b, float* s0, float* s1, float* s2, float* s3,
        ref V c0, ref V c1, ref V c2, ref V c3) where S : ISimd<V> where V : struct
    {
        int e = b * B;
        var w = S.LoadBytes(q + e);
        V p0 = S.DotS8S8(w, S.LoadBytes(x0 + e)), p1 = S.DotS8S8(w, S.LoadBytes(x1 + e)), p2 = S.DotS8S8(w, S.LoadBytes(x2 + e)), p3 = S.DotS8S8(w, S.LoadBytes(x3 + e));
        if (S.Floats == 4)
        {
            var w2 = S.LoadBytes(q + e + 16);
            p0 = S.AddI32(p0, S.DotS8S8(w2, S.LoadBytes(x0 + e + 16))); p1 = S.AddI32(p1, S.DotS8S8(w2, S.LoadBytes(x1 + e + 16)));
            p2 = S.AddI32(p2, S.DotS8S8(w2, S.LoadBytes(x2 + e + 16))); p3 = S.AddI32(p3, S.DotS8S8(w2, S.LoadBytes(x3 + e + 16)));
        }
        c0 = S.Fma(S.ConvertI32ToF32(p0), S.Broadcast(s0[b]), c0);
        c1 = S.Fma(S.ConvertI32ToF32(p1), S.Broadcast(s1[b]), c1);
        c2 = S.Fma(S.ConvertI32ToF32(p2), S.Broadcast(s2[b]), c2);
        c3 = S.Fma(S.ConvertI32ToF32(p3), S.Broadcast(s3[b]), c3);
    }

    /// <summary><see cref="GroupDotQ4_0{S, V}"/> of one weight row against 4 activation rows (<see cref="KQuantMatVecCpu.Yes"/>)
    /// or 2: the nibbles unpacked and the weight scales spread once per group for all of them, each row's accumulators and
    /// sums those of the one-row kernel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GroupDotQ4_0Rows<S, V, TFour>(byte* row, Activations* a, int blocks, float* sums)
        where S : ISimd<V> where V : struct where TFour : struct, KQuantMatVecCpu.IFlag
    {
        bool four = TFour.Value;
        int G = S.Floats / 4;
        ushort* scales = (ushort*)row;
        byte* nib = row + PackedQuant.ScaleBytes(blocks);
        var mask = S.BroadcastByte(0x0F);
        var ones = S.BroadcastI16(1);
        V a00 = S.Zero, a01 = S.Zero, a10 = S.Zero, a11 = S.Zero, a20 = S.Zero, a21 = S.Zero, a30 = S.Zero, a31 = S.Zero;
        int nb = G * B / 2, xb = 3 * 16 * G;
        byte* pn = nib;
        sbyte* x0 = a[0].Qxp, x1 = a[1].Qxp, x2 = four ? a[2].Qxp : x0, x3 = four ? a[3].Qxp : x1;
        float* n0 = a[0].NegOff, n1 = a[1].NegOff, n2 = four ? a[2].NegOff : n0, n3 = four ? a[3].NegOff : n1;
        int b = 0;
        for (; b + 4 * G <= blocks; b += 4 * G, pn += 4 * nb, x0 += 4 * xb, x1 += 4 * xb, x2 += 4 * xb, x3 += 4 * xb)
        {
            var ws = S.LoadHalf(scales + b);
            a01 = S.Fma(ws, S.Load(n0 + b), a01); a11 = S.Fma(ws, S.Load(n1 + b), a11);
            if (four) { a21 = S.Fma(ws, S.Load(n2 + b), a21); a31 = S.Fma(ws, S.Load(n3 + b), a31); }
            Q4Step4<S, V, TFour>(pn, x0, x1, x2, x3, S.Repeat4(ws, 0), mask, ones, ref a00, ref a10, ref a20, ref a30);
            Q4Step4<S, V, TFour>(pn + nb, x0 + xb, x1 + xb, x2 + xb, x3 + xb, S.Repeat4(ws, 1), mask, ones, ref a01, ref a11, ref a21, ref a31);
            Q4Step4<S, V, TFour>(pn + 2 * nb, x0 + 2 * xb, x1 + 2 * xb, x2 + 2 * xb, x3 + 2 * xb, S.Repeat4(ws, 2), mask, ones, ref a00, ref a10, ref a20, ref a30);
            Q4Step4<S, V, TFour>(pn + 3 * nb, x0 + 3 * xb, x1 + 3 * xb, x2 + 3 * xb, x3 + 3 * xb, S.Repeat4(ws, 3), mask, ones, ref a01, ref a11, ref a21, ref a31);
        }
        int rest = b;
        for (; b + G <= blocks; b += G, pn += nb, x0 += xb, x1 += xb, x2 += xb, x3 += xb)
            Q4Step4<S, V, TFour>(pn, x0, x1, x2, x3, S.Repeat4(S.LoadHalf(scales + b), 0), mask, ones, ref a00, ref a10, ref a20, ref a30);
        int rows = four ? 4 : 2;
        sums[0] = S.Sum(S.Add(a00, a01)); sums[1] = S.Sum(S.Add(a10, a11));
        if (four) { sums[2] = S.Sum(S.Add(a20, a21)); sums[3] = S.Sum(S.Add(a30, a31)); }
        for (; rest < b; rest++)
            for (int r = 0; r < rows; r++) sums[r] += HalfVector.ToSingle(scales[rest]) * a[r].NegOff[rest];
        for (; b < blocks; b++)
            for (int r = 0; r < rows; r++) sums[r] += TailBlock(nib, a[r], scales, b);
    }

    /// <summary><see cref="Q4Step{S, V}"/> for 4 activation rows, the nibbles unpacked once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Q4Step4<S, V, TFour>(byte* pn, sbyte* x0, sbyte* x1, sbyte* x2, sbyte* x3, V wScale, V mask, V ones,
        ref V c0, ref V c1, ref V c2, ref V c3) where S : ISimd<V> where V : struct where TFour : struct, KQuantMatVecCpu.IFlag
    {
        var (lo, hi) = Nibbles<S, V>(pn, mask);
        c0 = Q4Lanes<S, V>(lo, hi, x0, wScale, ones, c0);
        c1 = Q4Lanes<S, V>(lo, hi, x1, wScale, ones, c1);
        if (!TFour.Value) return;
        c2 = Q4Lanes<S, V>(lo, hi, x2, wScale, ones, c2);
        c3 = Q4Lanes<S, V>(lo, hi, x3, wScale, ones, c3);
    }

    /// <summary>One group's int32 lanes from its unpacked low and high nibbles against group-ordered activations (the high-nibble
    /// activations <paramref name="hi"/> bytes after the low ones).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static V Q4Unpacked<S, V>(V lo, V h, sbyte* qxg, int hi, V ones) where S : ISimd<V> where V : struct =>
        Q4Dot<S, V>(lo, h, S.LoadBytes(qxg), S.LoadBytes(qxg + hi), ones);

    /// <summary>Low and high nibbles against the activations they meet: two vpmaddubsw added as int16, one vpmaddwd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static V Q4Dot<S, V>(V lo, V hi, V xLo, V xHi, V ones) where S : ISimd<V> where V : struct =>
        S.MulAddI16(S.AddI16(S.MulAddU8S8To16(lo, xLo), S.MulAddU8S8To16(hi, xHi)), ones);

    /// <summary>The low and high nibbles of one vector of packed Q4_0 quants.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static (V Lo, V Hi) Nibbles<S, V>(byte* p, V mask) where S : ISimd<V> where V : struct
    {
        var v = S.LoadBytes(p);
        return (S.AndBytes(v, mask), S.AndBytes(S.ShiftRight16(v, 4), mask));
    }

}

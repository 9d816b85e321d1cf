using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KernelEngine.Kernels.Quant;
using KernelEngine.Kernels.Simd;

namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// Decode matrix-vector product for the K-quant super-blocks (Q4_K, Q5_K, Q6_K), read in place in ggml's layout: the
/// activation row is quantized once per token to 8 bits per 256 (one scale per super-block, as ggml's Q8_K, with int
/// sums per 16 and 32), so a whole super-block is integer arithmetic: unsigned quants × signed activations through
/// vpmaddubsw + vpmaddwd into int32 lanes of four, times the 6- or 8-bit sub-block scale, summed; the mins (Q4_K, Q5_K)
/// and Q6_K's −32 offset come from the activation sums. AVX-512BW path; a scalar path elsewhere.
/// Nibble order: a 64-byte load of Q4_K/Q5_K quants holds elements [0-31 | 64-95] in its low nibbles and [32-63 | 96-127]
/// in its high nibbles, so the activations are kept in that order too (<see cref="Activations.QxNib"/>).
/// </summary>
internal static unsafe class KQuantMatVecCpu
{
    private const int QK = KQuants.SuperBlock;

    public static bool Handles(WeightType type) => type is WeightType.Q4_K or WeightType.Q5_K or WeightType.Q6_K;

    /// <summary>The activation row quantized once per token; valid until the same thread prepares again.</summary>
    public struct Activations
    {
        public sbyte* Qx;       // (n) natural order (Q6_K)
        public sbyte* QxNib;    // (n) per 128: [x0-31, x64-95, x32-63, x96-127] (Q4_K, Q5_K nibble order)
        public float* Dx;       // (n / 256) scales
        public short* Sum16;    // (n / 16) Σ qx per 16 (|Σ| ≤ 2032)
        public short* Sum32;    // (n / 32) Σ qx per 32
    }

    [ThreadStatic] private static ScratchSlots t_slots;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static Activations Prepare(float* x, int n, int slot = 0)
    {
        if (n % QK != 0) throw new ArgumentException($"row length {n} is not a multiple of {QK}");
        // the kernels read the lane masks' address as a constant: their class must be initialized before they compile
        if (LaneMasks.I16 == null || !s_constantsReady) throw new InvalidOperationException("kernel constants");
        byte* buf = t_slots.Get(slot, 2 * n + 4 * (n / QK) + 2 * (n / 16) + 2 * (n / 32) + 256);
        var a = new Activations
        {
            Qx = (sbyte*)buf, QxNib = (sbyte*)(buf + n), Dx = (float*)(buf + 2 * n),
        };
        a.Sum16 = (short*)(a.Dx + n / QK);
        a.Sum32 = a.Sum16 + n / 16;
        for (int b = 0; b < n / QK; b++)
        {
            float* src = x + b * QK;
            if (Avx2.IsSupported) { QuantizeSuperBlockAvx2(src, a, b); continue; }
            float amax = 0;
            for (int j = 0; j < QK; j++) amax = MathF.Max(amax, MathF.Abs(src[j]));
            float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
            a.Dx[b] = d;
            sbyte* q = a.Qx + b * QK;
            for (int j = 0; j < QK; j++) q[j] = (sbyte)KQuants.NearestInt(src[j] * id);
            for (int g = 0; g < QK / 16; g++)
            {
                int s = 0;
                for (int j = 0; j < 16; j++) s += q[16 * g + j];
                a.Sum16[b * 16 + g] = (short)s;
            }
            for (int g = 0; g < QK / 32; g++) a.Sum32[b * 8 + g] = (short)(a.Sum16[b * 16 + 2 * g] + a.Sum16[b * 16 + 2 * g + 1]);
            sbyte* nib = a.QxNib + b * QK;
            for (int h = 0; h < 2; h++)
            {
                sbyte* src8 = q + 128 * h, dst = nib + 128 * h;
                Buffer.MemoryCopy(src8, dst, 32, 32);
                Buffer.MemoryCopy(src8 + 64, dst + 32, 32, 32);
                Buffer.MemoryCopy(src8 + 32, dst + 64, 32, 32);
                Buffer.MemoryCopy(src8 + 96, dst + 96, 32, 32);
            }
        }
        return a;
    }

    /// <summary><see cref="Prepare"/>'s work for super-block b, 8 lanes at a time: the same values (cvtps2dq rounds half to
    /// even, as ggml's nearest_int does; the sums are integers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QuantizeSuperBlockAvx2(float* src, in Activations a, int b)
    {
        var m = Vector256<float>.Zero;
        for (int j = 0; j < QK; j += 8) m = Avx.Max(m, Vector256.Abs(Vector256.Load(src + j)));
        float amax = VectorMath.MaxNative(m);
        float d = amax / 127f, id = d != 0 ? 1f / d : 0f;
        a.Dx[b] = d;
        var vid = Vector256.Create(id);
        sbyte* q = a.Qx + b * QK;
        for (int j = 0; j < QK; j += 32)
        {
            var q0 = Avx.ConvertToVector256Int32(Vector256.Load(src + j) * vid);
            var q1 = Avx.ConvertToVector256Int32(Vector256.Load(src + j + 8) * vid);
            var q2 = Avx.ConvertToVector256Int32(Vector256.Load(src + j + 16) * vid);
            var q3 = Avx.ConvertToVector256Int32(Vector256.Load(src + j + 24) * vid);
            Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).Store(q + j);
            // the two 16-element sums of these 32: hadd twice leaves [s0 0-3, s1 0-3, ..| s0 4-7, s1 4-7, ..]
            var h = Avx2.HorizontalAdd(q0 + q1, q2 + q3);
            h = Avx2.HorizontalAdd(h, h);
            int s0 = h.GetElement(0) + h.GetElement(4), s1 = h.GetElement(1) + h.GetElement(5);
            a.Sum16[b * 16 + j / 16] = (short)s0;
            a.Sum16[b * 16 + j / 16 + 1] = (short)s1;
            a.Sum32[b * 8 + j / 32] = (short)(s0 + s1);
        }
        sbyte* nib = a.QxNib + b * QK;
        for (int h = 0; h < 2; h++)
        {
            sbyte* src8 = q + 128 * h, dst = nib + 128 * h;
            Vector256.Load(src8).Store(dst);
            Vector256.Load(src8 + 64).Store(dst + 32);
            Vector256.Load(src8 + 32).Store(dst + 64);
            Vector256.Load(src8 + 96).Store(dst + 96);
        }
    }

    /// <summary>y[o] = W[o] · x for o in [o0, o1) of one K-quant matrix (bias not added).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(in MatVecPart part, in Activations a, int n, int o0, int o1)
    {
        long rowBytes = part.Type.RowBytes(n);
        int blocks = n / QK;
        byte* w = part.W;
        switch (part.Type)
        {
            case WeightType.Q4_K: for (int o = o0; o < o1; o++) part.Y[o] = DotQ4K<No>(w + o * rowBytes, a, blocks); break;
            case WeightType.Q5_K: for (int o = o0; o < o1; o++) part.Y[o] = DotQ4K<Yes>(w + o * rowBytes, a, blocks); break;
            default: for (int o = o0; o < o1; o++) part.Y[o] = DotQ6K(w + o * rowBytes, a, blocks); break;
        }
    }

    /// <summary>Whether <see cref="Rows4"/> takes this type here: the K-quants below 512 bits.</summary>
    public static bool HasRows4(WeightType type) => Handles(type) && !Avx512BW.IsSupported && (Simd256.IsSupported || Simd128.IsSupported);

    /// <summary>
    /// <see cref="Rows"/> for 4 activation rows at once (batched decoding): each super-block's quants are unpacked and its
    /// scales spread once for all 4, and each row's arithmetic is the one-row kernel's, operation for operation, so every
    /// result is bit for bit the one-row result. y_r[o] for r in 0-3 lies at y + r · yStride + o; <paramref name="prefetch"/>:
    /// this pass reads the rows from memory (prefetched ahead as a single row's pass is).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows4(in MatVecPart part, Activations* a, int n, int o0, int o1, float* y, long yStride, bool prefetch)
    {
        if (!HasRows4(part.Type)) throw new ArgumentException($"{part.Type}: no 4-row kernel here (HasRows4)");
        Rows4<Yes>(part, a, n, o0, o1, y, yStride, prefetch);
    }

    /// <summary><see cref="Rows4"/> for 2 activation rows (what is left of a batch after its fours; <see cref="HasRows4"/> says where).</summary>
    public static void Rows2(in MatVecPart part, Activations* a, int n, int o0, int o1, float* y, long yStride, bool prefetch)
    {
        if (!HasRows4(part.Type)) throw new ArgumentException($"{part.Type}: no 2-row kernel here (HasRows4)");
        Rows4<No>(part, a, n, o0, o1, y, yStride, prefetch);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows4<TFour>(in MatVecPart part, Activations* a, int n, int o0, int o1, float* y, long yStride, bool prefetch) where TFour : struct, IFlag
    {
        int rows = TFour.Value ? 4 : 2;
        long rowBytes = part.Type.RowBytes(n);
        int blocks = n / QK;
        float* sums = stackalloc float[4];
        byte* end = part.W + part.OutDim * rowBytes;
        for (int o = o0; o < o1; o++)
        {
            byte* row = part.W + o * rowBytes;
            if (prefetch) Prefetch.RowAhead(row, rowBytes, end);
            bool wide = Simd256.IsSupported;
            switch (part.Type)
            {
                case WeightType.Q4_K when wide: SuperBlockDotQ4Kx4<Simd256, Vector256<float>, No, TFour>(row, a, blocks, sums); break;
                case WeightType.Q5_K when wide: SuperBlockDotQ4Kx4<Simd256, Vector256<float>, Yes, TFour>(row, a, blocks, sums); break;
                case WeightType.Q6_K when wide: SuperBlockDotQ6Kx4<Simd256, Vector256<float>, TFour>(row, a, blocks, sums); break;
                case WeightType.Q4_K: SuperBlockDotQ4Kx4<Simd128, Vector128<float>, No, TFour>(row, a, blocks, sums); break;
                case WeightType.Q5_K: SuperBlockDotQ4Kx4<Simd128, Vector128<float>, Yes, TFour>(row, a, blocks, sums); break;
                default: SuperBlockDotQ6Kx4<Simd128, Vector128<float>, TFour>(row, a, blocks, sums); break;
            }
            for (int r = 0; r < rows; r++) y[r * yStride + o] = sums[r];
        }
    }

    /// <summary>Read in <see cref="Prepare"/> so that this class's vector constants are initialized before the kernels
    /// compile (the JIT then folds them; an uninitialized class leaves an init check and a load in the loop).</summary>
    private static readonly bool s_constantsReady = true;

    // vpermw indices that spread 8 (or 16) int16 scales over the 32 int16 lanes of one vpmaddubsw result.
    private static readonly Vector512<short> K02 = Spread(0, 2, 16), K13 = Spread(1, 3, 16), K46 = Spread(4, 6, 16), K57 = Spread(5, 7, 16);
    private static readonly Vector512<short> G0 = Spread4(0), G4 = Spread4(4), G8 = Spread4(8), G12 = Spread4(12);

    private static Vector512<short> Spread(int a, int b, int each)
    {
        var v = new short[32];
        for (int i = 0; i < 32; i++) v[i] = (short)(i < each ? a : b);
        return Vector512.Create(v);
    }

    private static Vector512<short> Spread4(int g)
    {
        var v = new short[32];
        for (int i = 0; i < 32; i++) v[i] = (short)(g + i / 8);
        return Vector512.Create(v);
    }

    /// <summary>A compile-time flag: the JIT specializes a generic method per struct argument and drops the dead branch.</summary>
    public interface IFlag { static abstract bool Value { get; } }
    public readonly struct Yes : IFlag { public static bool Value => true; }
    public readonly struct No : IFlag { public static bool Value => false; }

    /// <summary>One Q4_K row against the activations (with <see cref="Yes"/>: Q5_K, whose fifth bits come from qh).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotQ4K<TFive>(byte* row, in Activations a, int blocks) where TFive : struct, IFlag
    {
        bool fifthBits = TFive.Value;
        int blockBytes = fifthBits ? 176 : 144;
        if (Avx512BW.IsSupported)
        {
            var accF = Vector512<float>.Zero;
            var minAcc = Vector128<float>.Zero;
            var mask = Vector512.Create((byte)0x0F);
            var one = Vector512.Create((byte)1);
            Vector512<short> k02 = K02, k13 = K13, k46 = K46, k57 = K57;
            float* dxs = a.Dx; short* sum32 = a.Sum32; sbyte* qxNib = a.QxNib;
            for (int b = 0; b < blocks; b++)
            {
                byte* blk = row + b * blockBytes;
                // d and dmin (fp16) times the activation scale, in one vector: lane 0 d·dx, lane 1 dmin·dx
                var ddm = HalfVector.ToSingle2(Unsafe.ReadUnaligned<uint>(blk)) * Vector128.Create(dxs[b]);
                var (scBytes, mBytes) = KQuants.ScalesMins(blk + 4);
                var sc = Sse41.ConvertToVector128Int16(Vector128.CreateScalar(scBytes).AsByte()).ToVector256Unsafe().ToVector512Unsafe();
                var mins = Sse41.ConvertToVector128Int16(Vector128.CreateScalar(mBytes).AsByte());
                // Σ_j min_j · Σx_j as 4 int32 partial sums, accumulated in float with the block's dmin · dx
                minAcc = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(Sse2.MultiplyAddAdjacent(mins, Vector128.Load(sum32 + b * 8))),
                    Vector128.Shuffle(ddm, Vector128.Create(1, 1, 1, 1)), minAcc);
                byte* qs = blk + (fifthBits ? 48 : 16);
                sbyte* x = qxNib + b * QK;
                var qhv = fifthBits ? Vector512.Create(Vector256.Load(blk + 16), Vector256.Load(blk + 16)).AsUInt16() : default;
                // Two 64-byte loads of nibbles: low nibbles [0-31 | 64-95] and high [32-63 | 96-127] of each 128.
                var raw0 = Vector512.Load(qs);
                var raw1 = Vector512.Load(qs + 64);
                var lo0 = raw0 & mask;
                var hi0 = Vector512.ShiftRightLogical(raw0.AsUInt16(), 4).AsByte() & mask;
                var lo1 = raw1 & mask;
                var hi1 = Vector512.ShiftRightLogical(raw1.AsUInt16(), 4).AsByte() & mask;
                if (fifthBits)
                {
                    // element 64k + l: bit 2k of qh[l]; element 64k + 32 + l: bit 2k + 1
                    lo0 |= FifthBit(qhv, 0, 2, one);
                    hi0 |= FifthBit(qhv, 1, 3, one);
                    lo1 |= FifthBit(qhv, 4, 6, one);
                    hi1 |= FifthBit(qhv, 5, 7, one);
                }
                // int16 pairs times their sub-block's scale, summed to int32: one vpmaddwd each
                var scs = sc.AsInt16();
                var acc = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(lo0, Vector512.Load(x)), Avx512BW.PermuteVar32x16(scs, k02))
                        + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(hi0, Vector512.Load(x + 64)), Avx512BW.PermuteVar32x16(scs, k13))
                        + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(lo1, Vector512.Load(x + 128)), Avx512BW.PermuteVar32x16(scs, k46))
                        + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(hi1, Vector512.Load(x + 192)), Avx512BW.PermuteVar32x16(scs, k57));
                accF = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(acc), Vector512.Create(ddm.ToScalar()), accF);
            }
            var h4 = accF.GetLower() + accF.GetUpper();
            var q4 = h4.GetLower() + h4.GetUpper() - minAcc;
            q4 += Vector128.Shuffle(q4, Vector128.Create(2, 3, 0, 1));
            q4 += Vector128.Shuffle(q4, Vector128.Create(1, 0, 3, 2));
            return q4.ToScalar();
        }
        if (Simd256.IsSupported) return SuperBlockDotQ4K<Simd256, Vector256<float>, TFive>(row, a, blocks);
        if (Simd128.IsSupported) return SuperBlockDotQ4K<Simd128, Vector128<float>, TFive>(row, a, blocks);
        float sum = 0;
        for (int b = 0; b < blocks; b++)
        {
            byte* blk = row + b * blockBytes;
            float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk)), dmin = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk + 2));
            var (scBytes, mBytes) = KQuants.ScalesMins(blk + 4);
            byte* qh = blk + 16;
            byte* qs = blk + (fifthBits ? 48 : 16);
            int isum = 0, msum = 0;
            for (int j = 0; j < 8; j++)
            {
                // sub-block j: elements 32j..32j+31 = group g = j / 2 of 64, low (j even) or high (j odd) nibbles
                int g = j / 2, s = 0;
                byte* q = qs + 32 * g;
                sbyte* xs = a.Qx + b * QK + 32 * j;
                for (int l = 0; l < 32; l++)
                {
                    int v = (j & 1) == 0 ? q[l] & 0xF : q[l] >> 4;
                    if (fifthBits && (qh[l] & (1 << j)) != 0) v += 16;
                    s += v * xs[l];
                }
                isum += (int)((scBytes >> (8 * j)) & 0xFF) * s;
                msum += (int)((mBytes >> (8 * j)) & 0xFF) * a.Sum32[b * 8 + j];
            }
            sum += a.Dx[b] * (d * isum - dmin * msum);
        }
        return sum;
    }

    /// <summary>Bit (shiftA | shiftB per 256-bit half) of each byte of [qh | qh], moved to bit 4 (the fifth bit of a nibble).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector512<byte> FifthBit(Vector512<ushort> qhv, ushort shiftA, ushort shiftB, Vector512<byte> one) =>
        Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(qhv, Vector512.Create(Vector256.Create(shiftA), Vector256.Create(shiftB))).AsByte() & one).AsUInt16(), 4).AsByte();

    /// <summary>One Q6_K row: unsigned 6-bit quants × activations per 16, scaled by the int8 sub-block scales, less 32·Σx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ6K(byte* row, in Activations a, int blocks)
    {
        if (Avx512BW.IsSupported)
        {
            var accF = Vector512<float>.Zero;
            var mask = Vector512.Create((byte)0x0F);
            var three = Vector512.Create((byte)3);
            var shLo = Vector512.Create(Vector256.Create((ushort)0), Vector256.Create((ushort)2));
            var shHi = Vector512.Create(Vector256.Create((ushort)4), Vector256.Create((ushort)6));
            for (int b = 0; b < blocks; b++)
            {
                byte* blk = row + b * 210;
                byte* ql = blk, qh = blk + 128;
                float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk + 208));
                sbyte* x = a.Qx + b * QK;
                var sc16 = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(blk + 192)));
                var sc = sc16.ToVector512Unsafe();
                // 32 · Σ sc_g · Σx_g, subtracted from the first 8 int32 lanes
                var off = Avx2.MultiplyAddAdjacent(sc16, Vector256.Load(a.Sum16 + b * 16));
                var acc = Vector512.Create(Vector256.ShiftLeft(off, 5), Vector256<int>.Zero);
                acc = Vector512<int>.Zero - acc;
                for (int h = 0; h < 2; h++)
                {
                    var raw = Vector512.Load(ql + 64 * h);
                    var qhv = Vector512.Create(Vector256.Load(qh + 32 * h), Vector256.Load(qh + 32 * h)).AsUInt16();
                    // low nibbles: elements [0-31 | 32-63] with qh bits (0-1 | 2-3); high: [64-95 | 96-127] with bits (4-5 | 6-7)
                    var lo = (raw & mask) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(qhv, shLo).AsByte() & three).AsUInt16(), 4).AsByte();
                    var hi = (Vector512.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(qhv, shHi).AsByte() & three).AsUInt16(), 4).AsByte();
                    var pLo = Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load(x + 128 * h));
                    var pHi = Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load(x + 128 * h + 64));
                    acc += Avx512BW.MultiplyAddAdjacent(pLo, Avx512BW.PermuteVar32x16(sc, h == 0 ? G0 : G8))
                         + Avx512BW.MultiplyAddAdjacent(pHi, Avx512BW.PermuteVar32x16(sc, h == 0 ? G4 : G12));
                }
                accF = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(acc), Vector512.Create(d * a.Dx[b]), accF);
            }
            return VectorMath.Sum(accF);
        }
        if (Simd256.IsSupported) return SuperBlockDotQ6K<Simd256, Vector256<float>>(row, a, blocks);
        if (Simd128.IsSupported) return SuperBlockDotQ6K<Simd128, Vector128<float>>(row, a, blocks);
        float sum = 0;
        for (int b = 0; b < blocks; b++)
        {
            byte* blk = row + b * 210;
            byte* ql = blk, qh = blk + 128;
            sbyte* sc = (sbyte*)(blk + 192);
            float d = KernelEngine.Kernels.MatMul.HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk + 208));
            sbyte* x = a.Qx + b * QK;
            int isum = 0;
            for (int h = 0; h < 2; h++)
                for (int l = 0; l < 32; l++)
                {
                    byte* q = ql + 64 * h; byte hb = qh[32 * h + l];
                    sbyte* xs = x + 128 * h;
                    int q1 = (q[l] & 0xF) | ((hb & 3) << 4), q2 = (q[l + 32] & 0xF) | (((hb >> 2) & 3) << 4);
                    int q3 = (q[l] >> 4) | (((hb >> 4) & 3) << 4), q4 = (q[l + 32] >> 4) | (((hb >> 6) & 3) << 4);
                    int g = 8 * h + l / 16;
                    isum += sc[g] * q1 * xs[l] + sc[g + 2] * q2 * xs[l + 32] + sc[g + 4] * q3 * xs[l + 64] + sc[g + 6] * q4 * xs[l + 96];
                }
            int off = 0;
            for (int g = 0; g < 16; g++) off += sc[g] * a.Sum16[b * 16 + g];
            sum += a.Dx[b] * d * (isum - 32 * off);
        }
        return sum;
    }

    /// <summary>
    /// Q4_K / Q5_K row at a width of at most 32 bytes per vector (llama.cpp's AVX2 scheme): a load of quants holds one
    /// 64-element group's low nibbles (elements 64g + l) and high nibbles (64g + 32 + l), so the activations stay in natural
    /// order and each sub-block's 6-bit scale is a broadcast; unsigned quants × activations → int16 pairs (vpmaddubsw),
    /// × scale → int32 (vpmaddwd), one float FMA per super-block; the mins come from the activation sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float SuperBlockDotQ4K<S, V, TFive>(byte* row, in Activations a, int blocks) where S : ISimd<V> where V : struct where TFive : struct, IFlag
    {
        bool fifthBits = TFive.Value;
        int blockBytes = fifthBits ? 176 : 144;
        var mask = S.BroadcastByte(0x0F);
        var one = S.BroadcastByte(1);
        V accF = S.Zero;
        var minAcc = Vector128<float>.Zero;   // Σ dmin · min_j · Σx_j, 4 lanes (no horizontal sum per super-block)
        for (int b = 0; b < blocks; b++)
        {
            byte* blk = row + b * blockBytes;
            float dx = a.Dx[b], d, dmin;
            if (Sse41.IsSupported)
            {
                var ddm = HalfVector.ToSingle2(Unsafe.ReadUnaligned<uint>(blk)) * Vector128.Create(dx);
                d = ddm.ToScalar(); dmin = ddm.GetElement(1);
            }
            else
            {
                d = HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk)) * dx; dmin = HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk + 2)) * dx;
            }
            var (scBytes, mBytes) = KQuants.ScalesMins(blk + 4);
            // the 8 sub-block scales and mins as int16 lanes; Σ min_j · Σx_j in one pmaddwd
            var sc8 = Vector128.WidenLower(Vector128.CreateScalar(scBytes).AsByte()).AsInt16();
            var m8 = Vector128.WidenLower(Vector128.CreateScalar(mBytes).AsByte()).AsInt16();
            minAcc += Vector128.ConvertToSingle(Simd128.MulAddI16(m8.AsSingle(), Vector128.Load(a.Sum32 + b * 8).AsSingle()).AsInt32()) * Vector128.Create(dmin);
            byte* qh = blk + 16;
            byte* qs = blk + (fifthBits ? 48 : 16);
            sbyte* x = a.Qx + b * QK;
            // the sub-block pairs unrolled (constant lane masks); the scales spread over the 128-bit lanes once
            var spread = S.SpreadI16(sc8);
            V acc = Q4KPair<S, V, TFive>(qs, qh, x, 0, spread, mask, one, S.Zero);
            acc = Q4KPair<S, V, TFive>(qs, qh, x, 1, spread, mask, one, acc);
            acc = Q4KPair<S, V, TFive>(qs, qh, x, 2, spread, mask, one, acc);
            acc = Q4KPair<S, V, TFive>(qs, qh, x, 3, spread, mask, one, acc);
            accF = S.Fma(S.ConvertI32ToF32(acc), S.Broadcast(d), accF);
        }
        return S.Sum(accF) - Vector128.Sum(minAcc);
    }

    /// <summary><see cref="SuperBlockDotQ4K{S, V, TFive}"/> of one weight row against 4 activation rows (<typeparamref name="TFour"/>
    /// <see cref="Yes"/>) or 2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SuperBlockDotQ4Kx4<S, V, TFive, TFour>(byte* row, Activations* a, int blocks, float* sums)
        where S : ISimd<V> where V : struct where TFive : struct, IFlag where TFour : struct, IFlag
    {
        bool four = TFour.Value;
        Activations* a2 = a + (four ? 2 : 0);   // two rows: rows 2 and 3 alias 0 and 1 and are neither computed nor stored
        bool fifthBits = TFive.Value;
        int blockBytes = fifthBits ? 176 : 144;
        var mask = S.BroadcastByte(0x0F);
        var one = S.BroadcastByte(1);
        V f0 = S.Zero, f1 = S.Zero, f2 = S.Zero, f3 = S.Zero;
        Vector128<float> m0 = default, m1 = default, m2 = default, m3 = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* blk = row + b * blockBytes;
            Vector128<float> dd0, dd1, dd2, dd3;   // each row's (d, dmin) · dx, as the one-row kernel makes them
            if (Sse41.IsSupported)
            {
                var ddm = HalfVector.ToSingle2(Unsafe.ReadUnaligned<uint>(blk));
                dd0 = ddm * Vector128.Create(a[0].Dx[b]); dd1 = ddm * Vector128.Create(a[1].Dx[b]);
                dd2 = four ? ddm * Vector128.Create(a2[0].Dx[b]) : dd0; dd3 = four ? ddm * Vector128.Create(a2[1].Dx[b]) : dd1;
            }
            else
            {
                float d = HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk)), dm = HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk + 2));
                dd0 = Vector128.Create(d * a[0].Dx[b], dm * a[0].Dx[b], 0, 0); dd1 = Vector128.Create(d * a[1].Dx[b], dm * a[1].Dx[b], 0, 0);
                dd2 = Vector128.Create(d * a2[0].Dx[b], dm * a2[0].Dx[b], 0, 0); dd3 = Vector128.Create(d * a2[1].Dx[b], dm * a2[1].Dx[b], 0, 0);
            }
            var (scBytes, mBytes) = KQuants.ScalesMins(blk + 4);
            var sc8 = Vector128.WidenLower(Vector128.CreateScalar(scBytes).AsByte()).AsInt16();
            var m8 = Vector128.WidenLower(Vector128.CreateScalar(mBytes).AsByte()).AsInt16().AsSingle();
            m0 += Vector128.ConvertToSingle(Simd128.MulAddI16(m8, Vector128.Load(a[0].Sum32 + b * 8).AsSingle()).AsInt32()) * Vector128.Create(dd0.GetElement(1));
            m1 += Vector128.ConvertToSingle(Simd128.MulAddI16(m8, Vector128.Load(a[1].Sum32 + b * 8).AsSingle()).AsInt32()) * Vector128.Create(dd1.GetElement(1));
            if (four)
            {
                m2 += Vector128.ConvertToSingle(Simd128.MulAddI16(m8, Vector128.Load(a2[0].Sum32 + b * 8).AsSingle()).AsInt32()) * Vector128.Create(dd2.GetElement(1));
                m3 += Vector128.ConvertToSingle(Simd128.MulAddI16(m8, Vector128.Load(a2[1].Sum32 + b * 8).AsSingle()).AsInt32()) * Vector128.Create(dd3.GetElement(1));
            }
            byte* qh = blk + 16;
            byte* qs = blk + (fifthBits ? 48 : 16);
            sbyte* x0 = a[0].Qx + b * QK, x1 = a[1].Qx + b * QK, x2 = a2[0].Qx + b * QK, x3 = a2[1].Qx + b * QK;
            var spread = S.SpreadI16(sc8);
            V c0 = S.Zero, c1 = S.Zero, c2 = S.Zero, c3 = S.Zero;
            Q4KPair4<S, V, TFive, TFour>(qs, qh, x0, x1, x2, x3, 0, spread, mask, one, ref c0, ref c1, ref c2, ref c3);
            Q4KPair4<S, V, TFive, TFour>(qs, qh, x0, x1, x2, x3, 1, spread, mask, one, ref c0, ref c1, ref c2, ref c3);
            Q4KPair4<S, V, TFive, TFour>(qs, qh, x0, x1, x2, x3, 2, spread, mask, one, ref c0, ref c1, ref c2, ref c3);
            Q4KPair4<S, V, TFive, TFour>(qs, qh, x0, x1, x2, x3, 3, spread, mask, one, ref c0, ref c1, ref c2, ref c3);
            f0 = S.Fma(S.ConvertI32ToF32(c0), S.Broadcast(dd0.ToScalar()), f0);
            f1 = S.Fma(S.ConvertI32ToF32(c1), S.Broadcast(dd1.ToScalar()), f1);
            if (!four) continue;
            f2 = S.Fma(S.ConvertI32ToF32(c2), S.Broadcast(dd2.ToScalar()), f2);
            f3 = S.Fma(S.ConvertI32ToF32(c3), S.Broadcast(dd3.ToScalar()), f3);
        }
        sums[0] = S.Sum(f0) - Vector128.Sum(m0); sums[1] = S.Sum(f1) - Vector128.Sum(m1);
        if (four) { sums[2] = S.Sum(f2) - Vector128.Sum(m2); sums[3] = S.Sum(f3) - Vector128.Sum(m3); }
    }

    /// <summary><see cref="Q4KPair{S, V, TFive}"/> for 4 activation rows: the quants unpacked and the scales picked once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Q4KPair4<S, V, TFive, TFour>(byte* qs, byte* qh, sbyte* x0, sbyte* x1, sbyte* x2, sbyte* x3, int g, V spread, V mask, V one,
        ref V c0, ref V c1, ref V c2, ref V c3) where S : ISimd<V> where V : struct where TFive : struct, IFlag where TFour : struct, IFlag
    {
        var sc0 = S.LaneI16Spread(spread, 2 * g);
        var sc1 = S.LaneI16Spread(spread, 2 * g + 1);
        Q4KStep4<S, V, TFive, TFour>(qs, qh, x0, x1, x2, x3, g, 0, sc0, sc1, mask, one, ref c0, ref c1, ref c2, ref c3);
        if (S.Floats == 4) Q4KStep4<S, V, TFive, TFour>(qs, qh, x0, x1, x2, x3, g, 16, sc0, sc1, mask, one, ref c0, ref c1, ref c2, ref c3);
    }

    /// <summary>One vector (bytes k..) of sub-block pair g for 4 activation rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Q4KStep4<S, V, TFive, TFour>(byte* qs, byte* qh, sbyte* x0, sbyte* x1, sbyte* x2, sbyte* x3, int g, int k, V sc0, V sc1, V mask, V one,
        ref V c0, ref V c1, ref V c2, ref V c3) where S : ISimd<V> where V : struct where TFive : struct, IFlag where TFour : struct, IFlag
    {
        var (lo, hi) = Q4KNibbles<S, V, TFive>(qs + 32 * g + k, qh + k, g, mask, one);
        int e = 64 * g + k;
        c0 = S.DotAddI16(S.DotAddI16(c0, S.MulAddU8S8To16(lo, S.LoadBytes(x0 + e)), sc0), S.MulAddU8S8To16(hi, S.LoadBytes(x0 + e + 32)), sc1);
        c1 = S.DotAddI16(S.DotAddI16(c1, S.MulAddU8S8To16(lo, S.LoadBytes(x1 + e)), sc0), S.MulAddU8S8To16(hi, S.LoadBytes(x1 + e + 32)), sc1);
        if (!TFour.Value) return;
        c2 = S.DotAddI16(S.DotAddI16(c2, S.MulAddU8S8To16(lo, S.LoadBytes(x2 + e)), sc0), S.MulAddU8S8To16(hi, S.LoadBytes(x2 + e + 32)), sc1);
        c3 = S.DotAddI16(S.DotAddI16(c3, S.MulAddU8S8To16(lo, S.LoadBytes(x3 + e)), sc0), S.MulAddU8S8To16(hi, S.LoadBytes(x3 + e + 32)), sc1);
    }

    /// <summary>The low (elements 64g + l) and high (64g + 32 + l) quants of one vector of sub-block pair g, fifth bits
    /// (Q5_K) included.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static (V Lo, V Hi) Q4KNibbles<S, V, TFive>(byte* qs, byte* qh, int g, V mask, V one) where S : ISimd<V> where V : struct where TFive : struct, IFlag
    {
        var raw = S.LoadBytes(qs);
        var lo = S.AndBytes(raw, mask);
        var hi = S.AndBytes(S.ShiftRight16(raw, 4), mask);
        if (TFive.Value)
        {
            // element 64g + l: bit 2g of qh[l]; element 64g + 32 + l: bit 2g + 1, moved to bit 4
            var qhv = S.LoadBytes(qh);
            lo = S.OrBytes(lo, S.ShiftLeft16(S.AndBytes(S.ShiftRight16(qhv, 2 * g), one), 4));
            hi = S.OrBytes(hi, S.ShiftLeft16(S.AndBytes(S.ShiftRight16(qhv, 2 * g + 1), one), 4));
        }
        return (lo, hi);
    }

    /// <summary>Sub-block pair g (elements 64g .. 64g + 63) of a Q4_K/Q5_K super-block: 32 bytes of quants, one step at 256
    /// bits, two at 128 (no loop: a one-trip loop kept the accumulator in memory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static V Q4KPair<S, V, TFive>(byte* qs, byte* qh, sbyte* x, int g, V spread, V mask, V one, V acc)
        where S : ISimd<V> where V : struct where TFive : struct, IFlag
    {
        var sc0 = S.LaneI16Spread(spread, 2 * g);
        var sc1 = S.LaneI16Spread(spread, 2 * g + 1);
        acc = Q4KStep<S, V, TFive>(qs + 32 * g, qh, x + 64 * g, g, sc0, sc1, mask, one, acc);
        return S.Floats == 4 ? Q4KStep<S, V, TFive>(qs + 32 * g + 16, qh + 16, x + 64 * g + 16, g, sc0, sc1, mask, one, acc) : acc;
    }

    /// <summary>One vector of a Q4_K/Q5_K sub-block pair g: low nibbles (elements 64g + l) against x, high nibbles
    /// (64g + 32 + l) against x + 32, each times its sub-block scale, into the int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static V Q4KStep<S, V, TFive>(byte* qs, byte* qh, sbyte* x, int g, V sc0, V sc1, V mask, V one, V acc)
        where S : ISimd<V> where V : struct where TFive : struct, IFlag
    {
        var (lo, hi) = Q4KNibbles<S, V, TFive>(qs, qh, g, mask, one);
        acc = S.DotAddI16(acc, S.MulAddU8S8To16(lo, S.LoadBytes(x)), sc0);
        return S.DotAddI16(acc, S.MulAddU8S8To16(hi, S.LoadBytes(x + 32)), sc1);
    }

    /// <summary>
    /// Q6_K row at a width of at most 32 bytes per vector: per half (128 elements) loads of ql (low 4 bits) and qh (2 high
    /// bits) make the four 32-element runs in natural order; a 32-byte vector spans two 16-element scale groups (int16 lanes
    /// split in halves), a 16-byte one lies in one. The −32 offset comes from the activation sums per 16.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float SuperBlockDotQ6K<S, V>(byte* row, in Activations a, int blocks) where S : ISimd<V> where V : struct
    {
        var mask = S.BroadcastByte(0x0F);
        var three = S.BroadcastByte(3);
        V accF = S.Zero;
        var offAcc = Vector128<float>.Zero;   // Σ 32 · d · sc_g · Σx_g, 4 lanes
        for (int b = 0; b < blocks; b++)
        {
            byte* blk = row + b * 210;
            byte* ql = blk, qh = blk + 128;
            sbyte* sc = (sbyte*)(blk + 192);
            float d = HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk + 208)) * a.Dx[b];
            sbyte* x = a.Qx + b * QK;
            // the 16 int8 scales as two int16 vectors; 32 · Σ sc_g · Σx_g in two pmaddwd
            var scv = Vector128.Load(sc);
            var scLo = Vector128.WidenLower(scv); var scHi = Vector128.WidenUpper(scv);
            offAcc += Q6Offsets(scLo, scHi, a.Sum16 + b * 16) * Vector128.Create(d * 32);
            // halves and vectors unrolled (no one-trip loops: they kept the accumulator in memory); scales spread once per half
            var spreadLo = S.SpreadI16(scLo);
            var spreadHi = S.SpreadI16(scHi);
            V acc = Q6Step<S, V>(ql, qh, x, 0, 0, spreadLo, mask, three, S.Zero);
            if (S.Floats == 4) acc = Q6Step<S, V>(ql, qh, x, 0, 16, spreadLo, mask, three, acc);
            acc = Q6Step<S, V>(ql, qh, x, 1, 0, spreadHi, mask, three, acc);
            if (S.Floats == 4) acc = Q6Step<S, V>(ql, qh, x, 1, 16, spreadHi, mask, three, acc);
            accF = S.Fma(S.ConvertI32ToF32(acc), S.Broadcast(d), accF);
        }
        return S.Sum(accF) - Vector128.Sum(offAcc);
    }

    /// <summary><see cref="SuperBlockDotQ6K{S, V}"/> of one weight row against 4 activation rows (<typeparamref name="TFour"/>
    /// <see cref="Yes"/>) or 2.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void SuperBlockDotQ6Kx4<S, V, TFour>(byte* row, Activations* a, int blocks, float* sums)
        where S : ISimd<V> where V : struct where TFour : struct, IFlag
    {
        bool four = TFour.Value;
        Activations* a2 = a + (four ? 2 : 0);   // two rows: rows 2 and 3 alias 0 and 1 and are neither computed nor stored
        var mask = S.BroadcastByte(0x0F);
        var three = S.BroadcastByte(3);
        V f0 = S.Zero, f1 = S.Zero, f2 = S.Zero, f3 = S.Zero;
        Vector128<float> o0 = default, o1 = default, o2 = default, o3 = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* blk = row + b * 210;
            byte* ql = blk, qh = blk + 128;
            float dw = HalfVector.ToSingle(Unsafe.ReadUnaligned<ushort>(blk + 208));
            float d0 = dw * a[0].Dx[b], d1 = dw * a[1].Dx[b], d2 = dw * a2[0].Dx[b], d3 = dw * a2[1].Dx[b];
            var scv = Vector128.Load((sbyte*)(blk + 192));
            var scLo = Vector128.WidenLower(scv); var scHi = Vector128.WidenUpper(scv);
            o0 += Q6Offsets(scLo, scHi, a[0].Sum16 + b * 16) * Vector128.Create(d0 * 32);
            o1 += Q6Offsets(scLo, scHi, a[1].Sum16 + b * 16) * Vector128.Create(d1 * 32);
            if (four)
            {
                o2 += Q6Offsets(scLo, scHi, a2[0].Sum16 + b * 16) * Vector128.Create(d2 * 32);
                o3 += Q6Offsets(scLo, scHi, a2[1].Sum16 + b * 16) * Vector128.Create(d3 * 32);
            }
            sbyte* x0 = a[0].Qx + b * QK, x1 = a[1].Qx + b * QK, x2 = a2[0].Qx + b * QK, x3 = a2[1].Qx + b * QK;
            var spreadLo = S.SpreadI16(scLo);
            var spreadHi = S.SpreadI16(scHi);
            V c0 = S.Zero, c1 = S.Zero, c2 = S.Zero, c3 = S.Zero;
            Q6Step4<S, V, TFour>(ql, qh, x0, x1, x2, x3, 0, 0, spreadLo, mask, three, ref c0, ref c1, ref c2, ref c3);
            if (S.Floats == 4) Q6Step4<S, V, TFour>(ql, qh, x0, x1, x2, x3, 0, 16, spreadLo, mask, three, ref c0, ref c1, ref c2, ref c3);
            Q6Step4<S, V, TFour>(ql, qh, x0, x1, x2, x3, 1, 0, spreadHi, mask, three, ref c0, ref c1, ref c2, ref c3);
            if (S.Floats == 4) Q6Step4<S, V, TFour>(ql, qh, x0, x1, x2, x3, 1, 16, spreadHi, mask, three, ref c0, ref c1, ref c2, ref c3);
            f0 = S.Fma(S.ConvertI32ToF32(c0), S.Broadcast(d0), f0);
            f1 = S.Fma(S.ConvertI32ToF32(c1), S.Broadcast(d1), f1);
            if (!four) continue;
            f2 = S.Fma(S.ConvertI32ToF32(c2), S.Broadcast(d2), f2);
            f3 = S.Fma(S.ConvertI32ToF32(c3), S.Broadcast(d3), f3);
        }
        sums[0] = S.Sum(f0) - Vector128.Sum(o0); sums[1] = S.Sum(f1) - Vector128.Sum(o1);
        if (four) { sums[2] = S.Sum(f2) - Vector128.Sum(o2); sums[3] = S.Sum(f3) - Vector128.Sum(o3); }
    }

    /// <summary>Σ sc_g · Σx_g of a Q6_K super-block as 4 int32 lanes, converted (two pmaddwd over the 16 groups).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static Vector128<float> Q6Offsets(Vector128<short> scLo, Vector128<short> scHi, short* sum16) =>
        Vector128.ConvertToSingle(Simd128.MulAddI16(scLo.AsSingle(), Vector128.Load(sum16).AsSingle()).AsInt32()
            + Simd128.MulAddI16(scHi.AsSingle(), Vector128.Load(sum16 + 8).AsSingle()).AsInt32());

    /// <summary><see cref="Q6Step{S, V}"/> for 4 activation rows: the runs unpacked and their scale lanes picked once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Q6Step4<S, V, TFour>(byte* ql, byte* qh, sbyte* x0, sbyte* x1, sbyte* x2, sbyte* x3, int h, int k, V spread, V mask, V three,
        ref V c0, ref V c1, ref V c2, ref V c3) where S : ISimd<V> where V : struct where TFour : struct, IFlag
    {
        var l0 = S.LoadBytes(ql + 64 * h + k);
        var l1 = S.LoadBytes(ql + 64 * h + 32 + k);
        var hb = S.LoadBytes(qh + 32 * h + k);
        int e = 128 * h + k, g = k / 16;
        Q6Run4<S, V, TFour>(S.OrBytes(S.AndBytes(l0, mask), S.ShiftLeft16(S.AndBytes(hb, three), 4)), Q6Scales<S, V>(spread, g), x0, x1, x2, x3, e, ref c0, ref c1, ref c2, ref c3);
        Q6Run4<S, V, TFour>(S.OrBytes(S.AndBytes(l1, mask), S.ShiftLeft16(S.AndBytes(S.ShiftRight16(hb, 2), three), 4)), Q6Scales<S, V>(spread, g + 2), x0, x1, x2, x3, e + 32, ref c0, ref c1, ref c2, ref c3);
        Q6Run4<S, V, TFour>(S.OrBytes(S.AndBytes(S.ShiftRight16(l0, 4), mask), S.ShiftLeft16(S.AndBytes(S.ShiftRight16(hb, 4), three), 4)), Q6Scales<S, V>(spread, g + 4), x0, x1, x2, x3, e + 64, ref c0, ref c1, ref c2, ref c3);
        Q6Run4<S, V, TFour>(S.OrBytes(S.AndBytes(S.ShiftRight16(l1, 4), mask), S.ShiftLeft16(S.AndBytes(S.ShiftRight16(hb, 6), three), 4)), Q6Scales<S, V>(spread, g + 6), x0, x1, x2, x3, e + 96, ref c0, ref c1, ref c2, ref c3);
    }

    /// <summary>One unpacked 32-element run against 4 activation rows at element e.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Q6Run4<S, V, TFour>(V q, V sc, sbyte* x0, sbyte* x1, sbyte* x2, sbyte* x3, int e, ref V c0, ref V c1, ref V c2, ref V c3)
        where S : ISimd<V> where V : struct where TFour : struct, IFlag
    {
        c0 = S.DotAddI16(c0, S.MulAddU8S8To16(q, S.LoadBytes(x0 + e)), sc);
        c1 = S.DotAddI16(c1, S.MulAddU8S8To16(q, S.LoadBytes(x1 + e)), sc);
        if (!TFour.Value) return;
        c2 = S.DotAddI16(c2, S.MulAddU8S8To16(q, S.LoadBytes(x2 + e)), sc);
        c3 = S.DotAddI16(c3, S.MulAddU8S8To16(q, S.LoadBytes(x3 + e)), sc);
    }

    /// <summary>One vector (bytes k.. of each 32-byte run) of half h (128 elements) of a Q6_K super-block: ql's low 4 bits
    /// and qh's 2 high bits make the four 32-element runs in natural order, each times its scale group's lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static V Q6Step<S, V>(byte* ql, byte* qh, sbyte* x, int h, int k, V spread, V mask, V three, V acc) where S : ISimd<V> where V : struct
    {
        var l0 = S.LoadBytes(ql + 64 * h + k);
        var l1 = S.LoadBytes(ql + 64 * h + 32 + k);
        var hb = S.LoadBytes(qh + 32 * h + k);
        var q1 = S.OrBytes(S.AndBytes(l0, mask), S.ShiftLeft16(S.AndBytes(hb, three), 4));
        var q2 = S.OrBytes(S.AndBytes(l1, mask), S.ShiftLeft16(S.AndBytes(S.ShiftRight16(hb, 2), three), 4));
        var q3 = S.OrBytes(S.AndBytes(S.ShiftRight16(l0, 4), mask), S.ShiftLeft16(S.AndBytes(S.ShiftRight16(hb, 4), three), 4));
        var q4 = S.OrBytes(S.AndBytes(S.ShiftRight16(l1, 4), mask), S.ShiftLeft16(S.AndBytes(S.ShiftRight16(hb, 6), three), 4));
        sbyte* xs = x + 128 * h + k;
        int g = k / 16;   // scale lane (within this half's 8) of run j's first element: g + 2j
        acc = S.DotAddI16(acc, S.MulAddU8S8To16(q1, S.LoadBytes(xs)), Q6Scales<S, V>(spread, g));
        acc = S.DotAddI16(acc, S.MulAddU8S8To16(q2, S.LoadBytes(xs + 32)), Q6Scales<S, V>(spread, g + 2));
        acc = S.DotAddI16(acc, S.MulAddU8S8To16(q3, S.LoadBytes(xs + 64)), Q6Scales<S, V>(spread, g + 4));
        return S.DotAddI16(acc, S.MulAddU8S8To16(q4, S.LoadBytes(xs + 96)), Q6Scales<S, V>(spread, g + 6));
    }

    /// <summary>The int16 scale lanes of one vector of a 32-element run starting in group g (two groups when it is 32 bytes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static V Q6Scales<S, V>(V spread, int g) where S : ISimd<V> where V : struct =>
        S.Floats == 8 ? S.LanePairI16Spread(spread, g) : S.LaneI16Spread(spread, g);
}

using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using KernelEngine.Kernels.Quant;

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
public static unsafe class KQuantMatVecCpu
{
    private const int QK = KQuants.SuperBlock;

    public static bool Handles(WeightType type) => type is WeightType.Q4_K or WeightType.Q5_K or WeightType.Q6_K;

    /// <summary>The activation row quantized once per token; valid until the same thread prepares again.</summary>
    public struct Activations
    {
        public sbyte* Qx;       // (n) natural order (Q6_K)
        public sbyte* QxNib;    // (n) per 128: [x0-31, x64-95, x32-63, x96-127] (Q4_K, Q5_K nibble order)
        public float* Dx;       // (n / 256) scales
        public int* Sum16;      // (n / 16) Σ qx per 16
        public int* Sum32;      // (n / 32) Σ qx per 32
    }

    [ThreadStatic] private static byte* t_buffer;
    [ThreadStatic] private static int t_bufferN;

    public static Activations Prepare(float* x, int n)
    {
        if (n % QK != 0) throw new ArgumentException($"row length {n} is not a multiple of {QK}");
        if (t_bufferN < n)
        {
            if (t_buffer != null) NativeMemory.AlignedFree(t_buffer);
            t_buffer = (byte*)NativeMemory.AlignedAlloc((nuint)(2 * n + 4 * (n / QK) + 4 * (n / 16) + 4 * (n / 32) + 256), 64);
            t_bufferN = n;
        }
        var a = new Activations
        {
            Qx = (sbyte*)t_buffer, QxNib = (sbyte*)(t_buffer + n), Dx = (float*)(t_buffer + 2 * n),
        };
        a.Sum16 = (int*)(a.Dx + n / QK);
        a.Sum32 = a.Sum16 + n / 16;
        for (int b = 0; b < n / QK; b++)
        {
            float* src = x + b * QK;
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
                a.Sum16[b * 16 + g] = s;
            }
            for (int g = 0; g < QK / 32; g++) a.Sum32[b * 8 + g] = a.Sum16[b * 16 + 2 * g] + a.Sum16[b * 16 + 2 * g + 1];
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

    /// <summary>y[o] = W[o] · x for o in [o0, o1) of one K-quant matrix (bias not added).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(in MatVecPart part, in Activations a, int n, int o0, int o1)
    {
        long rowBytes = part.Type.RowBytes(n);
        int blocks = n / QK;
        byte* w = part.W;
        switch (part.Type)
        {
            case WeightType.Q4_K: for (int o = o0; o < o1; o++) part.Y[o] = DotQ4K(w + o * rowBytes, a, blocks, fifthBits: false); break;
            case WeightType.Q5_K: for (int o = o0; o < o1; o++) part.Y[o] = DotQ4K(w + o * rowBytes, a, blocks, fifthBits: true); break;
            default: for (int o = o0; o < o1; o++) part.Y[o] = DotQ6K(w + o * rowBytes, a, blocks); break;
        }
    }

    /// <summary>The 8 scales and mins of a Q4_K/Q5_K super-block (get_scale_min_k4).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScalesMins(byte* q, int* sc, int* m)
    {
        for (int j = 0; j < 4; j++)
        {
            sc[j] = q[j] & 63;
            m[j] = q[j + 4] & 63;
            sc[j + 4] = (q[j + 8] & 0xF) | ((q[j] >> 6) << 4);
            m[j + 4] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
        }
    }

    /// <summary>One Q4_K (or Q5_K with <paramref name="fifthBits"/>) row against the activations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ4K(byte* row, in Activations a, int blocks, bool fifthBits)
    {
        int blockBytes = fifthBits ? 176 : 144;
        int* sc = stackalloc int[8];
        int* mn = stackalloc int[8];
        float sum = 0;
        for (int b = 0; b < blocks; b++)
        {
            byte* blk = row + b * blockBytes;
            float d = (float)Unsafe.ReadUnaligned<Half>(blk), dmin = (float)Unsafe.ReadUnaligned<Half>(blk + 2);
            ScalesMins(blk + 4, sc, mn);
            byte* qh = blk + 16;
            byte* qs = blk + (fifthBits ? 48 : 16);
            sbyte* x = a.QxNib + b * QK;
            int isum;
            if (Avx512BW.IsSupported)
            {
                var acc = Vector512<int>.Zero;
                var mask = Vector512.Create((byte)0x0F);
                var ones = Vector512.Create((short)1);
                var qhv = fifthBits ? Vector512.Create(Vector256.Load(qh), Vector256.Load(qh)).AsUInt16() : default;
                for (int h = 0; h < 2; h++)
                {
                    var raw = Vector512.Load(qs + 64 * h);
                    var lo = raw & mask;
                    var hi = Vector512.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask;
                    if (fifthBits)
                    {
                        // element 64k + l: bit 2k of qh[l]; element 64k + 32 + l: bit 2k + 1 (k = 2h for the first half of the load)
                        var sLo = Vector512.Create(Vector256.Create((ushort)(4 * h)), Vector256.Create((ushort)(4 * h + 2)));
                        var one = Vector512.Create((byte)1);
                        lo |= Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(qhv, sLo).AsByte() & one).AsUInt16(), 4).AsByte();
                        hi |= Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(qhv, sLo + Vector512.Create((ushort)1)).AsByte() & one).AsUInt16(), 4).AsByte();
                    }
                    var pLo = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load(x + 128 * h)), ones);
                    var pHi = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load(x + 128 * h + 64)), ones);
                    // lanes 0-7: sub-block 4h (low) / 4h + 1 (high); lanes 8-15: 4h + 2 / 4h + 3
                    var sLoScale = Vector512.Create(Vector256.Create(sc[4 * h]), Vector256.Create(sc[4 * h + 2]));
                    var sHiScale = Vector512.Create(Vector256.Create(sc[4 * h + 1]), Vector256.Create(sc[4 * h + 3]));
                    acc += Avx512F.MultiplyLow(pLo, sLoScale) + Avx512F.MultiplyLow(pHi, sHiScale);
                }
                isum = Vector512.Sum(acc);
            }
            else
            {
                isum = 0;
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
                    isum += sc[j] * s;
                }
            }
            int msum = 0;
            int* s32 = a.Sum32 + b * 8;
            for (int j = 0; j < 8; j++) msum += mn[j] * s32[j];
            sum += a.Dx[b] * (d * isum - dmin * msum);
        }
        return sum;
    }

    /// <summary>One Q6_K row: unsigned 6-bit quants × activations per 16, scaled by the int8 sub-block scales, less 32·Σx.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ6K(byte* row, in Activations a, int blocks)
    {
        float sum = 0;
        for (int b = 0; b < blocks; b++)
        {
            byte* blk = row + b * 210;
            byte* ql = blk, qh = blk + 128;
            sbyte* sc = (sbyte*)(blk + 192);
            float d = (float)Unsafe.ReadUnaligned<Half>(blk + 208);
            sbyte* x = a.Qx + b * QK;
            int isum;
            if (Avx512BW.IsSupported)
            {
                var acc = Vector512<int>.Zero;
                var mask = Vector512.Create((byte)0x0F);
                var three = Vector512.Create((byte)3);
                var ones = Vector512.Create((short)1);
                for (int h = 0; h < 2; h++)
                {
                    var raw = Vector512.Load(ql + 64 * h);
                    var qhv = Vector512.Create(Vector256.Load(qh + 32 * h), Vector256.Load(qh + 32 * h)).AsUInt16();
                    // low nibbles: elements [0-31 | 32-63] with qh bits (0-1 | 2-3); high: [64-95 | 96-127] with bits (4-5 | 6-7)
                    var lo = (raw & mask) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(qhv, Vector512.Create(Vector256.Create((ushort)0), Vector256.Create((ushort)2))).AsByte() & three).AsUInt16(), 4).AsByte();
                    var hi = (Vector512.ShiftRightLogical(raw.AsUInt16(), 4).AsByte() & mask) | Vector512.ShiftLeft((Avx512BW.ShiftRightLogicalVariable(qhv, Vector512.Create(Vector256.Create((ushort)4), Vector256.Create((ushort)6))).AsByte() & three).AsUInt16(), 4).AsByte();
                    var pLo = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(lo, Vector512.Load(x + 128 * h)), ones);
                    var pHi = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(hi, Vector512.Load(x + 128 * h + 64)), ones);
                    // 16 lanes = 4 groups of 16 elements: scales 8h + 0..3 (low) and 8h + 4..7 (high), 4 lanes each
                    var sLo = Avx512F.ConvertToVector512Int32(Vector128.Create(sc[8 * h], sc[8 * h], sc[8 * h], sc[8 * h], sc[8 * h + 1], sc[8 * h + 1], sc[8 * h + 1], sc[8 * h + 1],
                        sc[8 * h + 2], sc[8 * h + 2], sc[8 * h + 2], sc[8 * h + 2], sc[8 * h + 3], sc[8 * h + 3], sc[8 * h + 3], sc[8 * h + 3]));
                    var sHi = Avx512F.ConvertToVector512Int32(Vector128.Create(sc[8 * h + 4], sc[8 * h + 4], sc[8 * h + 4], sc[8 * h + 4], sc[8 * h + 5], sc[8 * h + 5], sc[8 * h + 5], sc[8 * h + 5],
                        sc[8 * h + 6], sc[8 * h + 6], sc[8 * h + 6], sc[8 * h + 6], sc[8 * h + 7], sc[8 * h + 7], sc[8 * h + 7], sc[8 * h + 7]));
                    acc += Avx512F.MultiplyLow(pLo, sLo) + Avx512F.MultiplyLow(pHi, sHi);
                }
                isum = Vector512.Sum(acc);
            }
            else
            {
                isum = 0;
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
            }
            int off = 0;
            int* s16 = a.Sum16 + b * 16;
            for (int g = 0; g < 16; g++) off += sc[g] * s16[g];
            sum += a.Dx[b] * d * (isum - 32 * off);
        }
        return sum;
    }
}

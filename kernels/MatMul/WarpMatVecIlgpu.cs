using ILGPU;
using ILGPU.Algorithms;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Kernels.MatMul;

/// <summary>16 bytes read as one 128-bit load (ILGPU emits <c>ld.v4</c> for a 16-byte struct of four 4-byte fields).</summary>
internal struct Vec4F { public float X, Y, Z, W; }

/// <summary>16 bytes of 2-byte elements (F16, BF16): eight of them, two per word.</summary>
internal struct Vec4U { public uint A, B, C, D; }

/// <summary>8 bytes as one 64-bit load: four 2-byte elements.</summary>
internal struct Vec2U { public uint A, B; }

/// <summary>One weight of a <see cref="WarpMatVecIlgpu"/> launch: y (Rows) from W (Rows, inDim) raw bytes of Type.</summary>
internal struct WarpPart
{
    public ArrayView<byte> W;
    public ArrayView<float> Bias;
    public ArrayView<float> Y;
    public int Rows, Type, HasBias;
    public long RowBytes;
}

/// <summary>Arguments of <see cref="WarpMatVecIlgpu.Run"/>: up to three weights that read the same x.</summary>
internal struct WarpMatVecArgs
{
    public ArrayView<float> X;
    public WarpPart P0, P1, P2;
    public int InDim, Epilogue;
    public ArrayView<float> NormW;   // Norm != 0: x is RMS-normed (x · rsqrt(mean x² + Eps) · NormW) in the prologue
    public int Norm;
    public float Eps;
}

/// <summary>
/// MatVec v3 (decode), ILGPU: one warp per output row. Each lane reads 16 bytes of the row per step (one 128-bit load:
/// 4 floats or 8 halves) and the matching x as 128-bit loads; the lanes' partial sums meet through warp shuffles (no
/// shared memory, no barrier). A group holds <see cref="WarpsPerGroup"/> warps, so as many rows. One launch covers up
/// to three weights that read the same x (q, k, v: their rows one after another over the grid), and the epilogue does
/// what used to be the next launch: y += (the residual add after Wo and W_down) or act(gate)·up (the gated MLP: a warp
/// computes row i of both weights). The prologue can do what used to be the previous launch: the RMSNorm of x (each group
/// sums x² once with a shared-memory reduction; the lanes then scale x as they read it).
/// </summary>
internal static class WarpMatVecIlgpu
{
    /// <summary>Warps of a group (rows per group).</summary>
    public const int WarpsPerGroup = 4;
    /// <summary>Epilogues: y = Wx + b; y += Wx + b; gate = silu(W_gate x) · (W_up x + b_up); the same with tanh-GELU.</summary>
    public const int Store = 0, Accumulate = 1, SiluGate = 2, GeluGate = 3;

    /// <summary>Whether a weight of this type and row runs here: rows of whole 16-byte vectors (F32, F16, BF16, and Q8_0/Q4_0
    /// in their repacked device layout, <see cref="DeviceWeightLayout"/>), or of whole super-blocks (Q4_K, Q5_K, Q6_K in
    /// the file layout, read a byte per lane).</summary>
    public static bool Supports(WeightType type, int inDim) => type switch
    {
        WeightType.F32 => inDim % 4 == 0,
        WeightType.F16 or WeightType.BF16 => inDim % 8 == 0,
        WeightType.Q8_0 or WeightType.Q4_0 => inDim % 32 == 0,
        WeightType.Q4_K or WeightType.Q5_K or WeightType.Q6_K => inDim % 256 == 0,
        _ => false,
    };

    public static void Run(WarpMatVecArgs a)
    {
        var shared = SharedMemory.Allocate<float>(DeviceMath.GroupSize);
        float scale = NormScale(a, shared);
        int lane = Warp.LaneIdx;
        int r = Grid.IdxX * (Group.DimX / Warp.WarpSize) + Warp.WarpIdx;
        if (a.Epilogue >= SiluGate)
        {
            if (r >= a.P0.Rows) return;   // the whole warp leaves together
            float g = Dot(a, a.P0, r, scale, lane), u = Dot(a, a.P1, r, scale, lane);
            if (lane != 0) return;
            if (a.P1.HasBias != 0) u += a.P1.Bias[r];
            float act = a.Epilogue == SiluGate ? g / (1f + XMath.Exp(-g)) : 0.5f * g * (1f + XMath.Tanh(0.7978845608028654f * (g + 0.044715f * g * g * g)));
            a.P0.Y[r] = act * u;
            return;
        }
        StoreRow(a, r, scale, lane);
    }

    /// <summary>The RMSNorm factor rsqrt(mean x² + Eps) when the launch norms x (1 otherwise); every thread of the group calls it.</summary>
    internal static float NormScale(WarpMatVecArgs a, ArrayView<float> shared)
    {
        if (a.Norm == 0) return 1f;
        float ss = 0;
        for (int i = Group.IdxX; i < a.InDim; i += Group.DimX) { float xi = a.X[i]; ss += xi * xi; }
        return XMath.Rsqrt(DeviceMath.GroupSum(ss, shared) / a.InDim + a.Eps);
    }

    /// <summary>Row r of the parts' rows laid end to end (P0's, then P1's, then P2's), with bias and the Store/Accumulate
    /// epilogue; the whole warp calls it (a row past the end does nothing).</summary>
    internal static void StoreRow(WarpMatVecArgs a, int r, float scale, int lane)
    {
        WarpPart p;
        if (r < a.P0.Rows) p = a.P0;
        else if ((r -= a.P0.Rows) < a.P1.Rows) p = a.P1;
        else if ((r -= a.P1.Rows) < a.P2.Rows) p = a.P2;
        else return;
        float acc = Dot(a, p, r, scale, lane);
        if (lane != 0) return;
        float v = p.HasBias != 0 ? acc + p.Bias[r] : acc;
        p.Y[r] = a.Epilogue == Accumulate ? p.Y[r] + v : v;
    }

    /// <summary>Row <paramref name="row"/> of p · x (x normed on the fly when the launch norms it), in every lane.</summary>
    private static float Dot(WarpMatVecArgs a, WarpPart p, int row, float scale, int lane)
    {
        var x = a.X.Cast<Vec4F>();
        var nw = a.NormW.Cast<Vec4F>();
        bool norm = a.Norm != 0;
        int inDim = a.InDim;
        long start = row * p.RowBytes / 16;
        float acc = 0;
        if (p.Type == (int)WeightType.Q8_0 || p.Type == (int)WeightType.Q4_0)
        {
            // the row's fp16 scales, then its quants from a 16-byte boundary
            int blocks = inDim / 32;
            var scales = p.W.Cast<ushort>();
            long scaleAt = row * p.RowBytes / 2;
            var q = p.W.Cast<Vec4U>();
            long quantsAt = start + DeviceWeightLayout.ScaleBytes(blocks) / 16;
            if (p.Type == (int)WeightType.Q8_0)
            {
                for (int i = lane; i < 2 * blocks; i += Warp.WarpSize)   // 16 quants per vector, two vectors per block
                {
                    var qv = q[quantsAt + i];
                    float d = Interop.IntAsFloat(scales[scaleAt + i / 2]);
                    float sum = Q8(qv.A, Xv(x, nw, norm, scale, 4L * i)) + Q8(qv.B, Xv(x, nw, norm, scale, 4L * i + 1))
                              + Q8(qv.C, Xv(x, nw, norm, scale, 4L * i + 2)) + Q8(qv.D, Xv(x, nw, norm, scale, 4L * i + 3));
                    acc += d * sum;
                }
            }
            else
            {
                for (int i = lane; i < blocks; i += Warp.WarpSize)   // a block per vector: byte j holds elements j and j + 16
                {
                    var qv = q[quantsAt + i];
                    float d = Interop.IntAsFloat(scales[scaleAt + i]);
                    long xi = 8L * i;
                    float sum = Q4(qv.A, Xv(x, nw, norm, scale, xi), Xv(x, nw, norm, scale, xi + 4))
                              + Q4(qv.B, Xv(x, nw, norm, scale, xi + 1), Xv(x, nw, norm, scale, xi + 5))
                              + Q4(qv.C, Xv(x, nw, norm, scale, xi + 2), Xv(x, nw, norm, scale, xi + 6))
                              + Q4(qv.D, Xv(x, nw, norm, scale, xi + 3), Xv(x, nw, norm, scale, xi + 7));
                    acc += d * sum;
                }
            }
        }
        else if (p.Type == (int)WeightType.Q4_K || p.Type == (int)WeightType.Q5_K)
            acc = Q45K(a, p, row, scale, lane);
        else if (p.Type == (int)WeightType.Q6_K)
            acc = Q6K(a, p, row, scale, lane);
        else if (p.Type == (int)WeightType.F32)
        {
            var w = p.W.Cast<Vec4F>();
            for (int i = lane; i < inDim / 4; i += Warp.WarpSize)
            {
                var wv = w[start + i];
                var xv = norm ? Normed(x[i], scale, nw[i]) : x[i];
                acc += wv.X * xv.X + wv.Y * xv.Y + wv.Z * xv.Z + wv.W * xv.W;
            }
        }
        else
        {
            var w = p.W.Cast<Vec4U>();
            bool bf16 = p.Type == (int)WeightType.BF16;
            for (int i = lane; i < inDim / 8; i += Warp.WarpSize)
            {
                var wv = w[start + i];
                var x0 = norm ? Normed(x[2 * i], scale, nw[2 * i]) : x[2 * i];
                var x1 = norm ? Normed(x[2 * i + 1], scale, nw[2 * i + 1]) : x[2 * i + 1];
                acc += Lo(wv.A, bf16) * x0.X + Hi(wv.A, bf16) * x0.Y + Lo(wv.B, bf16) * x0.Z + Hi(wv.B, bf16) * x0.W
                     + Lo(wv.C, bf16) * x1.X + Hi(wv.C, bf16) * x1.Y + Lo(wv.D, bf16) * x1.Z + Hi(wv.D, bf16) * x1.W;
            }
        }
        return DeviceMath.WarpSum(acc);
    }

    /// <summary>
    /// A lane's part of a Q4_K / Q5_K row (the file layout, 144 / 176 bytes per 256 weights): the warp takes a super-block
    /// per step, lane l byte l of each of its four 32-byte quant groups (the low nibble a weight of sub-block 2g, the high
    /// one of 2g + 1; Q5_K's fifth bits from byte l of qh), so the warp's loads of quants and x are contiguous. value =
    /// d·scale_j·q − dmin·min_j.
    /// </summary>
    private static float Q45K(WarpMatVecArgs a, WarpPart p, int row, float scale, int lane)
    {
        bool five = p.Type == (int)WeightType.Q5_K;
        int blockBytes = five ? 176 : 144;
        float acc = 0;
        for (int sb = 0; sb < a.InDim / 256; sb++)
        {
            long b = row * p.RowBytes + (long)sb * blockBytes, qs = b + (five ? 48 : 16);
            float d = DeviceMath.Half(p.W, b), dmin = DeviceMath.Half(p.W, b + 2);
            int fifth = five ? p.W[b + 16 + lane] : 0;
            for (int g = 0; g < 4; g++)
            {
                int q = p.W[qs + 32 * g + lane];
                long at = 256L * sb + 64 * g + lane;
                float x0 = Xs(a, scale, at), x1 = Xs(a, scale, at + 32);
                DeviceMath.KScaleMin(p.W, b + 4, 2 * g, out int sc0, out int m0);
                DeviceMath.KScaleMin(p.W, b + 4, 2 * g + 1, out int sc1, out int m1);
                int q0 = (q & 15) + ((fifth >> (2 * g)) & 1) * 16, q1 = (q >> 4) + ((fifth >> (2 * g + 1)) & 1) * 16;
                acc += (d * sc0 * q0 - dmin * m0) * x0 + (d * sc1 * q1 - dmin * m1) * x1;
            }
        }
        return acc;
    }

    /// <summary>
    /// A lane's part of a Q6_K row (210 bytes per 256 weights: ql, qh, int8 scales per 16, d): per half of a super-block
    /// lane l reads ql bytes l and 32 + l and qh byte l, which hold its four weights 32 apart; value = d·scale·(q − 32).
    /// </summary>
    private static float Q6K(WarpMatVecArgs a, WarpPart p, int row, float scale, int lane)
    {
        float acc = 0;
        for (int sb = 0; sb < a.InDim / 256; sb++)
        {
            long b = row * p.RowBytes + (long)sb * 210;
            float d = DeviceMath.Half(p.W, b + 208);
            for (int h = 0; h < 2; h++)
            {
                int q1 = p.W[b + 64 * h + lane], q2 = p.W[b + 64 * h + 32 + lane], qh = p.W[b + 128 + 32 * h + lane];
                long at = 256L * sb + 128 * h + lane, sc = b + 192 + 8 * h + lane / 16;
                acc += d * ((sbyte)p.W[sc] * (((q1 & 15) | ((qh & 3) << 4)) - 32) * Xs(a, scale, at)
                          + (sbyte)p.W[sc + 2] * (((q2 & 15) | (((qh >> 2) & 3) << 4)) - 32) * Xs(a, scale, at + 32)
                          + (sbyte)p.W[sc + 4] * (((q1 >> 4) | (((qh >> 4) & 3) << 4)) - 32) * Xs(a, scale, at + 64)
                          + (sbyte)p.W[sc + 6] * (((q2 >> 4) | ((qh >> 6) << 4)) - 32) * Xs(a, scale, at + 96));
            }
        }
        return acc;
    }

    /// <summary>x[i], normed when the launch norms x.</summary>
    private static float Xs(WarpMatVecArgs a, float scale, long i) => a.Norm != 0 ? a.X[i] * scale * a.NormW[i] : a.X[i];

    /// <summary>x's 4 floats at vector i, normed when the launch norms x.</summary>
    private static Vec4F Xv(ArrayView<Vec4F> x, ArrayView<Vec4F> nw, bool norm, float scale, long i) => norm ? Normed(x[i], scale, nw[i]) : x[i];

    /// <summary>4 int8 quants of a word against 4 floats.</summary>
    private static float Q8(uint q, Vec4F x) =>
        (sbyte)q * x.X + (sbyte)(q >> 8) * x.Y + (sbyte)(q >> 16) * x.Z + (sbyte)(q >> 24) * x.W;

    /// <summary>4 bytes of Q4_0 nibbles (low: elements j..j+3, high: j+16..j+19, each minus 8) against their floats.</summary>
    private static float Q4(uint q, Vec4F lo, Vec4F hi) =>
        ((int)(q & 15) - 8) * lo.X + ((int)((q >> 8) & 15) - 8) * lo.Y + ((int)((q >> 16) & 15) - 8) * lo.Z + ((int)((q >> 24) & 15) - 8) * lo.W
        + ((int)((q >> 4) & 15) - 8) * hi.X + ((int)((q >> 12) & 15) - 8) * hi.Y + ((int)((q >> 20) & 15) - 8) * hi.Z + ((int)(q >> 28) - 8) * hi.W;

    /// <summary>x · scale · w per element, as the RMSNorm kernel writes it.</summary>
    private static Vec4F Normed(Vec4F x, float scale, Vec4F w) =>
        new() { X = x.X * scale * w.X, Y = x.Y * scale * w.Y, Z = x.Z * scale * w.Z, W = x.W * scale * w.W };

    /// <summary>The element in the low half of a word of two F16 or BF16 values.</summary>
    internal static float Lo(uint word, bool bf16) => bf16 ? Interop.IntAsFloat(word << 16) : Interop.IntAsFloat((ushort)word);
    /// <summary>The element in the high half.</summary>
    internal static float Hi(uint word, bool bf16) => bf16 ? Interop.IntAsFloat(word & 0xFFFF0000u) : Interop.IntAsFloat((ushort)(word >> 16));
}

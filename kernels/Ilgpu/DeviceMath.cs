using ILGPU;
using ILGPU.Algorithms;

namespace KernelEngine.Kernels.Ilgpu;

/// <summary>
/// Helpers callable from ILGPU kernels (inlined by the compiler): fp16 bit conversions done with integer ops so
/// they compile identically for PTX, OpenCL C and the CPU accelerator (System.Half does not compile in kernels),
/// weight-element reads for every <see cref="WeightType"/>, and shared-memory group reductions (power-of-two groups).
/// </summary>
internal static class DeviceMath
{
    public const int GroupSize = 128;

    public static float HalfToFloat(uint h)
    {
        uint sign = (h >> 15) & 1, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
        if (exp == 0)
        {
            float v = mant * (1f / 16777216f); // subnormal: mant * 2^-24
            return sign != 0 ? -v : v;
        }
        if (exp == 31) return Interop.IntAsFloat((sign << 31) | 0x7F800000u | (mant << 13));
        return Interop.IntAsFloat((sign << 31) | ((exp + 112) << 23) | (mant << 13));
    }

    /// <summary>IEEE binary16 bits of f, rounded to nearest even.</summary>
    public static uint FloatToHalf(float f)
    {
        uint x = Interop.FloatAsInt(f);
        uint sign = (x >> 16) & 0x8000;
        uint e8 = (x >> 23) & 0xFF;
        uint mant = x & 0x7FFFFF;
        if (e8 == 0xFF) return sign | 0x7C00 | (mant != 0 ? 0x200u : 0u);
        int exp = (int)e8 - 127 + 15;
        if (exp >= 31) return sign | 0x7C00;
        if (exp <= 0)
        {
            if (exp < -10) return sign;
            mant |= 0x800000;
            int shift = 14 - exp;
            uint half = mant >> shift;
            uint rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
            if (rem > mid || (rem == mid && (half & 1) != 0)) half++;
            return sign | half;
        }
        uint h = sign | ((uint)exp << 10) | (mant >> 13);
        uint r = mant & 0x1FFF;
        if (r > 0x1000 || (r == 0x1000 && (h & 1) != 0)) h++;
        return h;
    }

    /// <summary>Element (row, col) of a weight matrix stored as raw bytes in its <see cref="WeightType"/> (passed as int).</summary>
    public static float ReadWeight(ArrayView<byte> w, int type, long rowBytes, int row, int col)
    {
        long rowStart = row * rowBytes;
        if (type == (int)WeightType.F32) return w.Cast<float>()[rowStart / 4 + col];
        if (type == (int)WeightType.F16) return HalfToFloat(w.Cast<ushort>()[rowStart / 2 + col]);
        if (type == (int)WeightType.BF16) return Interop.IntAsFloat((uint)w.Cast<ushort>()[rowStart / 2 + col] << 16);
        // Q8_0, Q4_0: the repacked device layout (DeviceWeightLayout): the row's scales, then its quants
        if (type == (int)WeightType.Q8_0)
        {
            long quants = rowStart + rowBytes - DeviceWeightLayout.Blocks(WeightType.Q8_0, rowBytes) * 32;
            float d = HalfToFloat(w.Cast<ushort>()[rowStart / 2 + col / 32]);
            return d * (sbyte)w[quants + col];
        }
        if (type == (int)WeightType.Q4_0)
        {
            long quants = rowStart + rowBytes - DeviceWeightLayout.Blocks(WeightType.Q4_0, rowBytes) * 16;
            float d = HalfToFloat(w.Cast<ushort>()[rowStart / 2 + col / 32]);
            int j = col % 32;
            int b = w[quants + (col / 32) * 16 + (j & 15)];
            int q = j < 16 ? b & 0x0F : b >> 4;
            return d * (q - 8);
        }
        if (type == (int)WeightType.Q4_1 || type == (int)WeightType.Q5_0 || type == (int)WeightType.Q5_1) return ReadLegacy(w, type, rowStart, col);
        if (type == (int)WeightType.Q4_K || type == (int)WeightType.Q5_K) return ReadQ4K(w, type == (int)WeightType.Q5_K, rowStart, col);
        if (type == (int)WeightType.Q6_K) return ReadQ6K(w, rowStart, col);
        // The host refuses formats without a device read (IWeightFormat.DeviceReadable) before launching.
        return float.NaN;
    }

    /// <summary>The fp16 value at byte off (any alignment).</summary>
    public static float Half(ArrayView<byte> w, long off) => HalfToFloat(w[off] | ((uint)w[off + 1] << 8));

    /// <summary>Q4_1 (d, m, nibbles), Q5_0 (d, fifth bits, nibbles; − 16), Q5_1 (d, m, fifth bits, nibbles).</summary>
    private static float ReadLegacy(ArrayView<byte> w, int type, long rowStart, int col)
    {
        int e = col % 32;
        int blockBytes = type == (int)WeightType.Q4_1 ? 20 : type == (int)WeightType.Q5_0 ? 22 : 24;
        long b = rowStart + (col / 32) * blockBytes;
        long qs = b + (type == (int)WeightType.Q4_1 ? 4 : type == (int)WeightType.Q5_0 ? 6 : 8);
        int nib = e < 16 ? w[qs + e] & 0x0F : w[qs + e - 16] >> 4;
        if (type == (int)WeightType.Q4_1) return nib * Half(w, b) + Half(w, b + 2);
        long qhAt = type == (int)WeightType.Q5_0 ? b + 2 : b + 4;
        int bit = (w[qhAt + e / 8] >> (e % 8)) & 1;
        int q = nib | (bit << 4);
        return type == (int)WeightType.Q5_0 ? (q - 16) * Half(w, b) : q * Half(w, b) + Half(w, b + 2);
    }

    /// <summary>Q4_K / Q5_K: value = d·scale_j · q − dmin·min_j with 6-bit scales and mins packed in 12 bytes.</summary>
    private static float ReadQ4K(ArrayView<byte> w, bool five, long rowStart, int col)
    {
        long b = rowStart + (col / 256) * (five ? 176 : 144);
        int k = col % 256, j = k / 32, g = k / 64, l = k % 32;
        long qs = b + (five ? 48 : 16);
        int q = (k % 64) < 32 ? w[qs + 32 * g + l] & 0x0F : w[qs + 32 * g + l] >> 4;
        if (five) q += ((w[b + 16 + l] >> j) & 1) * 16;
        KScaleMin(w, b + 4, j, out int sc, out int m);
        return Half(w, b) * sc * q - Half(w, b + 2) * m;
    }

    /// <summary>Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes at s.</summary>
    public static void KScaleMin(ArrayView<byte> w, long s, int j, out int sc, out int m)
    {
        if (j < 4) { sc = w[s + j] & 63; m = w[s + j + 4] & 63; }
        else { sc = (w[s + j + 4] & 0x0F) | ((w[s + j - 4] >> 6) << 4); m = (w[s + j + 4] >> 4) | ((w[s + j] >> 6) << 4); }
    }

    /// <summary>Q6_K: value = d·scale_(k/16) · (q − 32), q = 4 low bits from ql and 2 high bits from qh.</summary>
    private static float ReadQ6K(ArrayView<byte> w, long rowStart, int col)
    {
        long b = rowStart + (col / 256) * 210;
        int k = col % 256, h = k / 128, within = k % 128, quarter = within / 32, l = within % 32;
        int ql = w[b + 64 * h + (quarter % 2) * 32 + l];
        int low = quarter < 2 ? ql & 0x0F : ql >> 4;
        int high = (w[b + 128 + 32 * h + l] >> (2 * quarter)) & 3;
        return Half(w, b + 208) * (sbyte)w[b + 192 + k / 16] * ((low | (high << 4)) - 32);
    }

    /// <summary>Sum over the group (all threads get the result). shared: GroupSize floats.</summary>
    public static float GroupSum(float v, ArrayView<float> shared)
    {
        int t = Group.IdxX;
        shared[t] = v;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s) shared[t] += shared[t + s];
            Group.Barrier();
        }
        float r = shared[0];
        Group.Barrier();
        return r;
    }

    /// <summary><see cref="GroupSum(float, ArrayView{float})"/>; with <paramref name="warp"/> (a constant where a kernel's warp
    /// twin calls it, so the other twin keeps no shuffle) each warp sums by shuffles and every thread adds the warps' sums
    /// in warp order from shared memory: two barriers instead of one per tree level.</summary>
    public static float GroupSum(float v, ArrayView<float> shared, bool warp)
    {
        if (!warp) return GroupSum(v, shared);
        v = WarpSum(v);
        if (Warp.LaneIdx == 0) shared[Warp.WarpIdx] = v;
        Group.Barrier();
        float r = shared[0];
        for (int w = 1; w < Group.DimX / Warp.WarpSize; w++) r += shared[w];
        Group.Barrier();
        return r;
    }

    public static float GroupMax(float v, ArrayView<float> shared)
    {
        int t = Group.IdxX;
        shared[t] = v;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s) shared[t] = XMath.Max(shared[t], shared[t + s]);
            Group.Barrier();
        }
        float r = shared[0];
        Group.Barrier();
        return r;
    }

    /// <summary>Index of the largest value over the group (smallest index on ties), -1 if none valid.</summary>
    public static int GroupArgMax(float v, int idx, ArrayView<float> vals, ArrayView<int> idxs)
    {
        int t = Group.IdxX;
        vals[t] = v; idxs[t] = idx;
        Group.Barrier();
        for (int s = Group.DimX / 2; s > 0; s >>= 1)
        {
            if (t < s)
            {
                float a = vals[t], b = vals[t + s];
                int ia = idxs[t], ib = idxs[t + s];
                if (Better(b, ib, a, ia)) { vals[t] = b; idxs[t] = ib; }
            }
            Group.Barrier();
        }
        int r = idxs[0];
        Group.Barrier();
        return r;
    }

    /// <summary><see cref="GroupArgMax(float, int, ArrayView{float}, ArrayView{int})"/>; with <paramref name="warp"/> a butterfly
    /// of shuffles per warp (the same rule both ways, so every lane ends with the same pair), then the warps' pairs in
    /// warp order.</summary>
    public static int GroupArgMax(float v, int idx, ArrayView<float> vals, ArrayView<int> idxs, bool warp)
    {
        if (!warp) return GroupArgMax(v, idx, vals, idxs);
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2)
        {
            float ov = Warp.Shuffle(v, Warp.LaneIdx ^ mask);
            int oi = Warp.Shuffle(idx, Warp.LaneIdx ^ mask);
            if (Better(ov, oi, v, idx)) { v = ov; idx = oi; }
        }
        if (Warp.LaneIdx == 0) { vals[Warp.WarpIdx] = v; idxs[Warp.WarpIdx] = idx; }
        Group.Barrier();
        v = vals[0]; idx = idxs[0];
        for (int w = 1; w < Group.DimX / Warp.WarpSize; w++)
            if (Better(vals[w], idxs[w], v, idx)) { v = vals[w]; idx = idxs[w]; }
        Group.Barrier();
        return idx;
    }

    /// <summary>Whether (b, ib) beats (a, ia) for an argmax: valid, larger, or equal with the smaller index.</summary>
    public static bool Better(float b, int ib, float a, int ia) => ib >= 0 && (ia < 0 || b > a || (b == a && ib < ia));

    /// <summary>Σ of value over the lanes of a warp, in every lane (butterfly shuffles: log2(warp) steps, no shared memory).</summary>
    public static float WarpSum(float value)
    {
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2) value += Warp.Shuffle(value, Warp.LaneIdx ^ mask);
        return value;
    }

    /// <summary>Largest value over the lanes of a warp, in every lane (butterfly shuffles).</summary>
    public static float WarpMax(float value)
    {
        for (int mask = Warp.WarpSize / 2; mask > 0; mask /= 2) value = XMath.Max(value, Warp.Shuffle(value, Warp.LaneIdx ^ mask));
        return value;
    }
}

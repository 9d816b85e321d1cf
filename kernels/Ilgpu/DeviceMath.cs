using ILGPU;
using ILGPU.Algorithms;

namespace KernelEngine.Kernels.Ilgpu;

/// <summary>
/// Helpers callable from ILGPU kernels (inlined by the compiler): fp16 bit conversions done with integer ops so
/// they compile identically for PTX, OpenCL C and the CPU accelerator (System.Half does not compile in kernels),
/// weight-element reads for every <see cref="WeightType"/>, and shared-memory group reductions (power-of-two groups).
/// </summary>
public static class DeviceMath
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
        if (type == (int)WeightType.Q8_0)
        {
            long off = rowStart + (col / 32) * 34;
            float d = HalfToFloat(w[off] | ((uint)w[off + 1] << 8));
            return d * (sbyte)w[off + 2 + col % 32];
        }
        if (type == (int)WeightType.Q4_0)
        {
            long off = rowStart + (col / 32) * 18;
            float d = HalfToFloat(w[off] | ((uint)w[off + 1] << 8));
            int j = col % 32;
            int b = w[off + 2 + (j & 15)];
            int q = j < 16 ? b & 0x0F : b >> 4;
            return d * (q - 8);
        }
        // The host refuses formats without a device read (IWeightFormat.DeviceReadable) before launching.
        return float.NaN;
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
                if (ib >= 0 && (ia < 0 || b > a || (b == a && ib < ia))) { vals[t] = b; idxs[t] = ib; }
            }
            Group.Barrier();
        }
        int r = idxs[0];
        Group.Barrier();
        return r;
    }
}

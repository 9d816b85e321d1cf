using KernelEngine.Kernels;

namespace KernelEngine.Tests.Kernels;

/// <summary>Plain scalar (double precision) references of every kernel: the definitions the backends are checked against.</summary>
public static class ScalarReference
{
    /// <summary>y (rows, outDim) = x (rows, inDim) · Wᵀ + b, W given already dequantized (outDim, inDim).</summary>
    /// <summary>
    /// The product a backend is expected to compute from stored weights: the CPU's quantized decode (one row,
    /// <paramref name="cpuDecode"/>) quantizes the activation row first, as llama.cpp does (Q8_0 blocks; Q8 per 256 for
    /// the K-quants), so the reference takes x through the same rounding and only summation order separates them. The
    /// ILGPU kernels and prefill dequantize weights and keep activations in F32.
    /// </summary>
    public static float[] MatMulAsComputed(float[] x, int rows, int inDim, byte[] stored, WeightType type, int outDim, float[]? bias, bool cpuDecode)
    {
        bool q8Activations = (type.HasPackedCpuDecode() || KernelEngine.Kernels.MatMul.LegacyQuantMatVecCpu.Handles(type)) && rows <= KernelEngine.Kernels.MatMul.MatVecCpu.MaxRows && cpuDecode;
        bool q8kActivations = KernelEngine.Kernels.MatMul.KQuantMatVecCpu.Handles(type) && rows <= KernelEngine.Kernels.MatMul.MatVecCpu.MaxRows && cpuDecode;
        var xRef = q8Activations ? Dequantize(TestData.Encode(x, WeightType.Q8_0, rows, inDim), WeightType.Q8_0, rows, inDim)
            : q8kActivations ? Q8PerSuperBlock(x) : x;
        return MatMul(xRef, rows, inDim, Dequantize(stored, type, outDim, inDim), outDim, bias);
    }

    public static float[] MatMul(float[] x, int rows, int inDim, float[] w, int outDim, float[]? bias)
    {
        var y = new float[rows * outDim];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outDim; o++)
            {
                double s = bias?[o] ?? 0;
                for (int i = 0; i < inDim; i++) s += (double)x[r * inDim + i] * w[o * inDim + i];
                y[r * outDim + o] = (float)s;
            }
        return y;
    }

    public static float[] RmsNorm(float[] x, float[] w, int rows, int dim, float eps)
    {
        var y = new float[x.Length];
        for (int r = 0; r < rows; r++)
        {
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += (double)x[r * dim + i] * x[r * dim + i];
            double scale = 1 / Math.Sqrt(ss / dim + eps);
            for (int i = 0; i < dim; i++) y[r * dim + i] = (float)(x[r * dim + i] * scale * w[i]);
        }
        return y;
    }

    public static float[] LayerNorm(float[] x, float[] w, float[] b, int rows, int dim, float eps)
    {
        var y = new float[x.Length];
        for (int r = 0; r < rows; r++)
        {
            double mean = 0, var = 0;
            for (int i = 0; i < dim; i++) mean += x[r * dim + i];
            mean /= dim;
            for (int i = 0; i < dim; i++) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
            var /= dim;
            for (int i = 0; i < dim; i++) y[r * dim + i] = (float)((x[r * dim + i] - mean) / Math.Sqrt(var + eps) * w[i] + b[i]);
        }
        return y;
    }

    /// <summary>RoPE in double: pairs (i, i + n) or (2i, 2i + 1) for i &lt; n = invFreq.Length (n &lt; headDim / 2: partial
    /// rotary, the other dimensions pass through), cos and sin times <paramref name="mscale"/>.</summary>
    public static float[] Rope(float[] x, int rows, int heads, int headDim, int[] positions, float[] invFreq, bool interleaved, double mscale = 1)
    {
        var y = (float[])x.Clone();
        int half = invFreq.Length;
        for (int r = 0; r < rows; r++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < half; i++)
                {
                    double a = positions[r] * (double)invFreq[i];
                    int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
                    int b = r * heads * headDim + h * headDim;
                    double u = x[b + i0], v = x[b + i1];
                    y[b + i0] = (float)(mscale * (u * Math.Cos(a) - v * Math.Sin(a)));
                    y[b + i1] = (float)(mscale * (u * Math.Sin(a) + v * Math.Cos(a)));
                }
        return y;
    }

    public static float Silu(float g) => (float)(g / (1 + Math.Exp(-g)));
    public static float Gelu(float x) => (float)(0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))));

    /// <summary>Causal attention; k/v (positions, kvHeads * headDim); query row t at position start + t.</summary>
    /// <param name="window">0, or a sliding window: the row at position p sees keys k with p − k &lt; window</param>
    /// <param name="softCap">0, or score soft-capping: softCap · tanh(score / softCap)</param>
    public static float[] Attention(float[] q, float[] k, float[] v, int rows, int start, int heads, int kvHeads, int headDim, int window = 0, double softCap = 0)
    {
        var o = new float[rows * heads * headDim];
        int kvDim = kvHeads * headDim;
        for (int t = 0; t < rows; t++)
            for (int h = 0; h < heads; h++)
            {
                int kh = h / (heads / kvHeads);
                int n = start + t + 1;
                int lo = window > 0 ? Math.Max(0, start + t - window + 1) : 0;
                var s = new double[n];
                double max = double.NegativeInfinity;
                for (int p = 0; p < n; p++)
                {
                    if (p < lo) { s[p] = double.NegativeInfinity; continue; }
                    double d = 0;
                    for (int i = 0; i < headDim; i++) d += (double)q[t * heads * headDim + h * headDim + i] * k[p * kvDim + kh * headDim + i];
                    s[p] = d / Math.Sqrt(headDim);
                    if (softCap > 0) s[p] = softCap * Math.Tanh(s[p] / softCap);
                    max = Math.Max(max, s[p]);
                }
                double z = 0;
                for (int p = 0; p < n; p++) { s[p] = Math.Exp(s[p] - max); z += s[p]; }
                for (int i = 0; i < headDim; i++)
                {
                    double acc = 0;
                    for (int p = 0; p < n; p++) acc += s[p] / z * v[p * kvDim + kh * headDim + i];
                    o[t * heads * headDim + h * headDim + i] = (float)acc;
                }
            }
        return o;
    }

    /// <summary>(log-sum-exp, entropy nats, log p(token)) of softmax(logits / T), all in double.</summary>
    public static (double Lse, double Entropy, double TokenLogProb) SoftmaxEntropy(float[] logits, double temperature, int token)
    {
        double m = double.NegativeInfinity;
        foreach (float l in logits) m = Math.Max(m, l / temperature);
        double s = 0;
        foreach (float l in logits) s += Math.Exp(l / temperature - m);
        double lse = m + Math.Log(s);
        double h = 0;
        foreach (float l in logits) { double lp = l / temperature - lse; h -= Math.Exp(lp) * lp; }
        return (lse, h, logits[token] / temperature - lse);
    }

    private static float H(byte[] d, int at) => (float)BitConverter.ToHalf(d, at);

    /// <summary>Element c of a row at byte o, from ggml's block layouts (ggml-common.h), one element at a time.</summary>
    private static float GgmlElement(byte[] d, int o, WeightType type, int c)
    {
        int e = c % 32;
        int Nib(int qs) => e < 16 ? d[qs + e] & 0xF : d[qs + e - 16] >> 4;
        switch (type)
        {
            case WeightType.Q4_1: { int b = o + c / 32 * 20; return Nib(b + 4) * H(d, b) + H(d, b + 2); }
            case WeightType.Q5_0: { int b = o + c / 32 * 22; int bit = (int)(BitConverter.ToUInt32(d, b + 2) >> e) & 1; return ((Nib(b + 6) | bit << 4) - 16) * H(d, b); }
            case WeightType.Q5_1: { int b = o + c / 32 * 24; int bit = (int)(BitConverter.ToUInt32(d, b + 4) >> e) & 1; return (Nib(b + 8) | bit << 4) * H(d, b) + H(d, b + 2); }
            case WeightType.Q4_K or WeightType.Q5_K:
            {
                bool five = type == WeightType.Q5_K;
                int b = o + c / 256 * (five ? 176 : 144), k = c % 256, j = k / 32, g = k / 64, l = k % 32;
                int qs = b + (five ? 48 : 16);
                int q = (k % 64) < 32 ? d[qs + 32 * g + l] & 0xF : d[qs + 32 * g + l] >> 4;
                if (five) q += ((d[b + 16 + l] >> j) & 1) * 16;
                int sc, m;
                if (j < 4) { sc = d[b + 4 + j] & 63; m = d[b + 4 + j + 4] & 63; }
                else { sc = (d[b + 4 + j + 4] & 0xF) | ((d[b + 4 + j - 4] >> 6) << 4); m = (d[b + 4 + j + 4] >> 4) | ((d[b + 4 + j] >> 6) << 4); }
                return H(d, b) * sc * q - H(d, b + 2) * m;
            }
            case WeightType.Q6_K:
            {
                int b = o + c / 256 * 210, k = c % 256, h = k / 128, w = k % 128, quarter = w / 32, l = w % 32;
                int ql = d[b + 64 * h + (quarter % 2) * 32 + l];
                int low = quarter < 2 ? ql & 0xF : ql >> 4;
                int high = (d[b + 128 + 32 * h + l] >> (2 * quarter)) & 3;
                return H(d, b + 208) * (sbyte)d[b + 192 + k / 16] * ((low | high << 4) - 32);
            }
            default: throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>x quantized as the CPU's K-quant decode does (8 bits per 256, scale amax / 127, round half to even) and back.</summary>
    public static float[] Q8PerSuperBlock(float[] x)
    {
        var y = new float[x.Length];
        for (int b = 0; b < x.Length / 256; b++)
        {
            float amax = 0;
            for (int j = 0; j < 256; j++) amax = Math.Max(amax, Math.Abs(x[256 * b + j]));
            float dx = amax / 127f, id = dx != 0 ? 1f / dx : 0f;
            for (int j = 0; j < 256; j++) y[256 * b + j] = (float)Math.Round(x[256 * b + j] * id, MidpointRounding.ToEven) * dx;
        }
        return y;
    }

    /// <summary>Dequantizes a whole matrix stored in a weight type (the reference for the kernels' on-the-fly conversion).</summary>
    public static float[] Dequantize(byte[] data, WeightType type, int rows, int cols)
    {
        var y = new float[rows * cols];
        long rowBytes = type.RowBytes(cols);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                long o = r * rowBytes;
                y[r * cols + c] = type switch
                {
                    WeightType.F32 => BitConverter.ToSingle(data, (int)(o + 4 * c)),
                    WeightType.F16 => (float)BitConverter.ToHalf(data, (int)(o + 2 * c)),
                    WeightType.BF16 => BitConverter.Int32BitsToSingle(BitConverter.ToUInt16(data, (int)(o + 2 * c)) << 16),
                    WeightType.Q8_0 => (float)BitConverter.ToHalf(data, (int)(o + c / 32 * 34)) * (sbyte)data[o + c / 32 * 34 + 2 + c % 32],
                    WeightType.Q4_0 => (float)BitConverter.ToHalf(data, (int)(o + c / 32 * 18))
                        * ((c % 32 < 16 ? data[o + c / 32 * 18 + 2 + c % 32] & 0xF : data[o + c / 32 * 18 + 2 + c % 32 - 16] >> 4) - 8),
                    _ => GgmlElement(data, (int)o, type, c),
                };
            }
        return y;
    }
}

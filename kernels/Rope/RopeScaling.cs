namespace KernelEngine.Kernels.Rope;

/// <summary>Inverse frequencies of RoPE, θ^(-2i/d), stretched by the model's <see cref="RopeScaling"/>.</summary>
public static class RopeFrequencies
{
    /// <param name="contextLength">the session's context (longrope picks its long factors above the original length)</param>
    public static float[] Compute(int headDim, double theta, RopeScaling? scaling = null, int contextLength = 0)
    {
        int half = headDim / 2;
        if (scaling is DynamicNtkScaling ntk) theta = ntk.Base(theta, headDim);
        var inv = new float[half];
        for (int i = 0; i < half; i++)
        {
            double f = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
            inv[i] = (float)(scaling?.Apply(f, i, headDim, theta, contextLength) ?? f);
        }
        return inv;
    }
}

/// <summary>
/// How a model stretches RoPE past the context it was trained on (config.json <c>rope_scaling</c>, GGUF
/// <c>rope.scaling.*</c>): a rule per frequency, and an attention factor that multiplies both q and k (so the logits by
/// its square), as Hugging Face's <c>ROPE_INIT_FUNCTIONS</c> define them.
/// </summary>
public abstract record RopeScaling
{
    /// <summary>The inverse frequency of pair i (of headDim / 2) after scaling; f is θ^(-2i/d).</summary>
    public abstract double Apply(double f, int i, int headDim, double theta, int contextLength);
    /// <summary>Factor on the rotated q and k (YaRN's mscale, longrope's attention factor); 1 for the others.</summary>
    public virtual double AttentionFactor(int contextLength) => 1;
}

/// <summary>"linear" (position interpolation): every frequency divided by the factor, i.e. positions / factor.</summary>
public sealed record LinearScaling(double Factor) : RopeScaling
{
    /// <inheritdoc/>
    public override double Apply(double f, int i, int headDim, double theta, int contextLength) => f / Factor;
}

/// <summary>"dynamic" (NTK-aware): θ raised so that the longest wavelength covers factor × the original context, fixed
/// for the largest context (as vLLM computes it: the cached keys must not change frequencies as the context grows).</summary>
public sealed record DynamicNtkScaling(double Factor, int OriginalMaxPositions) : RopeScaling
{
    /// <summary>The raised θ for a head of <paramref name="headDim"/> (θ itself when the factor is at most 1).</summary>
    public double Base(double theta, int headDim) =>
        Factor <= 1 ? theta : theta * Math.Pow(Factor * Factor - (Factor - 1), headDim / (headDim - 2.0));
    /// <inheritdoc/>
    public override double Apply(double f, int i, int headDim, double theta, int contextLength) => f;
}

/// <summary>"yarn": high frequencies (more than BetaFast rotations over the original context) kept, low ones (fewer than
/// BetaSlow) interpolated by the factor, a linear ramp between; attention factor 0.1·ln(factor) + 1 unless given.</summary>
public sealed record YarnScaling(double Factor, int OriginalMaxPositions, double BetaFast = 32, double BetaSlow = 1, double? AttentionFactorOverride = null) : RopeScaling
{
    /// <inheritdoc/>
    public override double Apply(double f, int i, int headDim, double theta, int contextLength)
    {
        double CorrectionDim(double rotations) => headDim * Math.Log(OriginalMaxPositions / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
        double low = Math.Max(Math.Floor(CorrectionDim(BetaFast)), 0);
        double high = Math.Min(Math.Ceiling(CorrectionDim(BetaSlow)), headDim - 1);
        if (low == high) high += 0.001;
        double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
        double extrapolation = 1 - ramp;
        return f / Factor * (1 - extrapolation) + f * extrapolation;
    }

    /// <inheritdoc/>
    public override double AttentionFactor(int contextLength) => AttentionFactorOverride ?? (Factor <= 1 ? 1 : 0.1 * Math.Log(Factor) + 1);
}

/// <summary>"llama3": wavelengths below original/high_freq_factor kept, above original/low_freq_factor divided by the
/// factor, smoothly blended between.</summary>
public sealed record Llama3Scaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositions) : RopeScaling
{
    /// <summary>One inverse frequency after llama3's blend.</summary>
    public double Apply(double invFreq)
    {
        double lowWavelen = OriginalMaxPositions / LowFreqFactor;
        double highWavelen = OriginalMaxPositions / HighFreqFactor;
        double wavelen = 2 * Math.PI / invFreq;
        if (wavelen < highWavelen) return invFreq;
        if (wavelen > lowWavelen) return invFreq / Factor;
        double smooth = (OriginalMaxPositions / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
        return (1 - smooth) * invFreq / Factor + smooth * invFreq;
    }

    /// <inheritdoc/>
    public override double Apply(double f, int i, int headDim, double theta, int contextLength) => Apply(f);
}

/// <summary>"longrope" (Phi-3): one divisor per frequency, the long list when the context exceeds the original length
/// (chosen once per context, as llama.cpp does); attention factor √(1 + ln(max/original) / ln(original)) unless given.</summary>
public sealed record LongRopeScaling(float[] ShortFactor, float[] LongFactor, int OriginalMaxPositions, int MaxPositions, double? AttentionFactorOverride = null) : RopeScaling
{
    /// <inheritdoc/>
    public override double Apply(double f, int i, int headDim, double theta, int contextLength) =>
        f / (contextLength > OriginalMaxPositions ? LongFactor : ShortFactor)[i];

    /// <inheritdoc/>
    public override double AttentionFactor(int contextLength)
    {
        if (AttentionFactorOverride is double a) return a;
        double scale = (double)MaxPositions / OriginalMaxPositions;
        return scale <= 1 ? 1 : Math.Sqrt(1 + Math.Log(scale) / Math.Log(OriginalMaxPositions));
    }
}

namespace KernelEngine.Decoding;

/// <summary>Options of <see cref="Scorer"/>.</summary>
public sealed record ScoreOptions
{
    /// <summary>Window length in tokens (default: the model's context length).</summary>
    public int? Context { get; init; }
    /// <summary>Window start advance in tokens (default: half the window).</summary>
    public int? Stride { get; init; }
    /// <summary>Bias b of the information-capacity formula.</summary>
    public double IcBias { get; init; } = -27;
    /// <summary>Reports (tokens done, total) while scoring long texts.</summary>
    public IProgress<(int Done, int Total)>? Progress { get; init; }
}

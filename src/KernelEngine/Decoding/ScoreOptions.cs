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
    /// <summary>Score only this shard's windows (null: all): windows are dealt out whole, in contiguous runs, so every
    /// token is scored with the context it has in an unsharded run.</summary>
    public ScoreShard? Shard { get; init; }
    /// <summary>Reports (tokens done, total) while scoring long texts.</summary>
    public IProgress<(int Done, int Total)>? Progress { get; init; }
}

/// <summary>Shard <see cref="Index"/> of <see cref="Count"/> (0-based, as a Kubernetes indexed Job or a Slurm array
/// numbers its tasks): it scores windows [Index · W / Count, (Index + 1) · W / Count) of the W a text has.</summary>
public readonly record struct ScoreShard(int Index, int Count)
{
    /// <summary>Reads "I/N".</summary>
    public static ScoreShard Parse(string s)
    {
        var parts = s.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[0], out int i) || !int.TryParse(parts[1], out int n) || n < 1 || i < 0 || i >= n)
            throw new InvalidRequestException($"--shard '{s}' must be I/N with 0 <= I < N");
        return new ScoreShard(i, n);
    }

    /// <summary>The windows [first, end) of this shard out of <paramref name="windows"/>.</summary>
    public (long First, long End) Range(long windows) => (windows * Index / Count, windows * (Index + 1) / Count);

    /// <inheritdoc/>
    public override string ToString() => $"{Index}/{Count}";
}

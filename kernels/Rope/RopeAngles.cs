namespace KernelEngine.Kernels.Rope;

/// <summary>
/// RoPE's rotation table: cos and sin (times mscale) of position · θ_i for each position and pair, formed in double so
/// they stay exact at long positions; (positions, pairs, 2) interleaved, what <see cref="RopeCpu.Apply"/> and the ILGPU
/// RoPE kernels read. Every layer of a forward pass rotates by the same positions, so the calling thread keeps its last
/// table and forms it again only when the positions, the frequencies or mscale change.
/// </summary>
internal static class RopeAngles
{
    [ThreadStatic] private static float[]? t_table;
    [ThreadStatic] private static int[]? t_positions;
    [ThreadStatic] private static int t_count;
    [ThreadStatic] private static float[]? t_invFreq;
    [ThreadStatic] private static float t_mscale;

    /// <summary>The table for <paramref name="positions"/> (positions · invFreq.Length · 2 floats at its start), valid until
    /// this thread asks for another one.</summary>
    public static float[] For(ReadOnlySpan<int> positions, float[] invFreq, float mscale)
    {
        int n = 2 * positions.Length * invFreq.Length;
        if (t_table != null && ReferenceEquals(t_invFreq, invFreq) && t_mscale.Equals(mscale) && t_count == positions.Length
            && positions.SequenceEqual(t_positions.AsSpan(0, t_count)))
            return t_table;
        if (t_table == null || t_table.Length < n) t_table = new float[Math.Max(n, 256)];
        if (t_positions == null || t_positions.Length < positions.Length) t_positions = new int[Math.Max(positions.Length, 16)];
        Fill(positions, invFreq, mscale, t_table);
        positions.CopyTo(t_positions);
        (t_count, t_invFreq, t_mscale) = (positions.Length, invFreq, mscale);
        return t_table;
    }

    /// <summary>Writes the table for <paramref name="positions"/> into <paramref name="cosSin"/>.</summary>
    public static void Fill(ReadOnlySpan<int> positions, ReadOnlySpan<float> invFreq, float mscale, Span<float> cosSin)
    {
        int pairs = invFreq.Length;
        for (int r = 0; r < positions.Length; r++)
            for (int i = 0; i < pairs; i++)
            {
                double angle = positions[r] * (double)invFreq[i];
                cosSin[2 * (r * pairs + i)] = (float)Math.Cos(angle) * mscale;
                cosSin[2 * (r * pairs + i) + 1] = (float)Math.Sin(angle) * mscale;
            }
    }
}

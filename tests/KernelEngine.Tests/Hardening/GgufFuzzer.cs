namespace KernelEngine.Tests.Hardening;

/// <summary>
/// Mutates a real GGUF file: truncations, byte flips in the header and the data, and boundary values written over the
/// header's integers (counts, string and array lengths, dims, types, offsets, the alignment). Deterministic for a seed.
/// </summary>
public sealed class GgufFuzzer(byte[] original, long dataStart, int seed)
{
    private readonly Random _rng = new(seed);
    private static readonly ulong[] Values = [0, 1, 2, 3, 7, 31, 32, 33, 255, 256, 4096, 65535, 1UL << 31, uint.MaxValue, 1UL << 32, 1UL << 40, 1UL << 62, ulong.MaxValue, ulong.MaxValue - 1];

    public (byte[] Data, string What) Next()
    {
        var d = (byte[])original.Clone();
        int header = (int)Math.Min(dataStart, d.Length);
        switch (_rng.Next(5))
        {
            case 0:
            {
                int keep = _rng.Next(d.Length);
                return (d[..keep], $"truncated to {keep}");
            }
            case 1:
            {
                int at = _rng.Next(header);
                d[at] ^= (byte)(1 << _rng.Next(8));
                return (d, $"header bit flip at {at}");
            }
            case 2:
            {
                int at = header + _rng.Next(Math.Max(1, d.Length - header));
                if (at < d.Length) d[at] = (byte)_rng.Next(256);
                return (d, $"data byte at {at}");
            }
            default:
            {
                ulong v = Values[_rng.Next(Values.Length)];
                int width = _rng.Next(2) == 0 ? 4 : 8;
                int at = _rng.Next(Math.Max(1, header - width));
                var bytes = BitConverter.GetBytes(width == 4 ? (ulong)(uint)v : v);
                Array.Copy(bytes, 0, d, at, width);
                return (d, $"u{width * 8} {v} written at {at}");
            }
        }
    }
}

using System.Text;
using System.Text.Json.Nodes;

namespace KernelEngine.Tests.Hardening;

/// <summary>
/// Mutates real model folders the way a bad download, a bad edit or a fuzzer would: truncations, byte flips, header
/// length and count edits, JSON value swaps and deletions in config.json, tokenizer.json and the safetensors header,
/// broken protobuf in tokenizer.model. Each case is a fresh folder: the mutated file written, the others linked to the
/// originals. Deterministic for a seed.
/// </summary>
public sealed class ModelFolderFuzzer(string source, int seed)
{
    private readonly Random _rng = new(seed);
    private readonly string[] _files = Directory.GetFiles(source).Where(f => !f.EndsWith("reference.json", StringComparison.Ordinal)).ToArray();

    /// <summary>Values a JSON field is swapped for: wrong kinds, boundaries, overflows, fractions.</summary>
    private static readonly string[] JsonValues =
    [
        "0", "-1", "1", "2", "3", "7", "-2147483648", "2147483647", "2147483648", "4294967296", "9223372036854775807",
        "18446744073709551616", "1e20", "1e300", "-1e300", "0.5", "64.5", "1e-45", "null", "true", "false", "\"\"", "\"x\"",
        "\"silu\"", "\"llama3\"", "[]", "[1,2]", "[-1]", "{}", "{\"rope_type\":\"llama3\",\"factor\":0}", "\"NaN\"", "512", "100000",
    ];

    public sealed record Case(int Index, string Folder, string Description);

    /// <summary>Writes case <paramref name="index"/> under <paramref name="root"/> and describes the mutation.</summary>
    public Case Next(string root, int index)
    {
        string dir = Path.Combine(root, $"case{index:D5}");
        Directory.CreateDirectory(dir);
        string target = _files[_rng.Next(_files.Length)];
        string name = Path.GetFileName(target);
        byte[] data = File.ReadAllBytes(target);
        string what;
        (data, what) = name.EndsWith(".json", StringComparison.Ordinal) ? MutateJson(data)
            : name.EndsWith(".safetensors", StringComparison.Ordinal) ? MutateSafetensors(data)
            : MutateBinary(data);
        foreach (var f in _files)
        {
            string dst = Path.Combine(dir, Path.GetFileName(f));
            if (f == target) File.WriteAllBytes(dst, data);
            else File.CreateSymbolicLink(dst, f);
        }
        return new Case(index, dir, $"{name}: {what}");
    }

    private (byte[], string) MutateBinary(byte[] data) => _rng.Next(4) switch
    {
        0 => Truncate(data),
        1 => FlipBytes(data, 0, data.Length, 1 + _rng.Next(8)),
        2 => FlipBytes(data, 0, Math.Min(data.Length, 64), 1 + _rng.Next(3)),
        _ => Splice(data),
    };

    private (byte[], string) Truncate(byte[] data)
    {
        int keep = _rng.Next(4) == 0 ? _rng.Next(Math.Min(16, data.Length)) : _rng.Next(data.Length);
        return (data[..keep], $"truncated to {keep} of {data.Length} bytes");
    }

    private (byte[], string) FlipBytes(byte[] data, int from, int to, int count)
    {
        var d = (byte[])data.Clone();
        var at = new List<int>();
        for (int i = 0; i < count && to > from; i++)
        {
            int p = _rng.Next(from, to);
            d[p] = _rng.Next(3) switch { 0 => (byte)(d[p] ^ (1 << _rng.Next(8))), 1 => 0xFF, _ => (byte)_rng.Next(256) };
            at.Add(p);
        }
        return (d, $"bytes changed at {string.Join(",", at)}");
    }

    /// <summary>Copies a random slice of the file over another place in it (repeated structures, wrong lengths).</summary>
    private (byte[], string) Splice(byte[] data)
    {
        var d = (byte[])data.Clone();
        if (d.Length < 4) return Truncate(data);
        int len = 1 + _rng.Next(Math.Min(64, d.Length / 2));
        int src = _rng.Next(d.Length - len), dst = _rng.Next(d.Length - len);
        Array.Copy(data, src, d, dst, len);
        return (d, $"{len} bytes from {src} copied to {dst}");
    }

    private (byte[], string) MutateSafetensors(byte[] data)
    {
        long headerLen = data.Length >= 8 ? BitConverter.ToInt64(data, 0) : 0;
        int header = (int)Math.Clamp(headerLen, 0, data.Length - 8);
        switch (_rng.Next(6))
        {
            case 0: return Truncate(data);
            case 1:
            {
                var d = (byte[])data.Clone();
                long[] lengths = [0, 1, 2, headerLen - 1, headerLen + 1, headerLen * 2, data.Length, long.MaxValue, -1, 1L << 32, 100_000_001];
                long v = lengths[_rng.Next(lengths.Length)];
                BitConverter.GetBytes(v).CopyTo(d, 0);
                return (d, $"header length {headerLen} -> {v}");
            }
            case 2: return FlipBytes(data, 8, 8 + header, 1 + _rng.Next(3));
            case 3: return FlipBytes(data, 8 + header, data.Length, 1 + _rng.Next(16));   // weights: a valid file, other numbers
            default:
            {
                // Edit the JSON header's text: numbers (shapes, offsets) and strings (dtypes, names).
                string text = Encoding.UTF8.GetString(data, 8, header);
                var (edited, what) = _rng.Next(2) == 0 ? SwapNumber(text) : SwapJsonValue(text);
                var h = Encoding.UTF8.GetBytes(edited);
                var d = new byte[8 + h.Length + (data.Length - 8 - header)];
                BitConverter.GetBytes((long)h.Length).CopyTo(d, 0);
                h.CopyTo(d, 8);
                Array.Copy(data, 8 + header, d, 8 + h.Length, data.Length - 8 - header);
                return (d, "header: " + what);
            }
        }
    }

    private (string, string) SwapNumber(string text)
    {
        var spots = new List<(int Start, int Length)>();
        for (int i = 0; i < text.Length; i++)
        {
            if (!char.IsAsciiDigit(text[i]) || (i > 0 && (char.IsAsciiDigit(text[i - 1]) || char.IsAsciiLetter(text[i - 1]) || text[i - 1] == '_' || text[i - 1] == '.'))) continue;
            int j = i;
            while (j < text.Length && char.IsAsciiDigit(text[j])) j++;
            if (j < text.Length && (char.IsAsciiLetter(text[j]) || text[j] == '_' || text[j] == '.')) { i = j; continue; }
            spots.Add((i, j - i));
            i = j;
        }
        if (spots.Count == 0) return (text, "no number to change");
        var (s, l) = spots[_rng.Next(spots.Count)];
        string[] values = ["0", "1", "2147483648", "4294967296", "9223372036854775807", "99999999999999999999", "-1", "3", "64", "65"];
        string v = values[_rng.Next(values.Length)];
        return (text[..s] + v + text[(s + l)..], $"number {text.Substring(s, l)} at {s} -> {v}");
    }

    private (byte[], string) MutateJson(byte[] data)
    {
        string text = Encoding.UTF8.GetString(data);
        switch (_rng.Next(5))
        {
            case 0: return Truncate(data);
            case 1: return FlipBytes(data, 0, data.Length, 1 + _rng.Next(3));
            case 2: { var (t, w) = SwapNumber(text); return (Encoding.UTF8.GetBytes(t), w); }
            default: { var (t, w) = SwapJsonValue(text); return (Encoding.UTF8.GetBytes(t), w); }
        }
    }

    /// <summary>Replaces (or deletes) one value of a JSON document, chosen among all of its values at any depth.</summary>
    private (string, string) SwapJsonValue(string text)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(text); }
        catch (System.Text.Json.JsonException) { return (text, "not JSON: unchanged"); }
        if (root == null) return (text, "null document");
        var slots = new List<(JsonNode Parent, string? Key, int Index)>();
        void Walk(JsonNode n, int depth)
        {
            if (slots.Count > 200_000 || depth > 6) return;
            if (n is JsonObject o)
                foreach (var (k, v) in o.ToList()) { slots.Add((o, k, -1)); if (v != null) Walk(v, depth + 1); }
            else if (n is JsonArray a)
            {
                // Long arrays (merges): sample a few elements.
                int step = Math.Max(1, a.Count / 64);
                for (int i = 0; i < a.Count; i += step) { slots.Add((a, null, i)); if (a[i] != null) Walk(a[i]!, depth + 1); }
            }
        }
        Walk(root, 0);
        if (slots.Count == 0) return ("[]", "document replaced by []");
        var (parent, key, index) = slots[_rng.Next(slots.Count)];
        bool delete = _rng.Next(5) == 0;
        string value = JsonValues[_rng.Next(JsonValues.Length)];
        string where = key ?? $"[{index}]";
        if (parent is JsonObject po)
        {
            if (delete) po.Remove(key!);
            else po[key!] = JsonNode.Parse(value);
        }
        else if (parent is JsonArray pa)
        {
            if (delete) pa.RemoveAt(index);
            else pa[index] = JsonNode.Parse(value);
        }
        return (root.ToJsonString(), delete ? $"'{where}' deleted" : $"'{where}' -> {value}");
    }
}

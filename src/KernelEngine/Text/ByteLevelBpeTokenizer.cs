using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace KernelEngine.Text;

/// <summary>
/// Byte-level BPE (GPT-2, Qwen2, Llama 3) from <c>vocab.json</c> + <c>merges.txt</c> or a Hugging Face
/// <c>tokenizer.json</c>. The BPE runs in Microsoft.ML.Tokenizers' <see cref="TiktokenTokenizer"/>: every merged
/// token gets rank 256 + its merge index (single bytes rank 0..255), which makes tiktoken's "lowest-rank pair
/// first" rule the merges list's order, and ranks are mapped back to the vocabulary's ids. (The library's
/// CodeGen/BPE tokenizers over the same files miss runs of spaces; this path matches every test vector.)
/// Added tokens (special or not) are split out of the text first, longest first, as Hugging Face does.
/// </summary>
public sealed class ByteLevelBpeTokenizer : Tokenizer
{
    internal const string Gpt2Pattern = PreTokenizerPatterns.Gpt2;

    private readonly TiktokenTokenizer _bpe;
    private readonly int[] _rankToId;
    private readonly byte[][] _bytes;
    private readonly string[] _pieces;
    private readonly Regex? _added;
    private readonly Dictionary<string, int> _addedIds;

    /// <summary>The Microsoft.ML.Tokenizers tokenizer underneath.</summary>
    public TiktokenTokenizer Library => _bpe;

    private ByteLevelBpeTokenizer(string source, Dictionary<string, int> vocab, List<(string A, string B)> merges,
        Dictionary<string, int> added, string pattern)
    {
        var unicodeToByte = UnicodeToByte();
        foreach (var (piece, id) in vocab.Concat(added))
            if (id < 0 || id >= Formats.ModelConfig.Limits.MaxVocab)
                throw new TokenizerException($"{source}: token '{piece}' has id {id}, outside 0..{Formats.ModelConfig.Limits.MaxVocab - 1}");
        int size = Math.Max(vocab.Count == 0 ? 0 : vocab.Values.Max() + 1, added.Count == 0 ? 0 : added.Values.Max() + 1);
        _pieces = new string[size];
        _bytes = new byte[size][];
        foreach (var (piece, id) in vocab)
        {
            _pieces[id] = piece;
            var b = new byte[piece.Length];
            bool ok = true;
            for (int i = 0; i < piece.Length; i++)
            {
                if (!unicodeToByte.TryGetValue(piece[i], out b[i])) { ok = false; break; }
            }
            _bytes[id] = ok ? b : Encoding.UTF8.GetBytes(piece);
        }
        foreach (var (content, id) in added)
        {
            _pieces[id] = content;
            _bytes[id] = Encoding.UTF8.GetBytes(content);
        }
        for (int i = 0; i < size; i++) { _pieces[i] ??= ""; _bytes[i] ??= []; }

        // Ranks: bytes 0..255, then 256 + merge index for each merged token.
        var rankToId = new List<int>(256 + merges.Count);
        var sb = new StringBuilder();
        var byteToUnicode = unicodeToByte.ToDictionary(kv => kv.Value, kv => kv.Key);
        for (int b = 0; b < 256; b++)
        {
            string piece = byteToUnicode[(byte)b].ToString();
            if (!vocab.TryGetValue(piece, out int id)) throw new TokenizerException($"{source}: byte-level vocabulary lacks the single-byte token '{piece}'");
            rankToId.Add(id);
            sb.Append(Convert.ToBase64String([(byte)b])).Append(' ').Append(b).Append('\n');
        }
        var seen = new HashSet<string>();
        foreach (var (a, bb) in merges)
        {
            string merged = a + bb;
            if (!vocab.TryGetValue(merged, out int id)) throw new TokenizerException($"{source}: merge '{a} {bb}' gives '{merged}', which is not in the vocabulary");
            if (!seen.Add(merged)) continue;
            sb.Append(Convert.ToBase64String(_bytes[id])).Append(' ').Append(rankToId.Count).Append('\n');
            rankToId.Add(id);
        }
        _rankToId = rankToId.ToArray();
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(sb.ToString()));
        _bpe = TiktokenTokenizer.Create(stream, new RegexPreTokenizer(PreTokenizerPatterns.For(pattern), null), null);
        _addedIds = added;
        if (added.Count > 0)
            _added = new Regex(string.Join("|", added.Keys.OrderByDescending(k => k.Length).Select(Regex.Escape)));
    }

    /// <inheritdoc/>
    public override int VocabSize => _pieces.Length;
    /// <inheritdoc/>
    public override ReadOnlySpan<byte> TokenBytes(int id) { CheckId(id); return _bytes[id]; }
    /// <inheritdoc/>
    public override string Piece(int id) { CheckId(id); return _pieces[id]; }

    /// <inheritdoc/>
    protected override void EncodeCore(string text, List<int> ids)
    {
        int pos = 0;
        if (_added != null)
        {
            foreach (Match m in _added.Matches(text))
            {
                EncodeBpe(text.AsSpan(pos, m.Index - pos), ids);
                ids.Add(_addedIds[m.Value]);
                pos = m.Index + m.Length;
            }
        }
        EncodeBpe(text.AsSpan(pos), ids);
    }

    private void EncodeBpe(ReadOnlySpan<char> text, List<int> ids)
    {
        if (text.IsEmpty) return;
        foreach (int rank in _bpe.EncodeToIds(text.ToString())) ids.Add(_rankToId[rank]);
    }

    /// <summary>From GGUF metadata: tokens in id order (byte-level spelling), their llama.cpp types (control and
    /// user-defined tokens are split out of the text first), merges as "a b" lines, and the pre-tokenizer regex.</summary>
    public static ByteLevelBpeTokenizer FromGgufVocabulary(string source, string[] tokens, long[]? types, string[] merges, string pattern)
    {
        var vocab = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++)
        {
            long ty = types?[i] ?? 1;
            if (ty is 3 or 4) { if (tokens[i].Length > 0) added.TryAdd(tokens[i], i); }
            else vocab.TryAdd(tokens[i], i);
        }
        var pairs = new List<(string, string)>(merges.Length);
        foreach (var m in merges)
        {
            int sp = m.IndexOf(' ');
            if (sp <= 0) throw new TokenizerException($"{source}: merge '{m}' is not two tokens separated by a space");
            pairs.Add((m[..sp], m[(sp + 1)..]));
        }
        return new ByteLevelBpeTokenizer(source, vocab, pairs, added, pattern);
    }

    /// <summary>GPT-2 style folder files: vocab.json (encoder.json) + merges.txt (vocab.bpe).</summary>
    public static ByteLevelBpeTokenizer FromVocabAndMerges(string vocabPath, string mergesPath)
    {
        var vocab = ReadJson(vocabPath, root => root.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32()));
        var merges = new List<(string, string)>();
        foreach (var line in File.ReadLines(mergesPath))
        {
            if (line.StartsWith("#version") || line.Length == 0) continue;
            int sp = line.IndexOf(' ');
            if (sp <= 0) throw new TokenizerException($"{mergesPath}: bad merge line '{line}'");
            merges.Add((line[..sp], line[(sp + 1)..]));
        }
        var added = new Dictionary<string, int>();
        if (vocab.TryGetValue("<|endoftext|>", out int eot)) added["<|endoftext|>"] = eot;
        return new ByteLevelBpeTokenizer(vocabPath, vocab, merges, added, Gpt2Pattern);
    }

    /// <summary>A Hugging Face tokenizer.json whose model is BPE over ByteLevel pre-tokenization.</summary>
    public static ByteLevelBpeTokenizer FromTokenizerJson(string path) => ReadJson(path, root =>
    {
        if (!root.TryGetProperty("model", out var model) || model.TryGetProperty("type", out var t) && t.GetString() != "BPE")
            throw new TokenizerException($"{path}: only BPE tokenizer.json models are supported");
        if (!model.TryGetProperty("vocab", out var v) || !model.TryGetProperty("merges", out var m))
            throw new TokenizerException($"{path}: model lacks 'vocab' or 'merges'");
        string raw = root.TryGetProperty("pre_tokenizer", out var pt) ? pt.GetRawText() : "";
        if (!raw.Contains("ByteLevel")) throw new TokenizerException($"{path}: not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer)");
        var vocab = v.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
        var merges = new List<(string, string)>();
        foreach (var e in m.EnumerateArray())
        {
            if (e.ValueKind == JsonValueKind.String)
            {
                string s = e.GetString()!;
                int sp = s.IndexOf(' ');
                if (sp <= 0) throw new TokenizerException($"{path}: merge '{s}' is not two tokens separated by a space");
                merges.Add((s[..sp], s[(sp + 1)..]));
            }
            else if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 2 && e[0].ValueKind == JsonValueKind.String && e[1].ValueKind == JsonValueKind.String)
                merges.Add((e[0].GetString()!, e[1].GetString()!));
            else throw new TokenizerException($"{path}: merge {e.GetRawText()} is not a pair of tokens");
        }
        var added = new Dictionary<string, int>();
        if (root.TryGetProperty("added_tokens", out var at))
            foreach (var a in at.EnumerateArray()) added[a.GetProperty("content").GetString()!] = a.GetProperty("id").GetInt32();
        return new ByteLevelBpeTokenizer(path, vocab, merges, added, SplitPattern(pt) ?? Gpt2Pattern);
    });

    private static string? SplitPattern(JsonElement pre)
    {
        if (pre.ValueKind != JsonValueKind.Object) return null;
        if (pre.TryGetProperty("type", out var t) && t.GetString() == "Split" && pre.TryGetProperty("pattern", out var p) && p.TryGetProperty("Regex", out var r))
            return r.GetString();
        if (pre.TryGetProperty("pretokenizers", out var list))
            foreach (var x in list.EnumerateArray()) if (SplitPattern(x) is string s) return s;
        return null;
    }

    private static T ReadJson<T>(string path, Func<JsonElement, T> read)
    {
        try
        {
            var bytes = File.ReadAllBytes(path);
            int bom = bytes.Length >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0;
            using var doc = JsonDocument.Parse(bytes.AsMemory(bom));
            return read(doc.RootElement);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or KeyNotFoundException or FormatException or ArgumentException or IndexOutOfRangeException)
        {
            throw new TokenizerException($"{path}: not a readable tokenizer file ({e.Message})", e);
        }
        catch (IOException e)
        {
            throw new TokenizerException($"{path}: cannot read ({e.Message})", e);
        }
    }

    /// <summary>GPT-2's bytes_to_unicode, inverted: printable bytes map to themselves, the rest to 256 + n.</summary>
    private static Dictionary<char, byte> UnicodeToByte()
    {
        var map = new Dictionary<char, byte>();
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= 33 and <= 126 or >= 161 and <= 172 or >= 174 and <= 255;
            map[printable ? (char)b : (char)(256 + n++)] = (byte)b;
        }
        return map;
    }
}

using System.Text;

namespace KernelEngine.Text;

/// <summary>
/// A model's tokenizer: text to ids and back, plus the raw bytes of each token so that streamed output can be
/// decoded incrementally (a multi-byte character may span tokens). Ids never include BOS unless asked.
/// </summary>
public abstract class Tokenizer
{
    public abstract int VocabSize { get; }
    public int? BosId { get; internal set; }
    public IReadOnlyList<int> EosIds { get; internal set; } = [];

    /// <summary>Encodes text; prepends BOS when <paramref name="addBos"/> and the model has one.</summary>
    public int[] Encode(string text, bool addBos = false)
    {
        var ids = new List<int>();
        if (addBos && BosId is int b) ids.Add(b);
        EncodeCore(text, ids);
        return ids.ToArray();
    }

    protected abstract void EncodeCore(string text, List<int> ids);

    private string[]? _controlPieces;

    /// <summary>Encodes a rendered chat prompt: the text of control tokens (BOS, EOS, &lt;|im_start|&gt;, ...) becomes those tokens,
    /// as llama.cpp's parse_special and Hugging Face's added tokens do; no BOS is added (templates write it).</summary>
    public int[] EncodeWithSpecialTokens(string text)
    {
        _controlPieces ??= Enumerable.Range(0, VocabSize).Where(i => TokenBytes(i).IsEmpty && Piece(i).Length > 1).Select(Piece).Distinct()
            .OrderByDescending(p => p.Length).ToArray();
        var ids = new List<int>();
        int pos = 0;
        while (pos < text.Length)
        {
            int best = -1; string? piece = null;
            foreach (var p in _controlPieces)
            {
                int at = text.IndexOf(p, pos, StringComparison.Ordinal);
                if (at >= 0 && (best < 0 || at < best)) { best = at; piece = p; }
            }
            if (best < 0) { EncodeCore(text[pos..], ids); break; }
            if (best > pos) EncodeCore(text[pos..best], ids);
            ids.Add(SpecialId(piece!));
            pos = best + piece!.Length;
        }
        return ids.ToArray();
    }

    private Dictionary<string, int>? _controlIds;

    private int SpecialId(string piece)
    {
        _controlIds ??= Enumerable.Range(0, VocabSize).Where(i => TokenBytes(i).IsEmpty && Piece(i).Length > 1)
            .GroupBy(Piece).ToDictionary(g => g.Key, g => g.First());
        return _controlIds[piece];
    }

    /// <summary>The bytes a token stands for in the text (empty for control tokens).</summary>
    public abstract ReadOnlySpan<byte> TokenBytes(int id);

    /// <summary>The token as the vocabulary spells it (e.g. "▁time", "Ġtime", "&lt;0x0A&gt;").</summary>
    public abstract string Piece(int id);

    /// <summary>True when the decoder drops one leading space at the start of a text (SentencePiece's dummy prefix).</summary>
    public virtual bool StripsLeadingSpace => false;

    public string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        bool first = true;
        foreach (int id in ids)
        {
            CheckId(id);
            var b = TokenBytes(id);
            if (b.IsEmpty) continue;
            int skip = first && StripsLeadingSpace && b[0] == (byte)' ' ? 1 : 0;
            first = false;
            for (int i = skip; i < b.Length; i++) bytes.Add(b[i]);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    public void CheckId(int id)
    {
        if ((uint)id >= (uint)VocabSize) throw new TokenizerException($"token id {id} is outside the tokenizer's vocabulary (0..{VocabSize - 1})");
    }

    public bool IsEos(int id)
    {
        foreach (int e in EosIds) if (e == id) return true;
        return false;
    }
}

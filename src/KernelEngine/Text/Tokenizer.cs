using System.Text;

namespace KernelEngine.Text;

/// <summary>
/// A model's tokenizer: text to ids and back, plus the raw bytes of each token so that streamed output can be
/// decoded incrementally (a multi-byte character may span tokens). Ids never include BOS unless asked.
/// </summary>
public abstract class Tokenizer
{
    /// <summary>Token ids run from 0 to this − 1.</summary>
    public abstract int VocabSize { get; }
    /// <summary>The beginning-of-text token, or null.</summary>
    public int? BosId { get; internal set; }
    /// <summary>Tokens that end generation.</summary>
    public IReadOnlyList<int> EosIds { get; internal set; } = [];

    /// <summary>Encodes text; prepends BOS when <paramref name="addBos"/> and the model has one.</summary>
    public int[] Encode(string text, bool addBos = false)
    {
        var ids = new List<int>();
        if (addBos && BosId is int b) ids.Add(b);
        EncodeCore(text, ids);
        return ids.ToArray();
    }

    /// <summary>Appends the ids of <paramref name="text"/> (plain text, no special tokens) to <paramref name="ids"/>.</summary>
    protected abstract void EncodeCore(string text, List<int> ids);

    /// <summary>Control tokens by their text, and one pattern that finds any of them (longest first), built on first use.</summary>
    private (Dictionary<string, int> Ids, System.Text.RegularExpressions.Regex? Pattern)? _control;

    /// <summary>Encodes a rendered chat prompt: the text of control tokens (BOS, EOS, &lt;|im_start|&gt;, ...) becomes those tokens,
    /// as llama.cpp's parse_special and Hugging Face's added tokens do; no BOS is added (templates write it).</summary>
    public int[] EncodeWithSpecialTokens(string text)
    {
        var (controlIds, pattern) = _control ??= ControlTokens();
        var ids = new List<int>();
        int pos = 0;
        if (pattern != null)
            foreach (System.Text.RegularExpressions.Match m in pattern.Matches(text))
            {
                if (m.Index > pos) EncodeCore(text[pos..m.Index], ids);
                ids.Add(controlIds[m.Value]);
                pos = m.Index + m.Length;
            }
        if (pos < text.Length) EncodeCore(text[pos..], ids);
        return ids.ToArray();
    }

    private (Dictionary<string, int>, System.Text.RegularExpressions.Regex?) ControlTokens()
    {
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < VocabSize; i++)
            if (TokenBytes(i).IsEmpty && Piece(i) is { Length: > 1 } piece) ids.TryAdd(piece, i);
        var pattern = ids.Count == 0 ? null
            : new System.Text.RegularExpressions.Regex(string.Join("|", ids.Keys.OrderByDescending(k => k.Length).Select(System.Text.RegularExpressions.Regex.Escape)));
        return (ids, pattern);
    }

    /// <summary>The bytes a token stands for in the text (empty for control tokens).</summary>
    public abstract ReadOnlySpan<byte> TokenBytes(int id);

    /// <summary>The token as the vocabulary spells it (e.g. "▁time", "Ġtime", "&lt;0x0A&gt;").</summary>
    public abstract string Piece(int id);

    /// <summary>True when the decoder drops one leading space at the start of a text (SentencePiece's dummy prefix).</summary>
    public virtual bool StripsLeadingSpace => false;

    /// <summary>The text of <paramref name="ids"/> (invalid UTF-8 as U+FFFD).</summary>
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

    internal void CheckId(int id)
    {
        if ((uint)id >= (uint)VocabSize) throw new TokenizerException($"token id {id} is outside the tokenizer's vocabulary (0..{VocabSize - 1})");
    }

    /// <summary>True for an end token.</summary>
    public bool IsEos(int id)
    {
        foreach (int e in EosIds) if (e == id) return true;
        return false;
    }
}

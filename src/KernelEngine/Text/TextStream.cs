using System.Runtime.CompilerServices;
using System.Text;

namespace KernelEngine.Text;

/// <summary>
/// Turns a stream of token ids into text incrementally: bytes go through a UTF-8 decoder that holds back an
/// incomplete character until its last byte arrives. Drops the SentencePiece dummy-prefix space at the start.
/// </summary>
public sealed class TextStream
{
    private readonly Tokenizer _tok;
    private readonly Decoder _utf8 = Encoding.UTF8.GetDecoder();
    private readonly char[] _chars = new char[64];
    private bool _atStart;

    /// <summary>Decodes a token stream of <paramref name="tokenizer"/>; <paramref name="atStartOfText"/> drops the leading space SentencePiece adds to the first token.</summary>
    public TextStream(Tokenizer tokenizer, bool atStartOfText)
    {
        _tok = tokenizer;
        _atStart = atStartOfText;
    }

    /// <summary>The text <paramref name="id"/> completes: empty while a UTF-8 sequence is still open.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public string Push(int id)
    {
        var bytes = _tok.TokenBytes(id);
        if (bytes.IsEmpty) return "";
        if (_atStart && _tok.StripsLeadingSpace && bytes[0] == (byte)' ') bytes = bytes[1..];
        _atStart = false;
        var sb = new StringBuilder();
        while (!bytes.IsEmpty)
        {
            int take = Math.Min(bytes.Length, 16);
            int n = _utf8.GetChars(bytes[..take], _chars, flush: false);
            sb.Append(_chars, 0, n);
            bytes = bytes[take..];
        }
        return sb.ToString();
    }
}

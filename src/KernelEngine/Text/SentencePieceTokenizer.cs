using System.Text;
using Microsoft.ML.Tokenizers;

namespace KernelEngine.Text;

/// <summary>
/// SentencePiece tokenizer (Llama / Mistral <c>tokenizer.model</c>, BPE with byte fallback).
/// Microsoft.ML.Tokenizers' <see cref="LlamaTokenizer"/> loads and validates the model, but its BPE breaks ties
/// between equal-score merges differently from SentencePiece (runs of repeated symbols: "!!!!!!" gives
/// 1738 21004 6824, SentencePiece 1738 6824 21004). So encoding is done here with SentencePiece's own rule:
/// merge the adjacent pair whose piece has the highest score, ties to the leftmost pair, then byte fallback
/// for symbols outside the vocabulary.
/// </summary>
public sealed class SentencePieceTokenizer : Tokenizer
{
    private const char Space = '\u2581'; // ▁
    private readonly SentencePieceModel _model;
    private readonly Dictionary<string, int> _mergeable = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly int[] _byteIds = new int[256];
    private readonly byte[][] _bytes;
    private readonly int _unkId;

    /// <summary>The Microsoft.ML.Tokenizers tokenizer underneath.</summary>
    public Microsoft.ML.Tokenizers.SentencePieceTokenizer Library { get; }

    /// <summary>Reads a SentencePiece <c>tokenizer.model</c> file.</summary>
    public SentencePieceTokenizer(string path) : this(path, ReadFile(path)) { }

    private static byte[] ReadFile(string path)
    {
        try { return File.ReadAllBytes(path); }
        catch (IOException e) { throw new TokenizerException($"{path}: cannot read ({e.Message})", e); }
    }

    /// <summary>From a serialized ModelProto (a tokenizer.model's bytes, or one built from GGUF metadata).</summary>
    internal SentencePieceTokenizer(string path, byte[] data)
    {
        _model = SentencePieceModel.Parse(path, data);
        try
        {
            using var ms = new MemoryStream(data);
            Library = LlamaTokenizer.Create(ms, addBeginningOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not TokenizerException)
        {
            throw new TokenizerException($"{path}: not a SentencePiece model Microsoft.ML.Tokenizers can load ({e.Message})", e);
        }
        if (_model.ModelType != 2) throw new TokenizerException($"{path}: SentencePiece model type {_model.ModelType} is not supported (BPE = 2)");
        _unkId = Array.IndexOf(_model.Types, SentencePieceModel.PieceType.Unknown);
        Array.Fill(_byteIds, -1);
        _bytes = new byte[_model.Pieces.Length][];
        for (int id = 0; id < _model.Pieces.Length; id++)
        {
            string p = _model.Pieces[id];
            switch (_model.Types[id])
            {
                case SentencePieceModel.PieceType.Normal or SentencePieceModel.PieceType.UserDefined or SentencePieceModel.PieceType.Unused:
                    _mergeable.TryAdd(p, id);
                    _bytes[id] = Encoding.UTF8.GetBytes(p.Replace(Space, ' '));
                    break;
                case SentencePieceModel.PieceType.Byte:
                    if (!(p.Length == 6 && p.StartsWith("<0x") && p.EndsWith('>')
                          && byte.TryParse(p.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte b)))
                        throw new TokenizerException($"{path}: byte piece {id} is '{p}', not <0xNN>");
                    _byteIds[b] = id;
                    _bytes[id] = [b];
                    break;
                default:
                    _bytes[id] = [];
                    break;
            }
        }
        _lookup = _mergeable.GetAlternateLookup<ReadOnlySpan<char>>();
    }

    /// <inheritdoc/>
    public override int VocabSize => _model.Pieces.Length;
    /// <inheritdoc/>
    public override bool StripsLeadingSpace => _model.AddDummyPrefix;
    /// <inheritdoc/>
    public override ReadOnlySpan<byte> TokenBytes(int id) { CheckId(id); return _bytes[id]; }
    /// <inheritdoc/>
    public override string Piece(int id) { CheckId(id); return _model.Pieces[id]; }

    private struct Symbol { public int Start, Length, Prev, Next; }

    /// <inheritdoc/>
    protected override void EncodeCore(string text, List<int> ids)
    {
        if (text.Length == 0) return;
        if (_model.RemoveExtraWhitespaces) text = string.Join(' ', text.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        if (text.Length == 0) return;
        var norm = new StringBuilder(text.Length + 1);
        if (_model.AddDummyPrefix) norm.Append(Space);
        norm.Append(text.Replace(' ', Space));
        string s = norm.ToString();

        // One symbol per Unicode scalar (surrogate pairs stay together).
        var symbols = new List<Symbol>(s.Length);
        for (int i = 0; i < s.Length;)
        {
            int len = char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;
            symbols.Add(new Symbol { Start = i, Length = len, Prev = symbols.Count - 1, Next = symbols.Count + 1 });
            i += len;
        }
        var sym = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(symbols);
        sym[^1].Next = -1;

        // Agenda: highest score first, then leftmost.
        var agenda = new PriorityQueue<(int Left, int Right, int Length), (float NegScore, int Left)>();
        void Push(Span<Symbol> sy, int left, int right)
        {
            if (left < 0 || right < 0) return;
            int len = sy[left].Length + sy[right].Length;
            if (_lookup.TryGetValue(s.AsSpan(sy[left].Start, len), out int id))
                agenda.Enqueue((left, right, len), (-_model.Scores[id], left));
        }
        for (int i = 0; i + 1 < sym.Length; i++) Push(sym, i, i + 1);
        while (agenda.TryDequeue(out var pair, out _))
        {
            ref var l = ref sym[pair.Left];
            ref var r = ref sym[pair.Right];
            if (l.Length == 0 || r.Length == 0 || l.Next != pair.Right || l.Length + r.Length != pair.Length) continue;
            l.Length += r.Length;
            l.Next = r.Next;
            if (r.Next >= 0) sym[r.Next].Prev = pair.Left;
            r.Length = 0;
            Push(sym, l.Prev, pair.Left);
            Push(sym, pair.Left, l.Next);
        }

        Span<byte> utf8 = stackalloc byte[8];
        for (int i = 0; i >= 0; i = sym[i].Next)
        {
            var piece = s.AsSpan(sym[i].Start, sym[i].Length);
            if (_lookup.TryGetValue(piece, out int id)) { ids.Add(id); continue; }
            if (_model.ByteFallback && _byteIds[0] >= 0)
            {
                int n = Encoding.UTF8.GetBytes(piece.ToString().Replace(Space, ' '), utf8);
                for (int k = 0; k < n; k++)
                {
                    int byteId = _byteIds[utf8[k]] >= 0 ? _byteIds[utf8[k]] : _unkId;
                    if (byteId < 0) throw new TokenizerException($"cannot encode '{piece}': the model has no piece for byte 0x{utf8[k]:X2}");
                    ids.Add(byteId);
                }
            }
            else if (_unkId >= 0) ids.Add(_unkId);
            else throw new TokenizerException($"cannot encode '{piece}': no such piece and no byte fallback");
        }
    }
}

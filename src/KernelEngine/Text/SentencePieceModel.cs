using System.Text;

namespace KernelEngine.Text;

/// <summary>
/// The parts of a SentencePiece <c>tokenizer.model</c> (protobuf ModelProto) that encoding needs: pieces with
/// their scores and types, the model type and the normalizer flags. A minimal protobuf reader: unknown fields
/// are skipped, malformed varints or lengths are reported with the file name.
/// </summary>
internal sealed class SentencePieceModel
{
    public enum PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

    public required string[] Pieces { get; init; }
    public required float[] Scores { get; init; }
    public required PieceType[] Types { get; init; }
    public int ModelType { get; init; } = 1;          // 1 unigram, 2 bpe
    public bool AddDummyPrefix { get; init; } = true;
    public bool RemoveExtraWhitespaces { get; init; } = true;
    public bool ByteFallback { get; init; }

    public static SentencePieceModel Parse(string path, byte[] data)
    {
        var pieces = new List<string>(); var scores = new List<float>(); var types = new List<PieceType>();
        int modelType = 1; bool dummy = true, removeWs = true, byteFallback = false;
        var r = new Reader(path, data, 0, data.Length);
        while (!r.End)
        {
            var (field, wire) = r.Tag();
            if (field == 1 && wire == 2)
            {
                var m = r.Sub();
                string piece = ""; float score = 0; var type = PieceType.Normal;
                while (!m.End)
                {
                    var (f, w) = m.Tag();
                    if (f == 1 && w == 2) piece = Encoding.UTF8.GetString(m.Bytes());
                    else if (f == 2 && w == 5) score = m.Fixed32();
                    else if (f == 3 && w == 0) type = (PieceType)m.Varint();
                    else m.Skip(w);
                }
                pieces.Add(piece); scores.Add(score); types.Add(type);
            }
            else if (field == 2 && wire == 2)
            {
                var m = r.Sub();
                while (!m.End)
                {
                    var (f, w) = m.Tag();
                    if (f == 3 && w == 0) modelType = (int)m.Varint();
                    else if (f == 35 && w == 0) byteFallback = m.Varint() != 0;
                    else m.Skip(w);
                }
            }
            else if (field == 3 && wire == 2)
            {
                var m = r.Sub();
                while (!m.End)
                {
                    var (f, w) = m.Tag();
                    if (f == 3 && w == 0) dummy = m.Varint() != 0;
                    else if (f == 4 && w == 0) removeWs = m.Varint() != 0;
                    else m.Skip(w);
                }
            }
            else r.Skip(wire);
        }
        if (pieces.Count == 0) throw new TokenizerException($"{path}: not a SentencePiece model (no pieces found)");
        return new SentencePieceModel
        {
            Pieces = pieces.ToArray(), Scores = scores.ToArray(), Types = types.ToArray(), ModelType = modelType,
            AddDummyPrefix = dummy, RemoveExtraWhitespaces = removeWs, ByteFallback = byteFallback,
        };
    }

    /// <summary>Serializes the fields this reader knows as a ModelProto (for tokenizers rebuilt from GGUF metadata).</summary>
    public byte[] ToProto()
    {
        using var ms = new MemoryStream();
        void Varint(Stream s, ulong v) { while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; } s.WriteByte((byte)v); }
        void Tag(Stream s, int field, int wire) => Varint(s, (ulong)(field << 3 | wire));
        void Message(int field, Action<Stream> body)
        {
            using var inner = new MemoryStream();
            body(inner);
            Tag(ms, field, 2);
            Varint(ms, (ulong)inner.Length);
            inner.WriteTo(ms);
        }
        for (int i = 0; i < Pieces.Length; i++)
        {
            int id = i;
            Message(1, s =>
            {
                var b = Encoding.UTF8.GetBytes(Pieces[id]);
                Tag(s, 1, 2); Varint(s, (ulong)b.Length); s.Write(b);
                Tag(s, 2, 5); s.Write(BitConverter.GetBytes(Scores[id]));
                Tag(s, 3, 0); Varint(s, (ulong)Types[id]);
            });
        }
        Message(2, s => { Tag(s, 3, 0); Varint(s, (ulong)ModelType); Tag(s, 35, 0); Varint(s, ByteFallback ? 1u : 0u); });
        Message(3, s => { Tag(s, 3, 0); Varint(s, AddDummyPrefix ? 1u : 0u); Tag(s, 4, 0); Varint(s, RemoveExtraWhitespaces ? 1u : 0u); });
        return ms.ToArray();
    }

    private ref struct Reader
    {
        private readonly string _path;
        private readonly ReadOnlySpan<byte> _data;
        private int _pos;
        private readonly int _end;

        public Reader(string path, ReadOnlySpan<byte> data, int pos, int end) { _path = path; _data = data; _pos = pos; _end = end; }
        public bool End => _pos >= _end;

        private TokenizerException Bad(string what) => new($"{_path}: not a SentencePiece model ({what} at byte {_pos})");

        public ulong Varint()
        {
            ulong v = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_pos >= _end) throw Bad("truncated varint");
                byte b = _data[_pos++];
                v |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return v;
            }
            throw Bad("overlong varint");
        }

        public (int Field, int Wire) Tag()
        {
            ulong t = Varint();
            int wire = (int)(t & 7);
            if (wire is 3 or 4 or 6 or 7) throw Bad($"unsupported wire type {wire}");
            return ((int)(t >> 3), wire);
        }

        public ReadOnlySpan<byte> Bytes()
        {
            ulong len = Varint();
            if (len > (ulong)(_end - _pos)) throw Bad($"length {len} past the end");
            var s = _data.Slice(_pos, (int)len);
            _pos += (int)len;
            return s;
        }

        public Reader Sub()
        {
            ulong len = Varint();
            if (len > (ulong)(_end - _pos)) throw Bad($"length {len} past the end");
            var r = new Reader(_path, _data, _pos, _pos + (int)len);
            _pos += (int)len;
            return r;
        }

        public float Fixed32()
        {
            if (_end - _pos < 4) throw Bad("truncated fixed32");
            float f = BitConverter.ToSingle(_data.Slice(_pos, 4));
            _pos += 4;
            return f;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: if (_end - _pos < 8) throw Bad("truncated fixed64"); _pos += 8; break;
                case 2: Bytes(); break;
                case 5: if (_end - _pos < 4) throw Bad("truncated fixed32"); _pos += 4; break;
            }
        }
    }
}

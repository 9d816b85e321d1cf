using System.Text;
using KernelEngine.Kernels.Formats;

namespace KernelEngine.Formats;

/// <summary>
/// Writes a GGUF v3 file: header, metadata key/values, tensor infos (dims innermost first, offsets aligned to 32),
/// then the tensor data. Data is streamed from callbacks so a large model is never held twice in memory.
/// </summary>
internal sealed class GgufWriter
{
    private const uint Alignment = 32;
    private readonly List<(string Key, Action<BinaryWriter> Write)> _kv = new();
    private readonly List<(string Name, ulong[] Dims, GgmlType Type, long Bytes, Action<Stream> Data)> _tensors = new();

    private enum ValueType : uint { U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9 }

    private static void Str(BinaryWriter w, string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)b.Length);
        w.Write(b);
    }

    public GgufWriter Add(string key, string value) { _kv.Add((key, w => { w.Write((uint)ValueType.String); Str(w, value); })); return this; }
    public GgufWriter Add(string key, uint value) { _kv.Add((key, w => { w.Write((uint)ValueType.U32); w.Write(value); })); return this; }
    public GgufWriter Add(string key, float value) { _kv.Add((key, w => { w.Write((uint)ValueType.F32); w.Write(value); })); return this; }
    public GgufWriter Add(string key, bool value) { _kv.Add((key, w => { w.Write((uint)ValueType.Bool); w.Write(value); })); return this; }

    public GgufWriter Add(string key, IReadOnlyList<string> values)
    {
        _kv.Add((key, w => { w.Write((uint)ValueType.Array); w.Write((uint)ValueType.String); w.Write((ulong)values.Count); foreach (var v in values) Str(w, v); }));
        return this;
    }

    public GgufWriter Add(string key, IReadOnlyList<float> values)
    {
        _kv.Add((key, w => { w.Write((uint)ValueType.Array); w.Write((uint)ValueType.F32); w.Write((ulong)values.Count); foreach (var v in values) w.Write(v); }));
        return this;
    }

    public GgufWriter Add(string key, IReadOnlyList<int> values)
    {
        _kv.Add((key, w => { w.Write((uint)ValueType.Array); w.Write((uint)ValueType.I32); w.Write((ulong)values.Count); foreach (var v in values) w.Write(v); }));
        return this;
    }

    /// <summary>A tensor of (rows, cols) row-major (a vector: rows = 1); GGUF lists dims innermost first.</summary>
    public GgufWriter Tensor(string name, GgmlType type, long rows, long cols, long bytes, Func<byte[]> data) =>
        Tensor(name, type, rows, cols, bytes, (Action<Stream>)(s => s.Write(data())));

    /// <summary>A tensor whose bytes <paramref name="write"/> streams when the file is written (tensors past 2 GB).</summary>
    public GgufWriter Tensor(string name, GgmlType type, long rows, long cols, long bytes, Action<Stream> write)
    {
        ulong[] dims = rows == 1 ? [(ulong)cols] : [(ulong)cols, (ulong)rows];
        _tensors.Add((name, dims, type, bytes, write));
        return this;
    }

    public void Write(string path)
    {
        string tmp = path + ".tmp";
        using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        using (var w = new BinaryWriter(fs))
        {
            w.Write(0x46554747u); // "GGUF"
            w.Write(3u);
            w.Write((ulong)_tensors.Count);
            w.Write((ulong)_kv.Count);
            foreach (var (key, write) in _kv) { Str(w, key); write(w); }
            ulong offset = 0;
            foreach (var t in _tensors)
            {
                Str(w, t.Name);
                w.Write((uint)t.Dims.Length);
                foreach (var d in t.Dims) w.Write(d);
                w.Write((uint)t.Type);
                w.Write(offset);
                offset += Align((ulong)t.Bytes);
            }
            Pad(w);
            foreach (var t in _tensors)
            {
                w.Flush();
                long before = fs.Position;
                t.Data(fs);
                if (fs.Position - before != t.Bytes) throw new InvalidOperationException($"tensor '{t.Name}': {fs.Position - before} bytes, declared {t.Bytes}");
                Pad(w);
            }
        }
        File.Move(tmp, path, overwrite: true);
    }

    private static ulong Align(ulong n) => (n + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w)
    {
        long pos = w.BaseStream.Position;
        long pad = (long)Align((ulong)pos) - pos;
        for (long i = 0; i < pad; i++) w.Write((byte)0);
    }
}

using System.Text;
using System.Text.Json;

namespace KernelEngine.Formats;

/// <summary>Writes a safetensors file: header padded with spaces to a multiple of 8 bytes, tensors in the order added.</summary>
internal sealed class SafeTensorsWriter
{
    private readonly List<(string Name, SafeTensorDType DType, long[] Shape, ReadOnlyMemory<byte> Data)> _tensors = new();
    private readonly List<(string Name, SafeTensorDType DType, long[] Shape)> _streamed = new();
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);

    public SafeTensorsWriter Add(string name, SafeTensorDType dtype, long[] shape, ReadOnlyMemory<byte> data)
    {
        long elements = 1;
        foreach (long d in shape) elements *= d;
        if (elements * dtype.ElementBytes() != data.Length)
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] x {dtype} needs {elements * dtype.ElementBytes()} bytes, got {data.Length}");
        _tensors.Add((name, dtype, shape, data));
        return this;
    }

    public SafeTensorsWriter Metadata(string key, string value) { _metadata[key] = value; return this; }

    /// <summary>A tensor whose bytes the callback of <see cref="Write(string, Action{Stream})"/> writes, after every
    /// <see cref="Add"/>ed tensor and in the order declared (for data too large to hold in memory).</summary>
    public SafeTensorsWriter Declare(string name, SafeTensorDType dtype, long[] shape)
    {
        _streamed.Add((name, dtype, shape));
        return this;
    }

    public void Write(string path) => Write(path, null);

    /// <summary>Writes the header, the added tensors, then lets <paramref name="streamed"/> write the declared tensors'
    /// bytes; a wrong byte count is an error and leaves no file.</summary>
    public void Write(string path, Action<Stream>? streamed)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (_metadata.Count > 0)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in _metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in _tensors) offset = Entry(w, t.Name, t.DType, t.Shape, offset, t.Data.Length);
            foreach (var t in _streamed) offset = Entry(w, t.Name, t.DType, t.Shape, offset, Bytes(t.DType, t.Shape));
            w.WriteEndObject();
        }
        int pad = (int)((8 - ms.Length % 8) % 8);
        for (int i = 0; i < pad; i++) ms.WriteByte((byte)' ');
        string tmp = path + ".tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                fs.Write(BitConverter.GetBytes((ulong)ms.Length));
                ms.Position = 0;
                ms.CopyTo(fs);
                foreach (var t in _tensors) fs.Write(t.Data.Span);
                if (_streamed.Count > 0)
                {
                    long expected = fs.Position + _streamed.Sum(t => Bytes(t.DType, t.Shape));
                    streamed?.Invoke(fs);
                    if (fs.Position != expected) throw new InvalidOperationException($"{path}: the streamed tensors wrote {fs.Position} bytes, the header says {expected}");
                }
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
    }

    private static long Bytes(SafeTensorDType dtype, long[] shape) => shape.Aggregate((long)dtype.ElementBytes(), (a, d) => checked(a * d));

    /// <summary>One tensor's header entry (dtype, shape, data offsets); returns the next offset.</summary>
    private static long Entry(Utf8JsonWriter w, string name, SafeTensorDType dtype, long[] shape, long offset, long bytes)
    {
        w.WriteStartObject(name);
        w.WriteString("dtype", dtype.ToString());
        w.WriteStartArray("shape");
        foreach (long d in shape) w.WriteNumberValue(d);
        w.WriteEndArray();
        w.WriteStartArray("data_offsets");
        w.WriteNumberValue(offset);
        w.WriteNumberValue(offset + bytes);
        w.WriteEndArray();
        w.WriteEndObject();
        return offset + bytes;
    }
}

using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace KernelEngine.Formats;

/// <summary>
/// A memory-mapped safetensors file: 8-byte little-endian header length, a JSON header
/// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}, then the data. Tensors are
/// read in place from the mapping (no copy). The header is validated in full before any tensor is used.
/// </summary>
internal sealed unsafe class SafeTensorsFile : IDisposable
{
    private readonly MappedFile _file;
    private readonly long _dataStart;

    public string Path { get; }
    public IReadOnlyDictionary<string, TensorInfo> Tensors { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private SafeTensorsFile(string path, MappedFile file, long dataStart, Dictionary<string, TensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path; _file = file; _dataStart = dataStart; Tensors = tensors; Metadata = metadata;
    }

    public static SafeTensorsFile Open(string path)
    {
        if (!System.IO.File.Exists(path)) throw new ModelFormatException(path, "file not found");
        long fileBytes = FileLength(path);
        if (fileBytes < 8) throw new ModelFormatException(path, $"truncated: {fileBytes} bytes, a safetensors file starts with an 8-byte header length");
        byte[] header;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            Span<byte> len = stackalloc byte[8];
            fs.ReadExactly(len);
            ulong headerBytes = BitConverter.ToUInt64(len);
            if (headerBytes < 2 || headerBytes > (ulong)(fileBytes - 8))
                throw new ModelFormatException(path, $"header length {headerBytes} does not fit in the file ({fileBytes} bytes)");
            if (headerBytes > 100_000_000) throw new ModelFormatException(path, $"header length {headerBytes} is over 100 MB");
            header = new byte[headerBytes];
            fs.ReadExactly(header);
        }
        long dataStart = 8 + header.Length;
        var (tensors, metadata) = ParseHeader(path, header, fileBytes - dataStart);
        return new SafeTensorsFile(path, new MappedFile(path, fileBytes), dataStart, tensors, metadata);
    }

    /// <summary>The length of the file a path names, following symbolic links (a Hugging Face cache snapshot is a folder
    /// of links into blobs/; FileInfo.Length of a link is the link's own length).</summary>
    public static long FileLength(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget != null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target)
        {
            if (!target.Exists) throw new ModelFormatException(path, $"symbolic link to '{target.FullName}', which does not exist");
            return target.Length;
        }
        return info.Length;
    }

    private static (Dictionary<string, TensorInfo>, Dictionary<string, string>) ParseHeader(string path, byte[] header, long dataBytes)
    {
        try { return ParseHeaderCore(path, header, dataBytes); }
        catch (JsonException e) { throw new ModelFormatException(path, $"header is not valid JSON ({e.Message})", e); }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or OverflowException)
        {
            // Invalid UTF-8 in a name, numbers beyond long: a malformed header.
            throw new ModelFormatException(path, $"header is malformed ({e.Message})", e);
        }
    }

    private static (Dictionary<string, TensorInfo>, Dictionary<string, string>) ParseHeaderCore(string path, byte[] header, long dataBytes)
    {
        using var doc = JsonDocument.Parse(header);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ModelFormatException(path, "header is not a JSON object");
        var tensors = new Dictionary<string, TensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__")
            {
                if (prop.Value.ValueKind == JsonValueKind.Object)
                    foreach (var m in prop.Value.EnumerateObject()) metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                continue;
            }
            if (tensors.ContainsKey(prop.Name)) throw new ModelFormatException(path, $"tensor '{prop.Name}' appears twice in the header");
            tensors[prop.Name] = ParseTensor(path, prop.Name, prop.Value, dataBytes);
        }
        // Tensors must not overlap: sort by start and compare neighbours.
        var sorted = tensors.Values.Where(t => t.ByteLength > 0).OrderBy(t => t.DataOffset).ToArray();
        for (int i = 1; i < sorted.Length; i++)
        {
            var a = sorted[i - 1]; var b = sorted[i];
            if (b.DataOffset < a.DataOffset + a.ByteLength)
                throw new ModelFormatException(path, $"tensors '{a.Name}' [{a.DataOffset}, {a.DataOffset + a.ByteLength}) and '{b.Name}' [{b.DataOffset}, {b.DataOffset + b.ByteLength}) overlap");
        }
        return (tensors, metadata);
    }

    private static TensorInfo ParseTensor(string path, string name, JsonElement e, long dataBytes)
    {
        if (e.ValueKind != JsonValueKind.Object) throw new ModelFormatException(path, $"tensor '{name}': entry is not an object");
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new ModelFormatException(path, $"tensor '{name}': missing dtype");
        if (!SafeTensorDTypes.TryParse(dt.GetString()!, out var dtype))
            throw new ModelFormatException(path, $"tensor '{name}': unknown dtype '{dt.GetString()}'");
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new ModelFormatException(path, $"tensor '{name}': missing shape");
        if (sh.GetArrayLength() > 8) throw new ModelFormatException(path, $"tensor '{name}': {sh.GetArrayLength()} dimensions (at most 8)");
        var shape = new long[sh.GetArrayLength()];
        int k = 0;
        long elements = 1;
        bool overflow = false;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0)
                throw new ModelFormatException(path, $"tensor '{name}': bad shape entry {d.GetRawText()}");
            shape[k++] = v;
            if (!overflow && v != 0 && elements > long.MaxValue / v) overflow = true;
            else elements *= v;
        }
        if (overflow || elements > long.MaxValue / 8)
            throw new ModelFormatException(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] has more elements than any file can hold");
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new ModelFormatException(path, $"tensor '{name}': data_offsets must be [begin, end]");
        long begin = off[0].ValueKind == JsonValueKind.Number && off[0].TryGetInt64(out long b0) ? b0 : -1;
        long end = off[1].ValueKind == JsonValueKind.Number && off[1].TryGetInt64(out long e0) ? e0 : -1;
        if (begin < 0 || end < begin || end > dataBytes)
            throw new ModelFormatException(path, $"tensor '{name}': data_offsets [{begin}, {end}] out of range (data section is {dataBytes} bytes)");
        long expected = elements * dtype.ElementBytes();
        if (end - begin != expected)
            throw new ModelFormatException(path, $"tensor '{name}': shape [{string.Join(", ", shape)}] x {dtype} needs {expected} bytes, data_offsets give {end - begin}");
        return new TensorInfo(name, dtype, shape, begin, end - begin, path);
    }

    /// <summary>Pointer to the first byte of a tensor's data, valid until Dispose.</summary>
    public byte* DataPointer(TensorInfo t) => _file.Base + _dataStart + t.DataOffset;
    /// <summary>Where a tensor's bytes start in the file.</summary>
    public long FileOffset(TensorInfo t) => _dataStart + t.DataOffset;

    public ReadOnlySpan<byte> Data(TensorInfo t) => new(DataPointer(t), checked((int)t.ByteLength));

    public void Dispose() => _file.Dispose();
}

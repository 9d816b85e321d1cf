using System.Text;
using KernelEngine.Kernels.Formats;

namespace KernelEngine.Formats;

/// <summary>One tensor of a GGUF file: ggml type, dims (innermost first, as GGUF stores them) and where its bytes are.</summary>
internal sealed record GgufTensor(string Name, GgmlType Type, long[] Dims, long Offset, long ByteLength)
{
    public long Elements => Dims.Aggregate(1L, (a, d) => a * d);
    /// <summary>Row-major shape, outermost first (a 2-D tensor is (rows, cols) = (Dims[1], Dims[0])).</summary>
    public long[] Shape => Dims.Reverse().ToArray();
}

/// <summary>
/// A memory-mapped GGUF file (v2 and v3): magic, version, tensor and key/value counts, the key/values, the tensor
/// infos, then tensor data at <c>general.alignment</c> (default 32). Every count, string length, array length,
/// dimension, type and offset is checked against the bytes that remain before anything is allocated from it; a
/// malformed file is a <see cref="ModelFormatException"/> naming the key or tensor. Tensors are read in place.
/// </summary>
internal sealed unsafe class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian

    /// <summary>(elements per block, bytes per block) of every ggml type, to validate sizes of types we do not run too.</summary>
    private static readonly Dictionary<GgmlType, (int Block, int Bytes)> TypeSizes = new()
    {
        [GgmlType.F32] = (1, 4), [GgmlType.F16] = (1, 2), [GgmlType.Q4_0] = (32, 18), [GgmlType.Q4_1] = (32, 20),
        [GgmlType.Q5_0] = (32, 22), [GgmlType.Q5_1] = (32, 24), [GgmlType.Q8_0] = (32, 34), [GgmlType.Q8_1] = (32, 36),
        [GgmlType.Q2_K] = (256, 84), [GgmlType.Q3_K] = (256, 110), [GgmlType.Q4_K] = (256, 144), [GgmlType.Q5_K] = (256, 176),
        [GgmlType.Q6_K] = (256, 210), [GgmlType.Q8_K] = (256, 292), [GgmlType.IQ2_XXS] = (256, 66), [GgmlType.IQ2_XS] = (256, 74),
        [GgmlType.IQ3_XXS] = (256, 98), [GgmlType.IQ1_S] = (256, 50), [GgmlType.IQ4_NL] = (32, 18), [GgmlType.IQ3_S] = (256, 110),
        [GgmlType.IQ2_S] = (256, 82), [GgmlType.IQ4_XS] = (256, 136), [GgmlType.I8] = (1, 1), [GgmlType.I16] = (1, 2),
        [GgmlType.I32] = (1, 4), [GgmlType.I64] = (1, 8), [GgmlType.F64] = (1, 8), [GgmlType.IQ1_M] = (256, 56),
        [GgmlType.BF16] = (1, 2), [GgmlType.TQ1_0] = (256, 54), [GgmlType.TQ2_0] = (256, 66), [GgmlType.MXFP4] = (32, 17),
    };

    private enum ValueType : uint { U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, Bool = 7, String = 8, Array = 9, U64 = 10, I64 = 11, F64 = 12 }

    private readonly MappedFile _file;

    public string Path { get; }
    public uint Version { get; }
    public long Alignment { get; }
    public long DataStart { get; }
    /// <summary>Key/values: numbers as long/ulong/double, bool, string, or arrays (long[], double[], bool[], string[], object[]).</summary>
    public IReadOnlyDictionary<string, object> Metadata { get; }
    public IReadOnlyList<GgufTensor> Tensors { get; }
    private readonly Dictionary<string, GgufTensor> _byName;

    private GgufFile(string path, MappedFile file, uint version, long alignment, long dataStart,
        Dictionary<string, object> metadata, List<GgufTensor> tensors)
    {
        Path = path; _file = file; Version = version; Alignment = alignment; DataStart = dataStart;
        Metadata = metadata; Tensors = tensors;
        _byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public static bool LooksLikeGguf(string path)
    {
        if (!File.Exists(path)) return false;
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            Span<byte> b = stackalloc byte[4];
            return fs.Read(b) == 4 && BitConverter.ToUInt32(b) == Magic;
        }
        catch (IOException) { return false; }
    }

    public static GgufFile Open(string path)
    {
        if (!File.Exists(path)) throw new ModelFormatException(path, "file not found");
        long length = SafeTensorsFile.FileLength(path);
        if (length < 24) throw new ModelFormatException(path, $"truncated: {length} bytes, a GGUF header is 24");
        var file = new MappedFile(path, length);
        try
        {
            var r = new Reader(path, new ReadOnlySpan<byte>(file.Base, (int)Math.Min(length, int.MaxValue)), length);
            var (version, alignment, dataStart, metadata, tensors) = Parse(ref r, length);
            return new GgufFile(path, file, version, alignment, dataStart, metadata, tensors);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static (uint, long, long, Dictionary<string, object>, List<GgufTensor>) Parse(ref Reader r, long fileLength)
    {
        string path = r.Path;
        if (r.U32("magic") != Magic) throw new ModelFormatException(path, "not a GGUF file (bad magic)");
        uint version = r.U32("version");
        if (version is not (2 or 3)) throw new ModelFormatException(path, $"GGUF version {version} is not supported (2, 3)");
        ulong tensorCount = r.U64("tensor count"), kvCount = r.U64("key/value count");
        // The smallest key/value is 8 + 1 + 4 + 1 bytes, the smallest tensor info 8 + 1 + 4 + 8 + 4 + 8.
        if (kvCount > (ulong)(r.Remaining / 14)) throw new ModelFormatException(path, $"key/value count {kvCount} does not fit in the file");
        if (tensorCount > (ulong)(r.Remaining / 33)) throw new ModelFormatException(path, $"tensor count {tensorCount} does not fit in the file");
        var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
        for (ulong i = 0; i < kvCount; i++)
        {
            string key = r.Str("key");
            var type = (ValueType)r.U32($"type of '{key}'");
            object value = ReadValue(ref r, type, key, depth: 0);
            if (!metadata.TryAdd(key, value)) throw new ModelFormatException(path, $"key '{key}' appears twice");
        }
        long alignment = 32;
        if (metadata.TryGetValue("general.alignment", out var a))
        {
            if (a is not long al || al <= 0 || al > 1 << 20 || (al & (al - 1)) != 0)
                throw new ModelFormatException(path, $"general.alignment {a} is not a power of two in 1..{1 << 20}");
            alignment = al;
        }
        var infos = new List<(string Name, GgmlType Type, long[] Dims, ulong Offset)>((int)tensorCount);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = r.Str("tensor name");
            if (!names.Add(name)) throw new ModelFormatException(path, $"tensor '{name}' appears twice");
            uint nDims = r.U32($"dimension count of tensor '{name}'");
            if (nDims is 0 or > 4) throw new ModelFormatException(path, $"tensor '{name}': {nDims} dimensions (1 to 4)");
            var dims = new long[nDims];
            for (int d = 0; d < nDims; d++)
            {
                ulong v = r.U64($"dimension of tensor '{name}'");
                if (v == 0 || v > 1UL << 40) throw new ModelFormatException(path, $"tensor '{name}': dimension {d} is {v}");
                dims[d] = (long)v;
            }
            uint type = r.U32($"type of tensor '{name}'");
            ulong offset = r.U64($"offset of tensor '{name}'");
            infos.Add((name, (GgmlType)type, dims, offset));
        }
        long dataStart = (r.Position + alignment - 1) / alignment * alignment;
        if (tensorCount > 0 && dataStart > fileLength) throw new ModelFormatException(path, $"the data section starts at {dataStart}, past the end of the file ({fileLength} bytes)");
        long dataBytes = Math.Max(0, fileLength - dataStart);
        var tensors = new List<GgufTensor>(infos.Count);
        foreach (var (name, type, dims, offset) in infos)
        {
            if (!TypeSizes.TryGetValue(type, out var size)) throw new ModelFormatException(path, $"tensor '{name}': unknown ggml type {(uint)type}");
            if (dims[0] % size.Block != 0) throw new ModelFormatException(path, $"tensor '{name}': row of {dims[0]} is not a multiple of {type}'s block of {size.Block}");
            long rows = 1;
            for (int d = 1; d < dims.Length; d++)
            {
                if (rows > long.MaxValue / dims[d]) throw new ModelFormatException(path, $"tensor '{name}': shape [{string.Join(", ", dims)}] is too large");
                rows *= dims[d];
            }
            long rowBytes = dims[0] / size.Block * size.Bytes;
            if (rowBytes != 0 && rows > dataBytes / rowBytes) throw new ModelFormatException(path, $"tensor '{name}': {rows} rows of {rowBytes} bytes do not fit in the data section ({dataBytes} bytes)");
            long bytes = rows * rowBytes;
            if (offset % (ulong)alignment != 0) throw new ModelFormatException(path, $"tensor '{name}': offset {offset} is not a multiple of the alignment {alignment}");
            if (offset > (ulong)dataBytes || (long)offset > dataBytes - bytes)
                throw new ModelFormatException(path, $"tensor '{name}': bytes [{offset}, {offset + (ulong)bytes}) lie outside the data section ({dataBytes} bytes)");
            tensors.Add(new GgufTensor(name, type, dims, (long)offset, bytes));
        }
        var sorted = tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.Offset).ToArray();
        for (int i = 1; i < sorted.Length; i++)
            if (sorted[i].Offset < sorted[i - 1].Offset + sorted[i - 1].ByteLength)
                throw new ModelFormatException(path, $"tensors '{sorted[i - 1].Name}' and '{sorted[i].Name}' overlap");
        return (version, alignment, dataStart, metadata, tensors);
    }

    private static object ReadValue(ref Reader r, ValueType type, string key, int depth)
    {
        switch (type)
        {
            case ValueType.U8: return (long)r.Bytes(1, key)[0];
            case ValueType.I8: return (long)(sbyte)r.Bytes(1, key)[0];
            case ValueType.U16: return (long)BitConverter.ToUInt16(r.Bytes(2, key));
            case ValueType.I16: return (long)BitConverter.ToInt16(r.Bytes(2, key));
            case ValueType.U32: return (long)r.U32(key);
            case ValueType.I32: return (long)BitConverter.ToInt32(r.Bytes(4, key));
            case ValueType.U64: { ulong v = r.U64(key); return v <= long.MaxValue ? (long)v : (object)v; }
            case ValueType.I64: return BitConverter.ToInt64(r.Bytes(8, key));
            case ValueType.F32: return (double)BitConverter.ToSingle(r.Bytes(4, key));
            case ValueType.F64: return BitConverter.ToDouble(r.Bytes(8, key));
            case ValueType.Bool:
            {
                byte b = r.Bytes(1, key)[0];
                return b switch { 0 => false, 1 => true, _ => throw new ModelFormatException(r.Path, $"key '{key}': bool value {b}") };
            }
            case ValueType.String: return r.Str(key);
            case ValueType.Array:
            {
                if (depth > 0) throw new ModelFormatException(r.Path, $"key '{key}': nested arrays are not supported");
                var elem = (ValueType)r.U32(key);
                ulong count = r.U64(key);
                int min = elem switch
                {
                    ValueType.U8 or ValueType.I8 or ValueType.Bool => 1, ValueType.U16 or ValueType.I16 => 2,
                    ValueType.U32 or ValueType.I32 or ValueType.F32 => 4, ValueType.String or ValueType.U64 or ValueType.I64 or ValueType.F64 => 8,
                    ValueType.Array => 12,
                    _ => throw new ModelFormatException(r.Path, $"key '{key}': unknown array element type {(uint)elem}"),
                };
                if (count > (ulong)(r.Remaining / min)) throw new ModelFormatException(r.Path, $"key '{key}': array of {count} elements does not fit in the file");
                int n = (int)count;
                switch (elem)
                {
                    case ValueType.String: { var a = new string[n]; for (int i = 0; i < n; i++) a[i] = r.Str(key); return a; }
                    case ValueType.F32 or ValueType.F64: { var a = new double[n]; for (int i = 0; i < n; i++) a[i] = (double)ReadValue(ref r, elem, key, 1); return a; }
                    case ValueType.Bool: { var a = new bool[n]; for (int i = 0; i < n; i++) a[i] = (bool)ReadValue(ref r, elem, key, 1); return a; }
                    case ValueType.Array: { var a = new object[n]; for (int i = 0; i < n; i++) a[i] = ReadValue(ref r, elem, key, 1); return a; }
                    default:
                    {
                        var a = new long[n];
                        for (int i = 0; i < n; i++)
                            a[i] = ReadValue(ref r, elem, key, 1) is long l ? l : throw new ModelFormatException(r.Path, $"key '{key}': element {i} does not fit a long");
                        return a;
                    }
                }
            }
            default: throw new ModelFormatException(r.Path, $"key '{key}': unknown value type {(uint)type}");
        }
    }

    private ref struct Reader(string path, ReadOnlySpan<byte> data, long fileLength)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;
        public readonly string Path = path;
        public readonly long Position => _pos;
        public readonly long Remaining => Math.Min(fileLength, _data.Length) - _pos;

        public ReadOnlySpan<byte> Bytes(int n, string what)
        {
            if (n < 0 || n > Remaining) throw new ModelFormatException(Path, $"truncated while reading {what} (at byte {_pos})");
            var s = _data.Slice(_pos, n);
            _pos += n;
            return s;
        }

        public uint U32(string what) => BitConverter.ToUInt32(Bytes(4, what));
        public ulong U64(string what) => BitConverter.ToUInt64(Bytes(8, what));

        public string Str(string what)
        {
            ulong len = U64(what);
            if (len > (ulong)Remaining || len > 1 << 24) throw new ModelFormatException(Path, $"{what}: string of {len} bytes does not fit (at byte {_pos})");
            var bytes = Bytes((int)len, what);
            try { return new UTF8Encoding(false, true).GetString(bytes); }
            catch (DecoderFallbackException) { throw new ModelFormatException(Path, $"{what}: string is not valid UTF-8 (at byte {_pos - (int)len})"); }
        }
    }

    public GgufTensor? Tensor(string name) => _byName.GetValueOrDefault(name);

    /// <summary>Pointer to the first byte of a tensor's data, valid until Dispose.</summary>
    public byte* DataPointer(GgufTensor t) => _file.Base + DataStart + t.Offset;

    // Typed metadata access; a present key of the wrong kind is a format error naming it.
    public string? GetString(string key) => Get<string>(key);
    public long? GetInt(string key) => Metadata.TryGetValue(key, out var v) ? v as long? ?? throw Wrong(key, "an integer", v) : null;
    public double? GetFloat(string key) => Metadata.TryGetValue(key, out var v) ? v switch { double d => d, long l => l, _ => throw Wrong(key, "a number", v) } : null;
    public bool? GetBool(string key) => Metadata.TryGetValue(key, out var v) ? v as bool? ?? throw Wrong(key, "a bool", v) : null;
    public T? Get<T>(string key) where T : class => Metadata.TryGetValue(key, out var v) ? v as T ?? throw Wrong(key, typeof(T).Name, v) : null;

    private ModelFormatException Wrong(string key, string expected, object v) =>
        new(Path, $"key '{key}' must be {expected}, not {v.GetType().Name}");

    public void Dispose() => _file.Dispose();
}

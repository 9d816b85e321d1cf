using System.Text.Json;
using KernelEngine.Backends;
using KernelEngine.Kernels;

namespace KernelEngine.Formats;

/// <summary>
/// All tensors of a model folder: one <c>model.safetensors</c>, or the shards named by
/// <c>model.safetensors.index.json</c> ("weight_map": tensor -> file). Every file stays mapped until Dispose.
/// </summary>
internal sealed unsafe class TensorStore : ITensorSource
{
    private readonly List<SafeTensorsFile> _files = new();
    private readonly Dictionary<string, (SafeTensorsFile File, TensorInfo Info)> _byName = new(StringComparer.Ordinal);

    public string Folder { get; }
    public string Path => Folder;
    public IEnumerable<TensorInfo> Tensors => _byName.Values.Select(v => v.Info);

    public IReadOnlyList<TensorEntry> Entries => _entries ??= _byName.Values.Select(v => v.Info).OrderBy(t => t.Name, StringComparer.Ordinal).Select(t =>
        QuantizedFormat.Of(this, t.Name) is { } q ? new TensorEntry(t.Name, q.Type.Name(), q.LogicalShape, t.ByteLength) : new TensorEntry(t.Name, t.DType.ToString(), t.Shape, t.ByteLength)).ToList();
    private List<TensorEntry>? _entries;

    public long[]? Shape(string name) => TryInfo(name) is { } t ? QuantizedFormat.Of(this, name)?.LogicalShape ?? t.Shape : null;
    public string FileOf(string name) => TryInfo(name)?.File ?? Folder;

    /// <summary>A (rows, cols) matrix used in its stored type, zero copy (quantized folders: the ke.quant metadata names the format).</summary>
    public HostWeight Matrix(string name)
    {
        var info = Info(name);
        if (QuantizedFormat.Of(this, name) is { } q)
            return new HostWeight(name, (int)q.LogicalShape[0], (int)q.LogicalShape[1], q.Type, DataPointer(name));
        var type = info.DType switch
        {
            SafeTensorDType.F32 => Kernels.WeightType.F32,
            SafeTensorDType.F16 => Kernels.WeightType.F16,
            SafeTensorDType.BF16 => Kernels.WeightType.BF16,
            _ => throw new ModelFormatException(info.File, $"tensor '{name}': dtype {info.DType} is not supported for weights (F32, F16, BF16, or a quantized format)"),
        };
        if (info.Shape.Length != 2) throw new ModelFormatException(info.File, $"tensor '{name}' has shape {info.ShapeText}, not a matrix");
        return new HostWeight(name, (int)info.Shape[0], (int)info.Shape[1], type, DataPointer(name));
    }
    public IReadOnlyList<SafeTensorsFile> Files => _files;

    private TensorStore(string folder) => Folder = folder;

    public static TensorStore OpenFolder(string folder)
    {
        var store = new TensorStore(folder);
        try
        {
            string index = System.IO.Path.Combine(folder, "model.safetensors.index.json");
            string single = System.IO.Path.Combine(folder, "model.safetensors");
            if (File.Exists(index))
            {
                try { store.LoadIndex(index); }
                catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException)
                {
                    throw new ModelFormatException(index, $"not a valid index ({e.Message})", e);
                }
            }
            else if (File.Exists(single)) store.Add(SafeTensorsFile.Open(single));
            else
            {
                var any = Directory.Exists(folder) ? Directory.GetFiles(folder, "*.safetensors") : [];
                if (any.Length == 0) throw new ModelFormatException(folder, "no model weights: neither model.safetensors nor model.safetensors.index.json (nor any *.safetensors) in this folder");
                foreach (var f in any.Order()) store.Add(SafeTensorsFile.Open(f));
            }
            return store;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    private void LoadIndex(string index)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(index)); }
        catch (JsonException e) { throw new ModelFormatException(index, $"not valid JSON ({e.Message})", e); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            throw new ModelFormatException(index, "missing 'weight_map' object");
        var shards = new Dictionary<string, SafeTensorsFile>();
        foreach (var entry in map.EnumerateObject())
        {
            string shard = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString()! : throw new ModelFormatException(index, $"tensor '{entry.Name}': shard name is not a string");
            if (shard.Length == 0 || shard != System.IO.Path.GetFileName(shard) || shard is "." or "..")
                throw new ModelFormatException(index, $"tensor '{entry.Name}': shard '{shard}' is not a file name in this folder");
            if (!shards.TryGetValue(shard, out var file))
            {
                file = SafeTensorsFile.Open(System.IO.Path.Combine(Folder, shard));
                shards[shard] = file;
                _files.Add(file);
            }
            if (!file.Tensors.TryGetValue(entry.Name, out var info))
                throw new ModelFormatException(file.Path, $"tensor '{entry.Name}' is listed in {System.IO.Path.GetFileName(index)} but not in this shard");
            _byName[entry.Name] = (file, info);
        }
    }

    private void Add(SafeTensorsFile file)
    {
        _files.Add(file);
        foreach (var (name, info) in file.Tensors)
        {
            if (_byName.ContainsKey(name)) throw new ModelFormatException(file.Path, $"tensor '{name}' appears in two files");
            _byName[name] = (file, info);
        }
    }

    public bool Contains(string name) => _byName.ContainsKey(name);

    public TensorInfo Info(string name) =>
        _byName.TryGetValue(name, out var v) ? v.Info : throw new ModelFormatException(Folder, $"missing tensor '{name}'");

    public TensorInfo? TryInfo(string name) => _byName.TryGetValue(name, out var v) ? v.Info : null;

    public byte* DataPointer(string name)
    {
        var (file, info) = _byName.TryGetValue(name, out var v) ? v : throw new ModelFormatException(Folder, $"missing tensor '{name}'");
        return file.DataPointer(info);
    }

    /// <summary>Metadata of the first file (quantized folders record their format there).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _files.Count > 0 ? _files[0].Metadata : new Dictionary<string, string>();

    /// <summary>Reads a tensor as F32 (any float dtype), e.g. norms and biases.</summary>
    public float[] ReadF32(string name)
    {
        var info = Info(name);
        byte* p = DataPointer(name);
        var dst = new float[info.Elements];
        switch (info.DType)
        {
            case SafeTensorDType.F32: new ReadOnlySpan<float>(p, dst.Length).CopyTo(dst); break;
            case SafeTensorDType.F16: System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(p, dst.Length), dst); break;
            case SafeTensorDType.BF16: fixed (float* d = dst) KernelEngine.Kernels.MatMul.RowConvert.Bf16ToF32((ushort*)p, dst.Length, d); break;
            case SafeTensorDType.F64: for (int i = 0; i < dst.Length; i++) dst[i] = (float)((double*)p)[i]; break;
            default: throw new ModelFormatException(info.File, $"tensor '{name}': dtype {info.DType} is not a float type");
        }
        return dst;
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
        _files.Clear();
        _byName.Clear();
    }
}

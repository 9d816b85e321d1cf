using System.Text.Json;

namespace KernelEngine.Formats;

/// <summary>
/// All tensors of a model folder: one <c>model.safetensors</c>, or the shards named by
/// <c>model.safetensors.index.json</c> ("weight_map": tensor -> file). Every file stays mapped until Dispose.
/// </summary>
public sealed unsafe class TensorStore : IDisposable
{
    private readonly List<SafeTensorsFile> _files = new();
    private readonly Dictionary<string, (SafeTensorsFile File, TensorInfo Info)> _byName = new(StringComparer.Ordinal);

    public string Folder { get; }
    public IEnumerable<TensorInfo> Tensors => _byName.Values.Select(v => v.Info);
    public IReadOnlyList<SafeTensorsFile> Files => _files;

    private TensorStore(string folder) => Folder = folder;

    public static TensorStore OpenFolder(string folder)
    {
        var store = new TensorStore(folder);
        try
        {
            string index = Path.Combine(folder, "model.safetensors.index.json");
            string single = Path.Combine(folder, "model.safetensors");
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
            if (shard.Length == 0 || shard != Path.GetFileName(shard) || shard is "." or "..")
                throw new ModelFormatException(index, $"tensor '{entry.Name}': shard '{shard}' is not a file name in this folder");
            if (!shards.TryGetValue(shard, out var file))
            {
                file = SafeTensorsFile.Open(Path.Combine(Folder, shard));
                shards[shard] = file;
                _files.Add(file);
            }
            if (!file.Tensors.TryGetValue(entry.Name, out var info))
                throw new ModelFormatException(file.Path, $"tensor '{entry.Name}' is listed in {Path.GetFileName(index)} but not in this shard");
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

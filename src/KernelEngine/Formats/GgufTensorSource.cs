using KernelEngine.Backends;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Formats;
using KernelEngine.Kernels.Rope;
using KernelEngine.Models.Families;

namespace KernelEngine.Formats;

/// <summary>
/// A GGUF model file as a tensor source under Hugging Face names (llama.cpp's <c>blk.N.attn_q.weight</c> is served as
/// <c>model.layers.N.self_attn.q_proj.weight</c>), plus its config read from the <c>{arch}.*</c> metadata. Matrices
/// are read in place from the mapping in their stored ggml type; a type the format table does not have is a
/// <see cref="ModelFormatException"/> naming the tensor and type.
/// </summary>
internal sealed unsafe class GgufTensorSource : ITensorSource
{
    private readonly GgufFile _file;
    private readonly Dictionary<string, GgufTensor> _byHfName = new(StringComparer.Ordinal);

    public GgufFile File => _file;
    public string Path => _file.Path;
    public IReadOnlyList<TensorEntry> Entries { get; }

    public GgufTensorSource(GgufFile file)
    {
        _file = file;
        // Tensor names come from the family's table; a file of an architecture we do not run is reported by ReadConfig.
        var family = file.GetString("general.architecture") is string arch ? ModelFamilies.ByGgufArch(arch) : null;
        var entries = new List<TensorEntry>(file.Tensors.Count);
        foreach (var t in file.Tensors)
        {
            string? hf = family?.HfNameOf(t.Name);
            if (hf != null) _byHfName[hf] = t;
            entries.Add(new TensorEntry(hf ?? t.Name, WeightFormat.FromGgml(t.Type)?.Name ?? t.Type.ToString().ToLowerInvariant(), t.Shape, t.ByteLength));
        }
        Entries = entries.OrderBy(e => e.Name, StringComparer.Ordinal).ToList();
    }

    public bool Contains(string name) => _byHfName.ContainsKey(name);
    public long[]? Shape(string name) => _byHfName.TryGetValue(name, out var t) ? t.Shape : null;
    public string FileOf(string name) => _file.Path;

    private GgufTensor Get(string name) =>
        _byHfName.TryGetValue(name, out var t) ? t : throw new ModelFormatException(_file.Path, $"missing tensor '{name}'");

    public HostWeight Matrix(string name)
    {
        var t = Get(name);
        var format = WeightFormat.FromGgml(t.Type)
            ?? throw new ModelFormatException(_file.Path, $"tensor '{t.Name}' is {t.Type}, which KernelEngine cannot run yet ({WeightFormat.Names})");
        if (t.Dims.Length != 2) throw new ModelFormatException(_file.Path, $"tensor '{t.Name}' has {t.Dims.Length} dimensions, not a matrix");
        return new HostWeight(name, checked((int)t.Dims[1]), checked((int)t.Dims[0]), format.Type, _file.DataPointer(t));
    }

    public float[] ReadF32(string name)
    {
        var t = Get(name);
        var format = WeightFormat.FromGgml(t.Type)
            ?? throw new ModelFormatException(_file.Path, $"tensor '{t.Name}' is {t.Type}, which KernelEngine cannot run yet");
        if (t.Elements > int.MaxValue / 2) throw new ModelFormatException(_file.Path, $"tensor '{t.Name}' is too large to read as F32");
        var dst = new float[t.Elements];
        int rowLen = (int)t.Dims[0];
        long rows = t.Elements / rowLen, rowBytes = format.RowBytes(rowLen);
        byte* p = _file.DataPointer(t);
        fixed (float* d = dst)
            for (long r = 0; r < rows; r++) format.DequantizeRow(p + r * rowBytes, rowLen, d + r * rowLen);
        return dst;
    }

    /// <summary>The model's hyper-parameters from the GGUF metadata (the Llama-architecture families of <see cref="ModelFamilies"/>).</summary>
    public ModelConfig ReadConfig()
    {
        string path = _file.Path;
        string arch = _file.GetString("general.architecture") ?? throw new ModelFormatException(path, "missing key 'general.architecture'");
        var family = ModelFamilies.ByGgufArch(arch) is { Architecture: Architecture.Llama } known ? known
            : throw new ModelFormatException(path, $"architecture '{arch}' is not supported in GGUF files yet ({string.Join(", ", ModelFamilies.All.Where(x => x.Architecture == Architecture.Llama).Select(x => x.GgufArch))})");
        int Int(string key, int min, int max, int? fallback = null)
        {
            long? v = _file.GetInt($"{arch}.{key}");
            if (v == null) return fallback ?? throw new ModelFormatException(path, $"missing key '{arch}.{key}'");
            if (v < min || v > max) throw new ModelFormatException(path, $"key '{arch}.{key}' = {v} is outside {min}..{max}");
            return (int)v;
        }
        double Float(string key, double min, double max, double fallback)
        {
            double? v = _file.GetFloat($"{arch}.{key}");
            if (v == null) return fallback;
            if (!double.IsFinite(v.Value) || v < min || v > max) throw new ModelFormatException(path, $"key '{arch}.{key}' = {v} is outside [{min:G3}, {max:G3}]");
            return v.Value;
        }
        int dim = Int("embedding_length", 1, ModelConfig.Limits.MaxHidden), heads = Int("attention.head_count", 1, ModelConfig.Limits.MaxHeads);
        var tokens = _file.Get<string[]>("tokenizer.ggml.tokens");
        var embd = _file.Tensor("token_embd.weight") ?? throw new ModelFormatException(path, "missing tensor 'token_embd.weight'");
        int vocab = Int("vocab_size", 1, ModelConfig.Limits.MaxVocab, embd.Dims.Length == 2 && embd.Dims[1] <= ModelConfig.Limits.MaxVocab ? (int)embd.Dims[1] : tokens?.Length ?? 0);
        int maxPositions = Int("context_length", 1, ModelConfig.Limits.MaxPositions, 2048);
        RopeScaling? ropeScaling = null;
        if (_file.GetString($"{arch}.rope.scaling.type") is string scaling && scaling != "none")
        {
            // llama.cpp's keys: rope.scaling.factor, .original_context_length, .yarn_beta_fast/_slow, .attn_factor
            double factor = Float("rope.scaling.factor", 1e-6, 1e6, 1);
            int original = Int("rope.scaling.original_context_length", 1, ModelConfig.Limits.MaxPositions, maxPositions);
            ropeScaling = scaling switch
            {
                "linear" => new LinearScaling(factor),
                "yarn" => new YarnScaling(factor, original, Float("rope.scaling.yarn_beta_fast", 1e-6, 1e6, 32), Float("rope.scaling.yarn_beta_slow", 1e-6, 1e6, 1),
                    _file.GetFloat($"{arch}.rope.scaling.attn_factor") is double af && af != 1 ? af : null),
                _ => throw new ModelFormatException(path, $"rope scaling '{scaling}' is not supported yet (linear, yarn)"),
            };
        }
        var config = new ModelConfig
        {
            Architecture = Architecture.Llama, ModelType = arch,
            HiddenSize = dim, IntermediateSize = Int("feed_forward_length", 1, ModelConfig.Limits.MaxIntermediate),
            Layers = Int("block_count", 1, ModelConfig.Limits.MaxLayers), Heads = heads,
            KvHeads = Int("attention.head_count_kv", 1, ModelConfig.Limits.MaxHeads, heads), VocabSize = vocab,
            MaxPositions = maxPositions, RopeScaling = ropeScaling,
            NormEps = (float)Float("attention.layer_norm_rms_epsilon", 1e-30, 0.5, 1e-6),
            RopeTheta = Float("rope.freq_base", double.Epsilon, 1e15, 10000),
            TieWordEmbeddings = _file.Tensor("output.weight") == null,
            AttentionBias = _file.Tensor("blk.0.attn_q.bias") != null,
            RopeLayout = family.GgufRopeLayout,
            BosTokenId = TokenId("tokenizer.ggml.bos_token_id", vocab),
            EosTokenIds = new[] { TokenId("tokenizer.ggml.eos_token_id", vocab), TokenId("tokenizer.ggml.eot_token_id", vocab) }
                .Where(i => i != null).Select(i => i!.Value).Distinct().ToArray(),
        };
        if (_file.Metadata.ContainsKey($"{arch}.attention.key_length"))
            config = config with { HeadDim = Int("attention.key_length", 2, ModelConfig.Limits.MaxHeadDim) };
        if (_file.GetInt($"{arch}.rope.dimension_count") is long rd && rd != config.HeadDim)
            config = config with { RotaryDim = Int("rope.dimension_count", 2, config.HeadDim) };   // partial rotary (Phi-4-mini)
        // Soft-caps (Gemma 2) when the keys are there; a window on the layers of the family's pattern, the only windows
        // llama.cpp runs (it ignores Mistral's, Qwen's and Phi-3's); Gemma 3's local RoPE base has no key.
        config = config with
        {
            AttentionSoftCap = _file.GetFloat($"{arch}.attn_logit_softcapping") is double a ? (float)Float("attn_logit_softcapping", 1e-6, 1e9, a) : null,
            FinalSoftCap = _file.GetFloat($"{arch}.final_logit_softcapping") is double f ? (float)Float("final_logit_softcapping", 1e-6, 1e9, f) : null,
            RopeLocalTheta = family.LocalRopeTheta,
        };
        if (family.SlidingWindowPattern > 0 && _file.GetInt($"{arch}.attention.sliding_window") is long w && w > 0)
            config = config with
            {
                SlidingWindow = Int("attention.sliding_window", 1, ModelConfig.Limits.MaxPositions), SlidingWindowRuns = true,
                SlidingLayers = family.PatternLayers(config.Layers, family.SlidingWindowPattern),
            };
        if (RopeFactors("rope_freqs.weight", config.RotaryDim) is { } freqs) config = config with { RopeFreqFactors = freqs };
        // LongRoPE (Phi-3 128k, Phi-3.5, Phi-4-mini): llama.cpp's converter stores the two factor lists as tensors and the
        // attention factor and original context as keys; the long list applies to contexts past the original one.
        if (RopeFactors("rope_factors_long.weight", config.RotaryDim) is { } longFactors)
        {
            var shortFactors = RopeFactors("rope_factors_short.weight", config.RotaryDim)
                ?? throw new ModelFormatException(path, "tensor 'rope_factors_long.weight' without 'rope_factors_short.weight'");
            int original = Int("rope.scaling.original_context_length", 1, ModelConfig.Limits.MaxPositions, maxPositions);
            double? attn = _file.GetFloat($"{arch}.rope.scaling.attn_factor") is double af ? Float("rope.scaling.attn_factor", 1e-6, 1e6, af) : null;
            config = config with { RopeScaling = new LongRopeScaling(shortFactors, longFactors, original, maxPositions, attn) };
        }
        return config.Validate(path);
    }

    /// <summary>A tensor of rotaryDim / 2 positive RoPE factors (F32 or F16), or null when the file has none.</summary>
    private float[]? RopeFactors(string name, int rotaryDim)
    {
        if (_file.Tensor(name) is not { } t) return null;
        if (t.Elements != rotaryDim / 2) throw new ModelFormatException(_file.Path, $"tensor '{name}' has {t.Elements} elements, expected {rotaryDim / 2}");
        var format = WeightFormat.FromGgml(t.Type) is { IsBlockQuantized: false } ff ? ff : throw new ModelFormatException(_file.Path, $"tensor '{name}' must be F32 or F16");
        var f = new float[t.Elements];
        fixed (float* d = f) format.DequantizeRow(_file.DataPointer(t), f.Length, d);
        if (f.Any(x => !(x > 0) || !float.IsFinite(x))) throw new ModelFormatException(_file.Path, $"tensor '{name}' holds a non-positive or non-finite factor");
        return f;
    }

    private int? TokenId(string key, int vocab)
    {
        long? v = _file.GetInt(key);
        if (v == null) return null;
        if (v < 0 || v >= vocab) throw new ModelFormatException(_file.Path, $"key '{key}' = {v} is outside the vocabulary (0..{vocab - 1})");
        return (int)v;
    }

    public void Dispose() => _file.Dispose();
}

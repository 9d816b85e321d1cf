using System.Text.Json;
using KernelEngine.Kernels.Rope;

namespace KernelEngine.Formats;

/// <summary>Model families the runtime implements.</summary>
public enum Architecture
{
    /// <summary>Llama-style: RMSNorm, rotary positions, gated SiLU MLP (Llama, Mistral, Qwen2, SmolLM).</summary>
    Llama,
    /// <summary>GPT-2: LayerNorm, learned positions, GELU MLP.</summary>
    Gpt2,
}

/// <summary>
/// The hyper-parameters of a model, read from a Hugging Face <c>config.json</c> (llama, mistral, qwen2, qwen3, gpt2: see ModelFamilies).
/// GPT-2 traps handled: the MLP width is <c>n_inner</c> (null = 4 * n_embd), never <c>intermediate_size</c>;
/// the activation is <c>activation_function</c>, never <c>hidden_act</c>. Every value is checked against its range
/// before anything is sized from it (see <see cref="Limits"/>); a bad one is a <see cref="ModelFormatException"/>
/// naming the file and the field.
/// </summary>
public sealed partial record ModelConfig
{
    /// <summary>The forward pass this model runs.</summary>
    public required Architecture Architecture { get; init; }
    /// <summary>config.json's <c>model_type</c> ("llama", "qwen2", ...).</summary>
    public required string ModelType { get; init; }
    /// <summary>Width of the residual stream (dim).</summary>
    public required int HiddenSize { get; init; }          // dim
    /// <summary>Width of the MLP's hidden layer.</summary>
    public required int IntermediateSize { get; init; }    // MLP hidden width
    /// <summary>Transformer blocks.</summary>
    public required int Layers { get; init; }
    /// <summary>Query heads.</summary>
    public required int Heads { get; init; }
    /// <summary>Key/value heads (fewer than <see cref="Heads"/> under grouped-query attention).</summary>
    public required int KvHeads { get; init; }
    /// <summary>Rows of the embedding and of the LM head.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Context length the model was trained for (<c>max_position_embeddings</c>).</summary>
    public required int MaxPositions { get; init; }
    /// <summary>Epsilon of the RMS / layer norms.</summary>
    public required float NormEps { get; init; }
    /// <summary>RoPE base frequency θ.</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>RoPE scaling (<c>rope_scaling</c>), or null.</summary>
    public RopeScaling? RopeScaling { get; init; }
    /// <summary>The LM head is the embedding table.</summary>
    public bool TieWordEmbeddings { get; init; }
    /// <summary>The q/k/v projections have biases (Qwen2, GPT-2).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>MLP activation as the config names it ("silu", "gelu_new", ...).</summary>
    public string Activation { get; init; } = "silu";
    /// <summary>Pair layout of RoPE: Hugging Face files rotate halves; llama.cpp's llama-architecture GGUF files store q/k
    /// rows permuted for interleaved pairs, which is the same rotation (the permutation is undone by rotating interleaved pairs).</summary>
    public RopeLayout RopeLayout { get; init; } = RopeLayout.RotateHalf;
    /// <summary>Per-pair divisors of the RoPE frequencies (GGUF <c>rope_freqs.weight</c>: llama3 scaling precomputed), or null.</summary>
    public float[]? RopeFreqFactors { get; init; }
    /// <summary>Attention window of the sliding-window layers (config.json <c>sliding_window</c> where the family uses it,
    /// or <c>use_sliding_window</c> turns it on), or null.</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>The sliding window runs in the attention kernels (Mistral, Phi-3: every layer; Qwen, Gemma: the layers of
    /// <see cref="SlidingLayers"/>).</summary>
    public bool SlidingWindowRuns { get; init; }
    /// <summary>Which layers attend through the window (null: all of them, when a window runs).</summary>
    public bool[]? SlidingLayers { get; init; }
    /// <summary>RoPE base of the sliding-window layers when they have their own (Gemma 3 <c>rope_local_base_freq</c>; no
    /// scaling there), or null.</summary>
    public double? RopeLocalTheta { get; init; }
    /// <summary>Attention scale 1/√(query_pre_attn_scalar) instead of 1/√head_dim (Gemma 2), or null.</summary>
    public double? QueryPreAttnScalar { get; init; }
    /// <summary>Attention scores capped as c·tanh(s/c) (Gemma 2 <c>attn_logit_softcapping</c>), or null.</summary>
    public float? AttentionSoftCap { get; init; }
    /// <summary>Final logits capped as c·tanh(z/c) (Gemma 2 <c>final_logit_softcapping</c>), or null.</summary>
    public float? FinalSoftCap { get; init; }
    /// <summary>Beginning-of-text token, or null.</summary>
    public int? BosTokenId { get; init; }
    /// <summary>End tokens (config.json and generation_config.json together).</summary>
    public int[] EosTokenIds { get; init; } = [];
    private readonly int? _headDim;
    /// <summary>Width of one attention head: config.json's <c>head_dim</c> when given, else hidden_size / heads.</summary>
    public int HeadDim { get => _headDim ?? HiddenSize / Heads; init => _headDim = value; }
    private readonly int? _rotaryDim;
    /// <summary>Leading dimensions of each head that RoPE rotates: head_dim × partial_rotary_factor (Phi-4-mini 0.75),
    /// all of them by default.</summary>
    public int RotaryDim { get => _rotaryDim ?? HeadDim; init => _rotaryDim = value; }
    /// <summary>Width of one position's keys (or values): KV heads × head width.</summary>
    public int KvDim => KvHeads * HeadDim;
    /// <summary>Width of one position's queries: heads × head width.</summary>
    public int QDim => Heads * HeadDim;

    /// <summary>Ranges a config value must fall in (far beyond any released model, well short of int overflow).</summary>
    internal static class Limits
    {
        public const int MaxHidden = 1 << 17;
        public const int MaxIntermediate = 1 << 20;
        public const int MaxLayers = 4096;
        public const int MaxHeads = 4096;
        public const int MaxHeadDim = 4096;
        public const int MaxVocab = 1 << 24;
        public const int MaxPositions = 1 << 24;
    }

    /// <summary>Reads config.json and, when present beside it, generation_config.json (its end tokens are added).</summary>
    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path)) throw new ModelFormatException(path, "config.json not found");
        var config = ParseFile(path, Parse);
        string gen = Path.Combine(Path.GetDirectoryName(path) ?? ".", "generation_config.json");
        if (File.Exists(gen))
        {
            int[] eos = ParseFile(gen, (p, root) =>
            {
                RequireObject(p, root);
                return Ids(p, root, "eos_token_id", config.VocabSize);
            });
            config = config with { EosTokenIds = config.EosTokenIds.Union(eos).ToArray() };
        }
        return config;
    }

    private static T ParseFile<T>(string path, Func<string, JsonElement, T> parse)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new ModelFormatException(path, $"not valid JSON ({e.Message})", e); }
        using var _ = doc;
        try { return parse(path, doc.RootElement); }
        catch (InvalidOperationException e) { throw new ModelFormatException(path, $"malformed ({e.Message})", e); }
    }

    private static void RequireObject(string path, JsonElement c)
    {
        if (c.ValueKind != JsonValueKind.Object) throw new ModelFormatException(path, $"the top level is a JSON {c.ValueKind.ToString().ToLowerInvariant()}, not an object");
    }

    /// <summary>Reads the config from the parsed JSON of <paramref name="path"/> (named in errors).</summary>
    public static ModelConfig Parse(string path, JsonElement c)
    {
        RequireObject(path, c);
        string modelType = Str(path, c, "model_type") ?? throw new ModelFormatException(path, "missing required field 'model_type'");
        int Req(int max, params string[] names)
        {
            foreach (var n in names)
                if (Int(path, c, n, 1, max) is int v) return v;
            throw new ModelFormatException(path, $"missing required field '{names[0]}'");
        }
        switch (modelType)
        {
            case var _ when Models.Families.ModelFamilies.ByModelType(modelType) is { Architecture: Architecture.Llama } family:
            {
                int dim = Req(Limits.MaxHidden, "hidden_size"), heads = Req(Limits.MaxHeads, "num_attention_heads");
                int vocab = Req(Limits.MaxVocab, "vocab_size");
                var cfg = new ModelConfig
                {
                    Architecture = Architecture.Llama, ModelType = modelType,
                    HiddenSize = dim, IntermediateSize = Req(Limits.MaxIntermediate, "intermediate_size"), Layers = Req(Limits.MaxLayers, "num_hidden_layers"),
                    Heads = heads, KvHeads = Int(path, c, "num_key_value_heads", 1, Limits.MaxHeads) ?? heads, VocabSize = vocab,
                    MaxPositions = Int(path, c, "max_position_embeddings", 1, Limits.MaxPositions) ?? 2048,
                    NormEps = Eps(path, c, "rms_norm_eps") ?? 1e-6f,
                    RopeTheta = Dbl(path, c, "rope_theta", min: double.Epsilon, max: 1e15) ?? 10000,
                    RopeScaling = RopeScalingOf(path, c),
                    TieWordEmbeddings = Bool(path, c, "tie_word_embeddings") ?? family.TiedByDefault,
                    // Gemma 2's fields (absent elsewhere)
                    QueryPreAttnScalar = Dbl(path, c, "query_pre_attn_scalar", 1e-6, 1e9),
                    AttentionSoftCap = Dbl(path, c, "attn_logit_softcapping", 1e-6, 1e9) is double softCap ? (float)softCap : null,
                    FinalSoftCap = Dbl(path, c, "final_logit_softcapping", 1e-6, 1e9) is double finalCap ? (float)finalCap : null,
                    AttentionBias = family.AttentionBias || (Bool(path, c, "attention_bias") ?? false),
                    Activation = Str(path, c, "hidden_activation") ?? Str(path, c, "hidden_act") ?? "silu",
                    BosTokenId = Ids(path, c, "bos_token_id", vocab) is [var b, ..] ? b : null, EosTokenIds = Ids(path, c, "eos_token_id", vocab),
                };
                if (Int(path, c, "head_dim", 2, Limits.MaxHeadDim) is int hd) cfg = cfg with { HeadDim = hd };
                // transformers' reading: the window applies unless use_sliding_window says no (default per family), to every
                // layer, to the family's pattern (sliding_window_pattern may restate it), or from max_window_layers on (Qwen).
                if ((Bool(path, c, "use_sliding_window") ?? family.SlidingWindowByDefault) && Int(path, c, "sliding_window", 1, Limits.MaxPositions) is int window)
                    cfg = cfg with
                    {
                        SlidingWindow = window, SlidingWindowRuns = true,
                        SlidingLayers = family.SlidingWindowEveryLayer ? null : LayerTypes(path, c, cfg.Layers)
                            ?? (family.SlidingWindowPattern > 0
                                ? family.PatternLayers(cfg.Layers, Int(path, c, "sliding_window_pattern", 1, Limits.MaxLayers) ?? family.SlidingWindowPattern)
                                : Enumerable.Range(0, cfg.Layers).Select(i => i >= (Int(path, c, "max_window_layers", 0, Limits.MaxLayers) ?? 28)).ToArray()),
                    };
                if (family.LocalRopeTheta is double localTheta)
                    cfg = cfg with { RopeLocalTheta = Dbl(path, c, "rope_local_base_freq", double.Epsilon, 1e15) ?? localTheta };
                if (Dbl(path, c, "partial_rotary_factor", 0, 1) is double rotary && rotary != 1)
                {
                    int dims = (int)(cfg.HeadDim * rotary);   // transformers: int(head_dim * partial_rotary_factor)
                    if (dims < 2 || dims % 2 != 0)
                        throw new ModelFormatException(path, $"'partial_rotary_factor' {rotary} gives {dims} rotated dimensions of head_dim {cfg.HeadDim}; it must be an even number of at least 2");
                    cfg = cfg with { RotaryDim = dims };
                }
                string expectedAct = family.GatedGelu ? "gelu_pytorch_tanh" : "silu";
                if (cfg.Activation != expectedAct && !(family.GatedGelu && cfg.Activation is "gelu_tanh" or "gelu_new"))
                    throw new ModelFormatException(path, $"hidden_act '{cfg.Activation}' is not supported for {modelType} ({expectedAct})");
                return cfg.Validate(path);
            }
            case "gpt2":
            {
                int dim = Req(Limits.MaxHidden, "n_embd", "hidden_size"), heads = Req(Limits.MaxHeads, "n_head", "num_attention_heads");
                int vocab = Req(Limits.MaxVocab, "vocab_size");
                var cfg = new ModelConfig
                {
                    Architecture = Architecture.Gpt2, ModelType = modelType,
                    HiddenSize = dim, IntermediateSize = Int(path, c, "n_inner", 1, Limits.MaxIntermediate) ?? 4 * dim,
                    Layers = Req(Limits.MaxLayers, "n_layer", "num_hidden_layers"),
                    Heads = heads, KvHeads = heads, VocabSize = vocab,
                    MaxPositions = Int(path, c, "n_positions", 1, Limits.MaxPositions) ?? Int(path, c, "n_ctx", 1, Limits.MaxPositions) ?? 1024,
                    NormEps = Eps(path, c, "layer_norm_epsilon") ?? 1e-5f,
                    TieWordEmbeddings = Bool(path, c, "tie_word_embeddings") ?? true,
                    AttentionBias = true,
                    Activation = Str(path, c, "activation_function") ?? "gelu_new",
                    BosTokenId = Ids(path, c, "bos_token_id", vocab) is [var b, ..] ? b : null, EosTokenIds = Ids(path, c, "eos_token_id", vocab),
                };
                if (cfg.Activation is not ("gelu_new" or "gelu_pytorch_tanh" or "gelu_fast"))
                    throw new ModelFormatException(path, $"activation_function '{cfg.Activation}' is not supported (gelu_new, the tanh approximation)");
                return cfg.Validate(path);
            }
            default:
                throw new ModelFormatException(path, $"model_type '{modelType}' is not supported ({string.Join(", ", Models.Families.ModelFamilies.All.SelectMany(f => f.ModelTypes))})");
        }
    }

    internal ModelConfig Validate(string path)
    {
        if (_headDim == null && HiddenSize % Heads != 0)
            throw new ModelFormatException(path, $"hidden_size {HiddenSize} is not divisible by num_attention_heads {Heads} (and no head_dim is given)");
        if (Heads % KvHeads != 0) throw new ModelFormatException(path, $"num_attention_heads {Heads} is not divisible by num_key_value_heads {KvHeads}");
        if (HeadDim % 2 != 0 || HeadDim > Limits.MaxHeadDim) throw new ModelFormatException(path, $"head dimension {HeadDim} must be even and at most {Limits.MaxHeadDim}");
        if ((long)Heads * HeadDim > Limits.MaxHidden * 4L) throw new ModelFormatException(path, $"num_attention_heads {Heads} x head_dim {HeadDim} is too large");
        if (RotaryDim > HeadDim || RotaryDim % 2 != 0) throw new ModelFormatException(path, $"{RotaryDim} rotated dimensions of head dimension {HeadDim}");
        if (RopeScaling is LongRopeScaling lr && (lr.ShortFactor.Length != RotaryDim / 2 || lr.LongFactor.Length != RotaryDim / 2))
            throw new ModelFormatException(path, $"rope_scaling short_factor/long_factor have {lr.ShortFactor.Length}/{lr.LongFactor.Length} entries, expected {(RotaryDim == HeadDim ? "head dimension" : "rotated dimensions")} / 2 = {RotaryDim / 2}");
        if (Architecture == Architecture.Gpt2 && HeadDim * Heads != HiddenSize)
            throw new ModelFormatException(path, $"n_embd {HiddenSize} is not n_head {Heads} x head dimension {HeadDim}");
        return this;
    }

    /// <summary>transformers' <c>layer_types</c> ("sliding_attention" / "full_attention" per layer), or null when absent.</summary>
    private static bool[]? LayerTypes(string path, JsonElement c, int layers)
    {
        if (!Present(c, "layer_types", out var v)) return null;
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() != layers)
            throw new ModelFormatException(path, $"'layer_types' must list {layers} layer types");
        return v.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String && e.GetString() is "sliding_attention" or "full_attention"
            ? e.GetString() == "sliding_attention"
            : throw new ModelFormatException(path, $"'layer_types' holds {Describe(e)}, not \"sliding_attention\" or \"full_attention\"")).ToArray();
    }

    private static RopeScaling? RopeScalingOf(string path, JsonElement c)
    {
        if (!c.TryGetProperty("rope_scaling", out var s) || s.ValueKind == JsonValueKind.Null) return null;
        if (s.ValueKind != JsonValueKind.Object) throw new ModelFormatException(path, $"'rope_scaling' must be an object or null, not {s.ValueKind.ToString().ToLowerInvariant()}");
        string type = Str(path, s, "rope_type") ?? Str(path, s, "type") ?? "";
        int maxPositions = Int(path, c, "max_position_embeddings", 1, Limits.MaxPositions) ?? 2048;
        double Factor(double fallback) => Dbl(path, s, "factor", 1e-6, 1e6, "rope_scaling.factor") ?? fallback;
        int Original(int fallback) => Int(path, s, "original_max_position_embeddings", 1, Limits.MaxPositions, "rope_scaling.original_max_position_embeddings")
            ?? Int(path, c, "original_max_position_embeddings", 1, Limits.MaxPositions) ?? fallback;
        double? AttentionFactor() => Dbl(path, s, "attention_factor", 1e-6, 1e6, "rope_scaling.attention_factor");
        switch (type)
        {
            case "default": return null;
            case "linear": return new LinearScaling(Factor(1));
            case "dynamic": return new DynamicNtkScaling(Factor(1), Original(maxPositions));
            case "yarn":
                return new YarnScaling(Factor(1), Original(maxPositions),
                    Dbl(path, s, "beta_fast", 1e-6, 1e6, "rope_scaling.beta_fast") ?? 32, Dbl(path, s, "beta_slow", 1e-6, 1e6, "rope_scaling.beta_slow") ?? 1,
                    AttentionFactor());
            case "longrope" or "su":
                return new LongRopeScaling(Factors(path, s, "short_factor"), Factors(path, s, "long_factor"), Original(maxPositions), maxPositions, AttentionFactor());
            case "llama3":
                var scaling = new Llama3Scaling(Factor(8),
                    Dbl(path, s, "low_freq_factor", 1e-6, 1e6, "rope_scaling.low_freq_factor") ?? 1,
                    Dbl(path, s, "high_freq_factor", 1e-6, 1e6, "rope_scaling.high_freq_factor") ?? 4,
                    Original(8192));
                if (!(scaling.HighFreqFactor > scaling.LowFreqFactor))
                    throw new ModelFormatException(path, $"rope_scaling.high_freq_factor {scaling.HighFreqFactor} must be greater than low_freq_factor {scaling.LowFreqFactor}");
                return scaling;
            default: throw new ModelFormatException(path, $"rope_scaling type '{type}' is not supported (linear, dynamic, yarn, llama3, longrope)");
        }
    }

    private static float[] Factors(string path, JsonElement s, string name)
    {
        if (!Present(s, name, out var v) || v.ValueKind != JsonValueKind.Array)
            throw new ModelFormatException(path, $"'rope_scaling.{name}' must be an array of numbers");
        var f = new float[v.GetArrayLength()];
        int i = 0;
        foreach (var e in v.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetDouble(out double d) || !(d > 0) || !double.IsFinite(d))
                throw new ModelFormatException(path, $"'rope_scaling.{name}[{i}]' = {Describe(e)} is not a positive number");
            f[i++] = (float)d;
        }
        return f;
    }

    private static string Describe(JsonElement v) => v.ValueKind == JsonValueKind.String ? $"\"{v.GetString()}\"" : v.GetRawText() is { Length: <= 40 } raw ? raw : v.GetRawText()[..40] + "...";

    /// <summary>A field that is absent or null gives null (as transformers reads it); any other kind than expected is an error.</summary>
    private static bool Present(JsonElement c, string n, out JsonElement v) =>
        c.TryGetProperty(n, out v) && v.ValueKind != JsonValueKind.Null;

    private static string? Str(string path, JsonElement c, string n)
    {
        if (!Present(c, n, out var v)) return null;
        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new ModelFormatException(path, $"'{n}' must be a string, not {Describe(v)}");
    }

    private static int? Int(string path, JsonElement c, string n, int min, int max, string? label = null)
    {
        if (!Present(c, n, out var v)) return null;
        label ??= n;
        if (v.ValueKind != JsonValueKind.Number) throw new ModelFormatException(path, $"'{label}' must be an integer, not {Describe(v)}");
        if (!v.TryGetDouble(out double d) || d != Math.Floor(d)) throw new ModelFormatException(path, $"'{label}' = {Describe(v)} is not an integer");
        if (d < min || d > max) throw new ModelFormatException(path, $"'{label}' = {Describe(v)} is outside {min}..{max}");
        return (int)d;
    }

    private static double? Dbl(string path, JsonElement c, string n, double min, double max, string? label = null)
    {
        if (!Present(c, n, out var v)) return null;
        label ??= n;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d)) throw new ModelFormatException(path, $"'{label}' must be a number, not {Describe(v)}");
        if (!double.IsFinite(d) || d < min || d > max) throw new ModelFormatException(path, $"'{label}' = {Describe(v)} is outside [{min:G3}, {max:G3}]");
        return d;
    }

    /// <summary>Norm epsilons: positive, below 1 (a larger one flattens every activation), representable in F32.</summary>
    private static float? Eps(string path, JsonElement c, string n) =>
        Dbl(path, c, n, 1e-30, 0.5) is double d ? (float)d : null;

    private static bool? Bool(string path, JsonElement c, string n)
    {
        if (!Present(c, n, out var v)) return null;
        return v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw new ModelFormatException(path, $"'{n}' must be true or false, not {Describe(v)}");
    }

    /// <summary>A token id or a list of them (eos_token_id may be either); ids outside the vocabulary are errors.</summary>
    private static int[] Ids(string path, JsonElement c, string n, int vocab)
    {
        if (!Present(c, n, out var v)) return [];
        var items = v.ValueKind == JsonValueKind.Array ? v.EnumerateArray().ToArray() : [v];
        if (items.Length > 1024) throw new ModelFormatException(path, $"'{n}' lists {items.Length} ids");
        var ids = new int[items.Length];
        for (int i = 0; i < items.Length; i++)
        {
            var e = items[i];
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int id))
                throw new ModelFormatException(path, $"'{n}' must be a token id or a list of them, not {Describe(v)}");
            if ((uint)id >= (uint)vocab) throw new ModelFormatException(path, $"'{n}' = {id} is outside the vocabulary (0..{vocab - 1})");
            ids[i] = id;
        }
        return ids;
    }
}

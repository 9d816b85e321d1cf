using System.Text.Json;
using KernelEngine.Kernels.Rope;

namespace KernelEngine.Formats;

/// <summary>Model families the runtime implements.</summary>
public enum Architecture { Llama, Gpt2 }

/// <summary>
/// The hyper-parameters of a model, read from a Hugging Face <c>config.json</c> (llama, mistral, qwen2, gpt2).
/// GPT-2 traps handled: the MLP width is <c>n_inner</c> (null = 4 * n_embd), never <c>intermediate_size</c>;
/// the activation is <c>activation_function</c>, never <c>hidden_act</c>.
/// </summary>
public sealed record ModelConfig
{
    public required Architecture Architecture { get; init; }
    public required string ModelType { get; init; }
    public required int HiddenSize { get; init; }          // dim
    public required int IntermediateSize { get; init; }    // MLP hidden width
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int VocabSize { get; init; }
    public required int MaxPositions { get; init; }
    public required float NormEps { get; init; }
    public double RopeTheta { get; init; } = 10000;
    public Llama3Scaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    public bool AttentionBias { get; init; }
    public string Activation { get; init; } = "silu";
    public int? BosTokenId { get; init; }
    public int[] EosTokenIds { get; init; } = [];
    public int HeadDim => HiddenSize / Heads;
    public int KvDim => KvHeads * HeadDim;

    public static ModelConfig Load(string path)
    {
        if (!File.Exists(path)) throw new ModelFormatException(path, "config.json not found");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new ModelFormatException(path, $"not valid JSON ({e.Message})", e); }
        using var _ = doc;
        return Parse(path, doc.RootElement);
    }

    public static ModelConfig Parse(string path, JsonElement c)
    {
        string modelType = Str(c, "model_type") ?? throw new ModelFormatException(path, "missing required field 'model_type'");
        int Req(params string[] names)
        {
            foreach (var n in names)
                if (c.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.Number) return v.GetInt32();
            throw new ModelFormatException(path, $"missing required field '{names[0]}'");
        }
        int[] eos = Ids(c, "eos_token_id");
        int? bos = Ids(c, "bos_token_id") is [var b, ..] ? b : null;
        switch (modelType)
        {
            case "llama" or "mistral" or "qwen2":
            {
                int dim = Req("hidden_size"), heads = Req("num_attention_heads");
                var cfg = new ModelConfig
                {
                    Architecture = Architecture.Llama, ModelType = modelType,
                    HiddenSize = dim, IntermediateSize = Req("intermediate_size"), Layers = Req("num_hidden_layers"),
                    Heads = heads, KvHeads = Opt(c, "num_key_value_heads") ?? heads, VocabSize = Req("vocab_size"),
                    MaxPositions = Opt(c, "max_position_embeddings") ?? 2048,
                    NormEps = (float)(Dbl(c, "rms_norm_eps") ?? 1e-6),
                    RopeTheta = Dbl(c, "rope_theta") ?? 10000,
                    RopeScaling = RopeScalingOf(path, c),
                    TieWordEmbeddings = Bool(c, "tie_word_embeddings") ?? false,
                    AttentionBias = modelType == "qwen2" || (Bool(c, "attention_bias") ?? false),
                    Activation = Str(c, "hidden_act") ?? "silu",
                    BosTokenId = bos, EosTokenIds = eos,
                };
                if (cfg.Activation != "silu") throw new ModelFormatException(path, $"hidden_act '{cfg.Activation}' is not supported (silu only)");
                return cfg.Validate(path);
            }
            case "gpt2":
            {
                int dim = Req("n_embd", "hidden_size"), heads = Req("n_head", "num_attention_heads");
                var cfg = new ModelConfig
                {
                    Architecture = Architecture.Gpt2, ModelType = modelType,
                    HiddenSize = dim, IntermediateSize = Opt(c, "n_inner") ?? 4 * dim, Layers = Req("n_layer", "num_hidden_layers"),
                    Heads = heads, KvHeads = heads, VocabSize = Req("vocab_size"),
                    MaxPositions = Opt(c, "n_positions") ?? Opt(c, "n_ctx") ?? 1024,
                    NormEps = (float)(Dbl(c, "layer_norm_epsilon") ?? 1e-5),
                    TieWordEmbeddings = Bool(c, "tie_word_embeddings") ?? true,
                    AttentionBias = true,
                    Activation = Str(c, "activation_function") ?? "gelu_new",
                    BosTokenId = bos, EosTokenIds = eos,
                };
                if (cfg.Activation is not ("gelu_new" or "gelu_pytorch_tanh" or "gelu_fast"))
                    throw new ModelFormatException(path, $"activation_function '{cfg.Activation}' is not supported (gelu_new, the tanh approximation)");
                return cfg.Validate(path);
            }
            default:
                throw new ModelFormatException(path, $"model_type '{modelType}' is not supported (llama, mistral, qwen2, gpt2)");
        }
    }

    private ModelConfig Validate(string path)
    {
        void Positive(string name, int v) { if (v <= 0) throw new ModelFormatException(path, $"{name} = {v} must be positive"); }
        Positive("hidden_size", HiddenSize); Positive("intermediate_size", IntermediateSize); Positive("num_hidden_layers", Layers);
        Positive("num_attention_heads", Heads); Positive("num_key_value_heads", KvHeads); Positive("vocab_size", VocabSize);
        Positive("max_position_embeddings", MaxPositions);
        if (HiddenSize % Heads != 0) throw new ModelFormatException(path, $"hidden_size {HiddenSize} is not divisible by num_attention_heads {Heads}");
        if (Heads % KvHeads != 0) throw new ModelFormatException(path, $"num_attention_heads {Heads} is not divisible by num_key_value_heads {KvHeads}");
        if (HeadDim % 2 != 0) throw new ModelFormatException(path, $"head dimension {HeadDim} is odd");
        return this;
    }

    private static Llama3Scaling? RopeScalingOf(string path, JsonElement c)
    {
        if (!c.TryGetProperty("rope_scaling", out var s) || s.ValueKind != JsonValueKind.Object) return null;
        string type = Str(s, "rope_type") ?? Str(s, "type") ?? "";
        if (type == "default") return null;
        if (type != "llama3") throw new ModelFormatException(path, $"rope_scaling type '{type}' is not supported (llama3)");
        return new Llama3Scaling(Dbl(s, "factor") ?? 8, Dbl(s, "low_freq_factor") ?? 1, Dbl(s, "high_freq_factor") ?? 4,
            Opt(s, "original_max_position_embeddings") ?? 8192);
    }

    private static string? Str(JsonElement c, string n) => c.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
    private static int? Opt(JsonElement c, string n) => c.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
    private static double? Dbl(JsonElement c, string n) => c.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
    private static bool? Bool(JsonElement c, string n) => c.TryGetProperty(n, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : null;

    private static int[] Ids(JsonElement c, string n)
    {
        if (!c.TryGetProperty(n, out var v)) return [];
        if (v.ValueKind == JsonValueKind.Number) return [v.GetInt32()];
        if (v.ValueKind == JsonValueKind.Array) return v.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.Number).Select(e => e.GetInt32()).ToArray();
        return [];
    }
}

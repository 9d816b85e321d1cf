using KernelEngine.Formats;
using KernelEngine.Kernels.Rope;

namespace KernelEngine.Models.Families;

/// <summary>
/// The families KernelEngine runs. A Llama-like family is the Llama tensor table plus what it adds; each entry below
/// is the whole of what the runtime knows about that family beyond the shared forward pass.
/// </summary>
internal static class ModelFamilies
{
    private static (int, int) Vec(int n) => (1, n);

    /// <summary>Llama's tensors: pre-norm RMSNorm blocks, q/k/v/o, gated MLP; the LM head absent when tied.</summary>
    private static readonly TensorSlot[] LlamaTensors =
    [
        new(TensorRole.TokenEmbedding, "model.embed_tokens.weight", "token_embd.weight", c => (c.VocabSize, c.HiddenSize)),
        new(TensorRole.AttnNorm, "model.layers.{l}.input_layernorm.weight", "blk.{l}.attn_norm.weight", c => Vec(c.HiddenSize)),
        new(TensorRole.Wq, "model.layers.{l}.self_attn.q_proj.weight", "blk.{l}.attn_q.weight", c => (c.QDim, c.HiddenSize)),
        new(TensorRole.Wk, "model.layers.{l}.self_attn.k_proj.weight", "blk.{l}.attn_k.weight", c => (c.KvDim, c.HiddenSize)),
        new(TensorRole.Wv, "model.layers.{l}.self_attn.v_proj.weight", "blk.{l}.attn_v.weight", c => (c.KvDim, c.HiddenSize)),
        new(TensorRole.Wo, "model.layers.{l}.self_attn.o_proj.weight", "blk.{l}.attn_output.weight", c => (c.HiddenSize, c.QDim)),
        new(TensorRole.Bq, "model.layers.{l}.self_attn.q_proj.bias", "blk.{l}.attn_q.bias", c => Vec(c.QDim), c => c.AttentionBias),
        new(TensorRole.Bk, "model.layers.{l}.self_attn.k_proj.bias", "blk.{l}.attn_k.bias", c => Vec(c.KvDim), c => c.AttentionBias),
        new(TensorRole.Bv, "model.layers.{l}.self_attn.v_proj.bias", "blk.{l}.attn_v.bias", c => Vec(c.KvDim), c => c.AttentionBias),
        new(TensorRole.MlpNorm, "model.layers.{l}.post_attention_layernorm.weight", "blk.{l}.ffn_norm.weight", c => Vec(c.HiddenSize)),
        new(TensorRole.WGate, "model.layers.{l}.mlp.gate_proj.weight", "blk.{l}.ffn_gate.weight", c => (c.IntermediateSize, c.HiddenSize)),
        new(TensorRole.WUp, "model.layers.{l}.mlp.up_proj.weight", "blk.{l}.ffn_up.weight", c => (c.IntermediateSize, c.HiddenSize)),
        new(TensorRole.WDown, "model.layers.{l}.mlp.down_proj.weight", "blk.{l}.ffn_down.weight", c => (c.HiddenSize, c.IntermediateSize)),
        new(TensorRole.FinalNorm, "model.norm.weight", "output_norm.weight", c => Vec(c.HiddenSize)),
        new(TensorRole.LmHead, "lm_head.weight", "output.weight", c => (c.VocabSize, c.HiddenSize), c => !c.TieWordEmbeddings),
    ];

    /// <summary>Llama 1–3, Mistral, SmolLM, TinyLlama.</summary>
    public static readonly ModelFamily Llama = new()
    {
        Name = "llama", ModelTypes = ["llama", "mistral"], GgufArch = "llama", Tensors = LlamaTensors,
        GgufRopeLayout = RopeLayout.Interleaved, SlidingWindowByDefault = true, SlidingWindowEveryLayer = true,
    };

    /// <summary>Qwen2 / Qwen2.5: Llama with q/k/v biases.</summary>
    public static readonly ModelFamily Qwen2 = new()
    {
        Name = "qwen2", ModelTypes = ["qwen2"], GgufArch = "qwen2", Tensors = LlamaTensors, AttentionBias = true,
    };

    /// <summary>Qwen3: Llama with an RMSNorm over each head of q and k (weights of head_dim) before RoPE.</summary>
    public static readonly ModelFamily Qwen3 = new()
    {
        Name = "qwen3", ModelTypes = ["qwen3"], GgufArch = "qwen3", QkNorm = true,
        Tensors =
        [
            LlamaTensors[0],
            new(TensorRole.QNorm, "model.layers.{l}.self_attn.q_norm.weight", "blk.{l}.attn_q_norm.weight", c => Vec(c.HeadDim)),
            new(TensorRole.KNorm, "model.layers.{l}.self_attn.k_norm.weight", "blk.{l}.attn_k_norm.weight", c => Vec(c.HeadDim)),
            .. LlamaTensors[1..],
        ],
    };

    /// <summary>Phi-3 / Phi-3.5 / Phi-4-mini: Llama with q, k, v fused in qkv_proj and gate, up in gate_up_proj (split by
    /// row ranges of the stored bytes, so quantized weights stay quantized); longrope for the 128k variants.</summary>
    public static readonly ModelFamily Phi3 = new()
    {
        Name = "phi3", ModelTypes = ["phi3"], GgufArch = "phi3", SlidingWindowByDefault = true, SlidingWindowEveryLayer = true,
        Tensors =
        [
            LlamaTensors[0],
            new(TensorRole.AttnNorm, "model.layers.{l}.input_layernorm.weight", "blk.{l}.attn_norm.weight", c => Vec(c.HiddenSize)),
            new(TensorRole.WQkv, "model.layers.{l}.self_attn.qkv_proj.weight", "blk.{l}.attn_qkv.weight", c => (c.QDim + 2 * c.KvDim, c.HiddenSize))
            {
                Parts = [(TensorRole.Wq, c => c.QDim), (TensorRole.Wk, c => c.KvDim), (TensorRole.Wv, c => c.KvDim)],
            },
            new(TensorRole.Wo, "model.layers.{l}.self_attn.o_proj.weight", "blk.{l}.attn_output.weight", c => (c.HiddenSize, c.QDim)),
            new(TensorRole.MlpNorm, "model.layers.{l}.post_attention_layernorm.weight", "blk.{l}.ffn_norm.weight", c => Vec(c.HiddenSize)),
            new(TensorRole.WGateUp, "model.layers.{l}.mlp.gate_up_proj.weight", "blk.{l}.ffn_up.weight", c => (2 * c.IntermediateSize, c.HiddenSize))
            {
                Parts = [(TensorRole.WGate, c => c.IntermediateSize), (TensorRole.WUp, c => c.IntermediateSize)],
            },
            new(TensorRole.WDown, "model.layers.{l}.mlp.down_proj.weight", "blk.{l}.ffn_down.weight", c => (c.HiddenSize, c.IntermediateSize)),
            .. LlamaTensors[^2..],
        ],
    };

    /// <summary>Gemma 2: Llama's attention and gated MLP with GeGLU, RMSNorm scaling by 1 + w, norms after attention and
    /// after the MLP as well as before, the embedding scaled by √hidden, attention scale 1/√query_pre_attn_scalar,
    /// attention and final logits soft-capped, a sliding window on every other layer; tied embeddings.</summary>
    public static readonly ModelFamily Gemma2 = new()
    {
        Name = "gemma2", ModelTypes = ["gemma2"], GgufArch = "gemma2", NormPlusOne = true, ScaleEmbedding = true, GatedGelu = true,
        SlidingWindowByDefault = true, SlidingWindowPattern = 2, TiedByDefault = true,
        Tensors =
        [
            LlamaTensors[0],
            new(TensorRole.AttnNorm, "model.layers.{l}.input_layernorm.weight", "blk.{l}.attn_norm.weight", c => Vec(c.HiddenSize)),
            .. LlamaTensors.Where(t => t.Role is TensorRole.Wq or TensorRole.Wk or TensorRole.Wv or TensorRole.Wo),
            new(TensorRole.PostAttnNorm, "model.layers.{l}.post_attention_layernorm.weight", "blk.{l}.post_attention_norm.weight", c => Vec(c.HiddenSize)),
            new(TensorRole.MlpNorm, "model.layers.{l}.pre_feedforward_layernorm.weight", "blk.{l}.ffn_norm.weight", c => Vec(c.HiddenSize)),
            .. LlamaTensors.Where(t => t.Role is TensorRole.WGate or TensorRole.WUp or TensorRole.WDown),
            new(TensorRole.PostMlpNorm, "model.layers.{l}.post_feedforward_layernorm.weight", "blk.{l}.post_ffw_norm.weight", c => Vec(c.HiddenSize)),
            .. LlamaTensors[^2..],
        ],
    };

    /// <summary>Gemma 3 (text): Gemma 2 without soft-capping, with Qwen3's per-head q/k norms (1 + w too), five sliding-window
    /// layers to one global one, and a RoPE base of their own for the local layers (rope_local_base_freq).</summary>
    public static readonly ModelFamily Gemma3 = Gemma2 with
    {
        Name = "gemma3", ModelTypes = ["gemma3_text"], GgufArch = "gemma3", QkNorm = true, SlidingWindowPattern = 6, LocalRopeTheta = 10000,
        Tensors =
        [
            .. Gemma2.Tensors.Take(6),   // embedding, attention norm, q, k, v, o
            new(TensorRole.QNorm, "model.layers.{l}.self_attn.q_norm.weight", "blk.{l}.attn_q_norm.weight", c => Vec(c.HeadDim)),
            new(TensorRole.KNorm, "model.layers.{l}.self_attn.k_norm.weight", "blk.{l}.attn_k_norm.weight", c => Vec(c.HeadDim)),
            .. Gemma2.Tensors.Skip(6),
        ],
    };

    /// <summary>GPT-2: LayerNorm with biases, learned positions, GELU MLP; Conv1D weights stored (in, out), q/k/v fused in
    /// c_attn (the loader transposes and splits them). The names here are without the optional "transformer." prefix.</summary>
    public static readonly ModelFamily Gpt2 = new()
    {
        Name = "gpt2", ModelTypes = ["gpt2"], GgufArch = "gpt2", Architecture = Architecture.Gpt2,
        Tensors =
        [
            new(TensorRole.TokenEmbedding, "wte.weight", "token_embd.weight", c => (c.VocabSize, c.HiddenSize)),
            new(TensorRole.PositionEmbedding, "wpe.weight", "position_embd.weight", c => (c.MaxPositions, c.HiddenSize)),
            new(TensorRole.AttnNorm, "h.{l}.ln_1.weight", "blk.{l}.attn_norm.weight", c => Vec(c.HiddenSize)),
            new(TensorRole.AttnNormBias, "h.{l}.ln_1.bias", "blk.{l}.attn_norm.bias", c => Vec(c.HiddenSize)),
            new(TensorRole.Wq, "h.{l}.attn.c_attn.weight", "blk.{l}.attn_qkv.weight", c => (c.HiddenSize, 3 * c.HiddenSize)),
            new(TensorRole.Bq, "h.{l}.attn.c_attn.bias", "blk.{l}.attn_qkv.bias", c => Vec(3 * c.HiddenSize)),
            new(TensorRole.Wo, "h.{l}.attn.c_proj.weight", "blk.{l}.attn_output.weight", c => (c.HiddenSize, c.HiddenSize)),
            new(TensorRole.Bo, "h.{l}.attn.c_proj.bias", "blk.{l}.attn_output.bias", c => Vec(c.HiddenSize)),
            new(TensorRole.MlpNorm, "h.{l}.ln_2.weight", "blk.{l}.ffn_norm.weight", c => Vec(c.HiddenSize)),
            new(TensorRole.MlpNormBias, "h.{l}.ln_2.bias", "blk.{l}.ffn_norm.bias", c => Vec(c.HiddenSize)),
            new(TensorRole.WUp, "h.{l}.mlp.c_fc.weight", "blk.{l}.ffn_up.weight", c => (c.HiddenSize, c.IntermediateSize)),
            new(TensorRole.BUp, "h.{l}.mlp.c_fc.bias", "blk.{l}.ffn_up.bias", c => Vec(c.IntermediateSize)),
            new(TensorRole.WDown, "h.{l}.mlp.c_proj.weight", "blk.{l}.ffn_down.weight", c => (c.IntermediateSize, c.HiddenSize)),
            new(TensorRole.BDown, "h.{l}.mlp.c_proj.bias", "blk.{l}.ffn_down.bias", c => Vec(c.HiddenSize)),
            new(TensorRole.FinalNorm, "ln_f.weight", "output_norm.weight", c => Vec(c.HiddenSize)),
            new(TensorRole.FinalNormBias, "ln_f.bias", "output_norm.bias", c => Vec(c.HiddenSize)),
        ],
    };

    /// <summary>Every family.</summary>
    public static readonly IReadOnlyList<ModelFamily> All = [Llama, Qwen2, Qwen3, Phi3, Gemma2, Gemma3, Gpt2];

    /// <summary>The family of a config.json <c>model_type</c>, or null.</summary>
    public static ModelFamily? ByModelType(string modelType) => All.FirstOrDefault(f => f.ModelTypes.Contains(modelType));

    /// <summary>The family of a GGUF <c>general.architecture</c>, or null.</summary>
    public static ModelFamily? ByGgufArch(string arch) => All.FirstOrDefault(f => f.GgufArch == arch);

    /// <summary>The family of a loaded config.</summary>
    public static ModelFamily Of(ModelConfig c) => ByModelType(c.ModelType) ?? ByGgufArch(c.ModelType)
        ?? throw new ModelFormatException("config.json", $"model_type '{c.ModelType}' has no family ({string.Join(", ", All.SelectMany(f => f.ModelTypes))})");
}

using KernelEngine.Formats;
using KernelEngine.Kernels.Rope;

namespace KernelEngine.Models.Families;

/// <summary>
/// A model family as data: which Hugging Face <c>model_type</c> values and GGUF architecture it is, the tensors it
/// stores under both naming schemes, and the few places its forward pass differs from Llama's. The loader, the GGUF
/// reader and exporter, the quantizer and the presets read it; adding a family is adding one (see
/// <see cref="ModelFamilies"/>), plus a kernel only where it brings a new op.
/// </summary>
internal sealed record ModelFamily
{
    /// <summary>The family's name (its GGUF architecture unless several share one).</summary>
    public required string Name { get; init; }
    /// <summary>config.json <c>model_type</c> values read as this family.</summary>
    public required string[] ModelTypes { get; init; }
    /// <summary>GGUF <c>general.architecture</c>, also the prefix of its metadata keys.</summary>
    public required string GgufArch { get; init; }
    /// <summary>The forward-pass skeleton (Llama: RMSNorm, RoPE, gated MLP; GPT-2: LayerNorm, learned positions).</summary>
    public Architecture Architecture { get; init; } = Architecture.Llama;
    /// <summary>The tensors, global and per layer (the latter with <c>{l}</c> in their names).</summary>
    public required IReadOnlyList<TensorSlot> Tensors { get; init; }
    /// <summary>RMSNorm over each head of q and k before RoPE (Qwen3, Gemma 3).</summary>
    public bool QkNorm { get; init; }
    /// <summary>RMSNorm weights are stored as w and scale by 1 + w (Gemma); GGUF files store 1 + w (llama.cpp's converter
    /// adds it), so only Hugging Face folders get the offset at load.</summary>
    public bool NormPlusOne { get; init; }
    /// <summary>The embedding output is multiplied by √hidden_size (Gemma).</summary>
    public bool ScaleEmbedding { get; init; }
    /// <summary>The MLP is GeGLU, down(gelu_tanh(gate(x)) · up(x)) (Gemma), not SwiGLU.</summary>
    public bool GatedGelu { get; init; }
    /// <summary>q/k/v projections have biases whatever config.json says (Qwen2).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>config.json's <c>sliding_window</c> applies unless <c>use_sliding_window</c> is false (Mistral, Phi-3); Qwen's
    /// configs carry a window that applies only when <c>use_sliding_window</c> is true.</summary>
    public bool SlidingWindowByDefault { get; init; }
    /// <summary>The window applies to every layer (Mistral, Phi-3); otherwise to the layers of
    /// <see cref="SlidingWindowPattern"/>, or from max_window_layers on (Qwen), unless layer_types lists them.</summary>
    public bool SlidingWindowEveryLayer { get; init; }
    /// <summary>n &gt; 0: every n-th layer is global, the others windowed (Gemma 2: 2, Gemma 3: 6; also llama.cpp's rule
    /// for these architectures' GGUF files).</summary>
    public int SlidingWindowPattern { get; init; }
    /// <summary>RoPE base of the windowed layers when they have their own (Gemma 3: 10000, config.json
    /// <c>rope_local_base_freq</c>; llama.cpp has no GGUF key for it), or null.</summary>
    public double? LocalRopeTheta { get; init; }
    /// <summary>tie_word_embeddings when config.json does not say (Gemma: true).</summary>
    public bool TiedByDefault { get; init; }

    /// <summary>Layers 0..layers-1 windowed under <see cref="SlidingWindowPattern"/> n: all but every n-th.</summary>
    public bool[] PatternLayers(int layers, int pattern) => Enumerable.Range(0, layers).Select(i => (i + 1) % pattern != 0).ToArray();
    /// <summary>How llama.cpp's GGUF files of this architecture lay out RoPE pairs: the llama architecture stores q/k rows
    /// permuted for interleaved pairs (its converter permutes them), the others keep Hugging Face's rotate-half order.</summary>
    public RopeLayout GgufRopeLayout { get; init; } = RopeLayout.RotateHalf;

    /// <summary>Every tensor the family reads for this config, in file order: the global tensors listed before the first
    /// per-layer one (embeddings), every layer's, then the remaining global ones (final norm, LM head).</summary>
    public IEnumerable<(TensorSlot Slot, string Name, int Layer)> Expected(ModelConfig c)
    {
        int firstLayer = Tensors.ToList().FindIndex(s => s.PerLayer);
        var before = Tensors.Take(firstLayer).Where(s => s.Present(c));
        var after = Tensors.Skip(firstLayer).Where(s => !s.PerLayer && s.Present(c));
        foreach (var s in before) yield return (s, s.Hf, -1);
        for (int l = 0; l < c.Layers; l++)
            foreach (var s in Tensors.Where(s => s.PerLayer && s.Present(c))) yield return (s, s.HfName(l), l);
        foreach (var s in after) yield return (s, s.Hf, -1);
    }

    /// <summary>The slot of a role, or null when the family has none (a role inside a fused tensor has no slot of its own).</summary>
    public TensorSlot? Slot(TensorRole role) => Tensors.FirstOrDefault(s => s.Role == role);

    /// <summary>Hugging Face name of a GGUF tensor name, or null when the family has no such tensor.</summary>
    public string? HfNameOf(string gguf)
    {
        int layer = -1;
        string pattern = gguf;
        if (gguf.StartsWith("blk.", StringComparison.Ordinal))
        {
            int dot = gguf.IndexOf('.', 4);
            if (dot < 0 || !int.TryParse(gguf.AsSpan(4, dot - 4), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out layer)) return null;
            pattern = "blk.{l}" + gguf[dot..];
        }
        var slot = Tensors.FirstOrDefault(s => s.Gguf == pattern);
        return slot == null ? null : slot.PerLayer ? slot.HfName(layer) : slot.Hf;
    }
}

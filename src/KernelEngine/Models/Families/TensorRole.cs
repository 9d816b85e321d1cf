namespace KernelEngine.Models.Families;

/// <summary>What a stored tensor is in the forward pass; a family names each role it has (see <see cref="ModelFamily"/>).</summary>
internal enum TensorRole
{
    TokenEmbedding, PositionEmbedding, FinalNorm, FinalNormBias, LmHead,
    // per layer
    AttnNorm, AttnNormBias, Wq, Wk, Wv, Wo, Bq, Bk, Bv, Bo, QNorm, KNorm, PostAttnNorm,
    MlpNorm, MlpNormBias, WGate, WUp, BUp, WDown, BDown, PostMlpNorm,
    // fused tensors, stored as one and split by rows (see TensorSlot.Parts)
    WQkv, WGateUp,
}

/// <summary>
/// One tensor of a family: its role, its Hugging Face and GGUF names (<c>{l}</c> stands for the layer index), its
/// (rows, cols) from the config (rows 1 for a vector), and when the family has it (null: always).
/// </summary>
internal sealed record TensorSlot(TensorRole Role, string Hf, string Gguf, Func<Formats.ModelConfig, (int Rows, int Cols)> Shape,
    Func<Formats.ModelConfig, bool>? When = null)
{
    /// <summary>A fused tensor's parts in row order with their row counts (Phi-3's qkv_proj: q, k, v); the loader serves
    /// each as a weight of its own, a row range of the stored bytes. Null for an ordinary tensor.</summary>
    public (TensorRole Role, Func<Formats.ModelConfig, int> Rows)[]? Parts { get; init; }

    public bool PerLayer => Hf.Contains("{l}", StringComparison.Ordinal);
    public string HfName(int layer) => Hf.Replace("{l}", layer.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
    public string GgufName(int layer) => Gguf.Replace("{l}", layer.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
    public bool Present(Formats.ModelConfig c) => When?.Invoke(c) ?? true;
}

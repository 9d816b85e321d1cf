using KernelEngine.Backends;

namespace KernelEngine.Models;

/// <summary>Weights of one transformer layer, on the backend. Matrices are (out, in).</summary>
internal sealed class LayerWeights
{
    public required DeviceWeight AttnNorm { get; init; }       // (dim)
    public DeviceWeight? AttnNormBias { get; init; }           // (dim), LayerNorm only
    public required DeviceWeight Wq { get; init; }             // (heads * headDim, dim)
    public required DeviceWeight Wk { get; init; }             // (kvHeads * headDim, dim)
    public required DeviceWeight Wv { get; init; }             // (kvHeads * headDim, dim)
    public required DeviceWeight Wo { get; init; }             // (dim, heads * headDim)
    public DeviceWeight? Bq { get; init; }                     // (heads * headDim)
    public DeviceWeight? Bk { get; init; }                     // (kvHeads * headDim)
    public DeviceWeight? Bv { get; init; }                     // (kvHeads * headDim)
    public DeviceWeight? Bo { get; init; }                     // (dim)
    public DeviceWeight? QNorm { get; init; }                  // (headDim), RMSNorm of each q head (Qwen3)
    public DeviceWeight? KNorm { get; init; }                  // (headDim), RMSNorm of each k head
    public DeviceWeight? PostAttnNorm { get; init; }           // (dim), Gemma: RMSNorm of the attention output
    public DeviceWeight? PostMlpNorm { get; init; }            // (dim), Gemma: RMSNorm of the MLP output
    public required DeviceWeight MlpNorm { get; init; }        // (dim)
    public DeviceWeight? MlpNormBias { get; init; }            // (dim)
    public DeviceWeight? WGate { get; init; }                  // (hidden, dim), SiLU-gated MLP only
    public required DeviceWeight WUp { get; init; }            // (hidden, dim)  (GPT-2: c_fc)
    public DeviceWeight? BUp { get; init; }                    // (hidden)
    public required DeviceWeight WDown { get; init; }          // (dim, hidden)  (GPT-2: mlp.c_proj)
    public DeviceWeight? BDown { get; init; }                  // (dim)

    public IEnumerable<DeviceWeight> All() =>
        new[] { AttnNorm, AttnNormBias, Wq, Wk, Wv, Wo, Bq, Bk, Bv, Bo, QNorm, KNorm, PostAttnNorm, PostMlpNorm, MlpNorm, MlpNormBias, WGate, WUp, BUp, WDown, BDown }
            .Where(w => w != null)!;
}

/// <summary>All weights of a model, on the backend.</summary>
internal sealed class TransformerWeights : IDisposable
{
    public required DeviceWeight TokenEmbedding { get; init; }    // (vocab, dim)
    public DeviceWeight? PositionEmbedding { get; init; }         // (maxPositions, dim), GPT-2
    public required LayerWeights[] Layers { get; init; }
    public required DeviceWeight FinalNorm { get; init; }         // (dim)
    public DeviceWeight? FinalNormBias { get; init; }             // (dim)
    public required DeviceWeight LmHead { get; init; }            // (vocab, dim); the embedding when tied

    public IEnumerable<DeviceWeight> All()
    {
        var seen = new HashSet<DeviceWeight>(ReferenceEqualityComparer.Instance);
        foreach (var w in new[] { TokenEmbedding, PositionEmbedding, FinalNorm, FinalNormBias, LmHead }.Concat(Layers.SelectMany(l => l.All())))
            if (w != null && seen.Add(w)) yield return w;
    }

    public long Bytes => All().Sum(w => w.Bytes);

    public void Dispose()
    {
        foreach (var w in All()) w.Dispose();
    }
}

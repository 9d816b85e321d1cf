using KernelEngine.Kernels;
using KernelEngine.Kernels.Formats;

namespace KernelEngine.Formats;

/// <summary>
/// Which type each tensor gets, as llama.cpp's <c>llama-quantize</c> decides (llama-quant.cpp, llama_tensor_get_type):
/// a base type for every matrix; for the K mixes (q4_k_m, q5_k_m) attn_v and ffn_down of the layers <c>use_more_bits</c>
/// picks get Q6_K; the LM head (or the embedding when tied) gets Q6_K except in Q8_0 files; a row that is not a whole
/// number of K super-blocks falls back to Q5_0 / Q5_1 / Q8_0 (from Q4_K / Q5_K / Q6_K), and to F16 when not even 32 fits.
/// A plain format name (q8_0, q4_k, f16, ...) parses to a mix of one type with the same fallbacks; <c>ke quantize</c> applies
/// plain formats its own way (every matrix in that type, embeddings kept unless asked) and the named mixes llama.cpp's way.
/// </summary>
public sealed record QuantizationMix(string Name, WeightType Base, bool MoreBitsForVAndDown, bool Q6KHead)
{
    /// <summary>llama.cpp's named mixes (q4_k_m, q5_k_m, ...).</summary>
    public static readonly IReadOnlyList<QuantizationMix> Named =
    [
        new("q4_k_m", WeightType.Q4_K, true, true),
        new("q5_k_m", WeightType.Q5_K, true, true),
        new("q4_k_s", WeightType.Q4_K, false, true),
        new("q5_k_s", WeightType.Q5_K, false, true),
    ];

    /// <summary>A mix by name, or a single format (q6_k, q4_0, ...; the legacy 32-blocks get llama.cpp's Q6_K head too).</summary>
    public static QuantizationMix Parse(string name)
    {
        if (Named.FirstOrDefault(m => m.Name.Equals(name, StringComparison.OrdinalIgnoreCase)) is { } mix) return mix;
        var f = WeightFormat.FromName(name) ?? throw new InvalidRequestException(
            $"unknown quantization '{name}' ({string.Join(", ", Named.Select(m => m.Name))}, {WeightFormat.Names})");
        bool head = f.Type is WeightType.Q4_0 or WeightType.Q4_1 or WeightType.Q5_0 or WeightType.Q5_1 or WeightType.Q4_K or WeightType.Q5_K or WeightType.Q6_K;
        return new QuantizationMix(f.Name, f.Type, false, head);
    }

    /// <summary>llama.cpp's use_more_bits: the first eighth, the last eighth and every third layer between.</summary>
    public static bool UseMoreBits(int layer, int layers) => layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;

    /// <summary>The type of a matrix of <paramref name="cols"/> columns: role "v", "down", "head" (LM head, or the embedding
    /// when tied) or "" for the rest, in layer <paramref name="layer"/> of <paramref name="layers"/>.</summary>
    public WeightType TypeFor(string role, int layer, int layers, long cols)
    {
        var t = Base;
        if (MoreBitsForVAndDown && role is "v" or "down" && UseMoreBits(layer, layers)) t = WeightType.Q6_K;
        if (role == "head" && Q6KHead) t = WeightType.Q6_K;
        return Fallback(t, cols);
    }

    /// <summary>llama.cpp's fallback for rows that are not whole blocks of the chosen type.</summary>
    public static WeightType Fallback(WeightType t, long cols)
    {
        if (t.Format().FitsRow(cols)) return t;
        t = t switch { WeightType.Q4_K => WeightType.Q5_0, WeightType.Q5_K => WeightType.Q5_1, WeightType.Q6_K => WeightType.Q8_0, _ => t };
        return t.Format().FitsRow(cols) ? t : WeightType.F16;
    }
}

using System.Text;
using System.Text.Json;
using KernelEngine.Formats;
using KernelEngine.Kernels;

namespace KernelEngine.Benchmarking;

/// <summary>A model shape with random weights, so benchmarks run on a fresh machine with no download.</summary>
/// <param name="Family">config.json's model_type ("llama", "qwen3", ...).</param>
/// <param name="HeadDim">config.json's head_dim when it is not Dim / Heads.</param>
public sealed record Preset(string Name, int Dim, int Layers, int Heads, int KvHeads, int Hidden, int Vocab, int Context, bool Tied, string Description,
    string Family = "llama", int? HeadDim = null);

/// <summary>
/// Real model shapes, filled with seeded random weights (uniform ±0.04, norms 1) and written once as an ordinary
/// model folder (config.json, model.safetensors in the requested dtype, a synthetic byte-level BPE tokenizer.json),
/// cached under the temp folder. Everything downstream (loading, quantized formats, GGUF export) is the real path.
/// </summary>
public static class Presets
{
    /// <summary>Every preset, by name.</summary>
    public static readonly IReadOnlyList<Preset> All =
    [
        new("llama-tiny", 64, 5, 8, 4, 172, 512, 512, true, "stories260K's shape"),
        new("llama-tiny-32k", 64, 2, 4, 2, 172, 32000, 1024, true, "a tiny shape with a 32,000-token byte-level BPE vocabulary (constrained-decoding tests)"),
        new("llama-kq", 256, 2, 4, 2, 768, 1024, 512, false, "a small shape whose rows are whole 256-element K-quant super-blocks (tests)"),
        new("llama-160m", 768, 12, 12, 12, 3072, 32000, 32768, false, "JackFram/llama-160m's shape"),
        new("llama-1b", 2048, 22, 32, 4, 5632, 32000, 32768, false, "TinyLlama-1.1B's shape (GQA 32/4)"),
        new("qwen2-tiny", 64, 4, 4, 2, 192, 512, 512, true, "Qwen2 at a tiny shape: q/k/v biases, GQA (tests)", "qwen2"),
        new("qwen3-tiny", 64, 4, 4, 2, 192, 512, 512, true, "Qwen3 at a tiny shape: q/k norms, head_dim 32 != 64 / 4 (tests)", "qwen3", 32),
        new("phi3-tiny", 64, 4, 4, 2, 192, 512, 512, false, "Phi-3 at a tiny shape: fused qkv_proj and gate_up_proj, GQA (tests)", "phi3"),
        new("phi3-mini", 3072, 32, 32, 32, 8192, 32064, 4096, false, "Phi-3-mini-4k's shape (fused projections)", "phi3"),
        new("phi4-mini", 3072, 32, 24, 8, 8192, 200064, 131072, true, "Phi-4-mini's shape (partial rotary 0.75, longrope, GQA 24/8, tied)", "phi3", 128),
        new("gemma2-tiny", 64, 4, 4, 2, 192, 512, 512, true, "Gemma 2 at a tiny shape: window 16 on every other layer, soft-caps that bite (tests)", "gemma2", 16),
        new("gemma2-2b", 2304, 26, 8, 4, 9216, 256000, 8192, true, "Gemma-2-2B's shape (head_dim 256, window 4096, soft-caps 50 / 30)", "gemma2", 256),
        new("gemma3-tiny", 64, 6, 4, 2, 192, 512, 512, true, "Gemma 3 at a tiny shape: q/k norms, 5 local layers (window 16, base 10000) : 1 global (tests)", "gemma3_text", 16),
        new("gemma3-1b", 1152, 26, 4, 1, 6912, 262144, 32768, true, "Gemma-3-1B's shape (head_dim 256, window 512, 5 local : 1 global)", "gemma3_text", 256),
        new("qwen3-0.6b", 1024, 28, 16, 8, 3072, 151936, 40960, true, "Qwen3-0.6B's shape (head_dim 128, q/k norms, tied)", "qwen3", 128),
    ];

    /// <summary>The preset named <paramref name="name"/>; <see cref="InvalidRequestException"/> naming the known ones otherwise.</summary>
    public static Preset Get(string name) =>
        All.FirstOrDefault(p => p.Name == name) ?? throw new InvalidRequestException($"unknown preset '{name}' ({string.Join(", ", All.Select(p => p.Name))})");

    /// <summary>Returns the folder of the preset in the dtype, creating it on first use.</summary>
    public static string Materialize(string name, WeightType type, string? root = null)
    {
        var p = Get(name);
        root ??= Path.Combine(Path.GetTempPath(), "kernelengine-presets");
        string dir = Path.Combine(root, $"{p.Name}-{type.Name()}");
        if (File.Exists(Path.Combine(dir, "model.safetensors")) && File.Exists(Path.Combine(dir, "tokenizer.json"))) return UpdateContext(dir, p);
        string f32 = type == WeightType.F32 ? dir : Path.Combine(root, $"{p.Name}-f32");
        if (!File.Exists(Path.Combine(f32, "model.safetensors"))) WriteF32(p, f32);
        else UpdateContext(f32, p);
        if (type != WeightType.F32)
        {
            string tmp = dir + ".tmp";
            ModelQuantizer.Quantize(f32, tmp, new QuantizeOptions { Type = type });
            if (Directory.Exists(dir)) Directory.Delete(dir, true);
            Directory.Move(tmp, dir);
        }
        return dir;
    }

    /// <summary>A folder cached by an earlier version whose preset has since got a longer context: the weights are the
    /// same, only config.json's max_position_embeddings is rewritten.</summary>
    private static string UpdateContext(string dir, Preset p)
    {
        string path = Path.Combine(dir, "config.json");
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        if ((int?)config["max_position_embeddings"] == p.Context) return dir;
        config["max_position_embeddings"] = p.Context;
        File.WriteAllText(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return dir;
    }

    private static void WriteF32(Preset p, string dir)
    {
        string tmp = dir + ".tmp";
        Directory.CreateDirectory(tmp);
        var config = new Dictionary<string, object>
        {
            ["architectures"] = new[] { ArchitectureName(p.Family) }, ["model_type"] = p.Family, ["hidden_size"] = p.Dim,
            ["intermediate_size"] = p.Hidden, ["num_hidden_layers"] = p.Layers, ["num_attention_heads"] = p.Heads,
            ["num_key_value_heads"] = p.KvHeads, ["vocab_size"] = p.Vocab, ["max_position_embeddings"] = p.Context,
            ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0, ["hidden_act"] = "silu", ["tie_word_embeddings"] = p.Tied,
            ["bos_token_id"] = 1, ["eos_token_id"] = 2, ["torch_dtype"] = "float32",
        };
        if (p.HeadDim is int hd) config["head_dim"] = hd;
        if (p.Family == "qwen3") config["attention_bias"] = false;
        if (p.Name == "phi4-mini")
        {
            // Phi-4-mini's rotary settings (its real longrope factors do not matter to a random-weight benchmark: ones here)
            config["partial_rotary_factor"] = 0.75;
            int pairs = (int)((p.HeadDim ?? p.Dim / p.Heads) * 0.75) / 2;
            config["rope_scaling"] = new Dictionary<string, object> { ["type"] = "longrope", ["short_factor"] = Enumerable.Repeat(1.0, pairs).ToArray(), ["long_factor"] = Enumerable.Repeat(1.0, pairs).ToArray() };
            config["original_max_position_embeddings"] = 4096;
        }
        if (p.Family == "gemma3_text")
        {
            bool tiny = p.Name.EndsWith("-tiny", StringComparison.Ordinal);
            config["hidden_activation"] = config["hidden_act"] = "gelu_pytorch_tanh";
            config["query_pre_attn_scalar"] = p.HeadDim ?? p.Dim / p.Heads;
            config["sliding_window"] = tiny ? 16 : 512;
            config["sliding_window_pattern"] = 6;
            config["rope_theta"] = 1_000_000.0;
            config["rope_local_base_freq"] = 10_000.0;
            config["rms_norm_eps"] = 1e-6;
        }
        if (p.Family == "gemma2")
        {
            bool tiny = p.Name.EndsWith("-tiny", StringComparison.Ordinal);
            config["hidden_activation"] = config["hidden_act"] = "gelu_pytorch_tanh";
            config["query_pre_attn_scalar"] = p.HeadDim ?? p.Dim / p.Heads;
            // the tiny preset's caps are near its random weights' score and logit sizes, so that the tests see them work
            config["attn_logit_softcapping"] = tiny ? 0.05 : 50.0;
            config["final_logit_softcapping"] = tiny ? 0.3 : 30.0;
            config["sliding_window"] = tiny ? 16 : 4096;
            config["rms_norm_eps"] = 1e-6;
        }
        string json = JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true });
        File.WriteAllText(Path.Combine(tmp, "config.json"), json);
        using var doc = JsonDocument.Parse(json);
        var c = ModelConfig.Parse(Path.Combine(tmp, "config.json"), doc.RootElement);
        var w = new SafeTensorsWriter().Metadata("format", "pt").Metadata("ke.preset", p.Name);
        // Every tensor of the family's table: matrices and biases uniform ±0.04; norms 1, the per-head q/k norms 1 ± 0.04 so
        // that a wrong or missing one shows in the logits. Streamed a chunk at a time: a real shape's embedding alone can
        // pass 2 GB (Gemma-2-2B: 256,000 x 2,304 floats).
        var fills = new List<(long Count, Fill Fill)>();
        foreach (var (slot, name, _) in Models.Families.ModelFamilies.Of(c).Expected(c))
        {
            var (rows, cols) = slot.Shape(c);
            w.Declare(name, SafeTensorDType.F32, rows > 1 ? [rows, cols] : [cols]);
            fills.Add(((long)rows * cols, rows > 1 ? Fill.Random
                : slot.Role is Models.Families.TensorRole.QNorm or Models.Families.TensorRole.KNorm ? Fill.AroundOne
                : slot.Role is Models.Families.TensorRole.Bq or Models.Families.TensorRole.Bk or Models.Families.TensorRole.Bv ? Fill.Random
                : Fill.Ones));
        }
        ulong seed = 0x5EED;
        w.Write(Path.Combine(tmp, "model.safetensors"), stream =>
        {
            var chunk = new float[1 << 20];
            foreach (var (count, fill) in fills)
                for (long done = 0; done < count; done += chunk.Length)
                {
                    var f = chunk.AsSpan(0, (int)Math.Min(chunk.Length, count - done));
                    if (fill == Fill.Ones) f.Fill(1f);
                    else Random(f, ref seed, fill == Fill.AroundOne ? 1f : 0f);
                    stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(f));
                }
        });
        WriteTokenizer(Path.Combine(tmp, "tokenizer.json"), p.Vocab);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.Move(tmp, dir);
    }

    private static string ArchitectureName(string family) => family switch
    {
        "qwen2" => "Qwen2ForCausalLM", "qwen3" => "Qwen3ForCausalLM", "phi3" => "Phi3ForCausalLM", "gemma2" => "Gemma2ForCausalLM", "gemma3_text" => "Gemma3ForCausalLM", "mistral" => "MistralForCausalLM", _ => "LlamaForCausalLM",
    };

    private enum Fill { Random, AroundOne, Ones }

    /// <summary>Uniform ±0.04 around <paramref name="center"/> from a xorshift stream (the same numbers however the
    /// tensors are chunked).</summary>
    private static void Random(Span<float> f, ref ulong state, float center)
    {
        ulong s = state;
        for (int i = 0; i < f.Length; i++)
        {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            f[i] = ((s >> 40) * (1f / (1 << 24)) * 2 - 1) * 0.04f + center;
        }
        state = s;
    }

    /// <summary>A byte-level BPE tokenizer.json with the 256 bytes and (vocab - 256) merges of byte pairs.</summary>
    public static void WriteTokenizer(string path, int vocab)
    {
        var byteToChar = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
            byteToChar[b] = b is >= 33 and <= 126 or >= 161 and <= 172 or >= 174 and <= 255 ? (char)b : (char)(256 + n++);
        var v = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++) v[byteToChar[b].ToString()] = b;
        var merges = new List<string>();
        // Printable ASCII pairs first (they occur in text), then the rest.
        var order = Enumerable.Range(32, 95).Concat(Enumerable.Range(0, 256).Where(b => b is < 32 or > 126)).ToArray();
        foreach (int a in order)
        {
            foreach (int b in order)
            {
                if (v.Count >= vocab) break;
                string m = byteToChar[a].ToString() + byteToChar[b];
                if (v.ContainsKey(m)) continue;
                v[m] = v.Count;
                merges.Add(byteToChar[a] + " " + byteToChar[b]);
            }
        }
        var json = new
        {
            version = "1.0", added_tokens = Array.Empty<object>(), normalizer = (object?)null,
            pre_tokenizer = new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = true },
            decoder = new { type = "ByteLevel" },
            model = new { type = "BPE", vocab = v, merges },
        };
        File.WriteAllText(path, JsonSerializer.Serialize(json), new UTF8Encoding(false));
    }
}

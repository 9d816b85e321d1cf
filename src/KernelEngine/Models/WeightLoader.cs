using KernelEngine.Backends;
using KernelEngine.Formats;
using KernelEngine.Kernels;
using KernelEngine.Models.Families;

namespace KernelEngine.Models;

/// <summary>
/// Maps a model folder's tensor names to <see cref="TransformerWeights"/> for each family, checks every shape
/// against the config (a missing or mis-shaped tensor is an error naming it) and uploads to the backend.
/// Llama family: Hugging Face names (q/k rows in rotate-half order). GPT-2: Conv1D weights are stored (in, out)
/// and are transposed once here; the fused c_attn is split into q, k, v.
/// </summary>
internal static unsafe class WeightLoader
{
    public static TransformerWeights Load(ITensorSource store, ModelConfig c, IBackend backend) => Load(store, c, backend, null, default);

    /// <summary>Loads with progress (tensors uploaded of the total, and the last one's name) and cancellation between
    /// tensors; on cancellation or an error everything uploaded so far is freed.</summary>
    public static TransformerWeights Load(ITensorSource store, ModelConfig c, IBackend backend, Action<int, int, string>? progress, CancellationToken ct)
    {
        var up = new Uploader(backend, Expected(c, store).Count(), progress, ct);
        try
        {
            return c.Architecture switch
            {
                Architecture.Llama => LoadLlama(store, c, up),
                _ => LoadGpt2(store, c, up),
            };
        }
        catch
        {
            up.DisposeAll();
            throw;
        }
    }

    /// <summary>Uploads weights to the backend one at a time: reports progress, checks cancellation, remembers what it made.</summary>
    private sealed class Uploader(IBackend backend, int total, Action<int, int, string>? progress, CancellationToken ct)
    {
        private readonly List<DeviceWeight> _made = [];

        public DeviceWeight Upload(HostWeight w)
        {
            ct.ThrowIfCancellationRequested();
            var d = backend.Upload(w);
            _made.Add(d);
            progress?.Invoke(Math.Min(_made.Count, total), total, w.Name);
            return d;
        }

        public void DisposeAll()
        {
            foreach (var d in _made) d.Dispose();
            _made.Clear();
        }
    }

    /// <summary>Every tensor name the family reads, with its expected (rows, cols) (a vector has rows 1): the family's
    /// table (<see cref="ModelFamily"/>), and an LM head a tied model stores anyway.</summary>
    public static IEnumerable<(string Name, int Rows, int Cols)> Expected(ModelConfig c, ITensorSource store)
    {
        var family = ModelFamilies.Of(c);
        string prefix = family.Architecture == Architecture.Gpt2 ? Gpt2Prefix(store) : "";
        bool head = false;
        foreach (var (slot, name, _) in family.Expected(c))
        {
            var (rows, cols) = slot.Shape(c);
            head |= slot.Role == TensorRole.LmHead;
            yield return (prefix + name, rows, cols);
        }
        if (!head && store.Contains("lm_head.weight")) yield return ("lm_head.weight", c.VocabSize, c.HiddenSize);
    }

    private static string Gpt2Prefix(ITensorSource store) => store.Contains("transformer.wte.weight") ? "transformer." : "";

    /// <summary>Checks that every expected tensor exists with the expected shape, and that the files hold no layer beyond
    /// num_hidden_layers (a config that names fewer layers than the weights would otherwise run a truncated model).</summary>
    public static void Validate(ITensorSource store, ModelConfig c)
    {
        var family = ModelFamilies.Of(c);
        string layerTemplate = family.Tensors.First(t => t.PerLayer).Hf;
        string layerPrefix = (family.Architecture == Architecture.Gpt2 ? Gpt2Prefix(store) : "") + layerTemplate[..layerTemplate.IndexOf("{l}", StringComparison.Ordinal)];
        foreach (var t in store.Entries)
        {
            if (!t.Name.StartsWith(layerPrefix, StringComparison.Ordinal)) continue;
            var rest = t.Name.AsSpan(layerPrefix.Length);
            int dot = rest.IndexOf('.');
            if (dot > 0 && int.TryParse(rest[..dot], out int layer) && layer >= c.Layers)
                throw new ModelFormatException(store.FileOf(t.Name), $"tensor '{t.Name}' belongs to layer {layer}, but the config's {(c.Architecture == Architecture.Gpt2 ? "n_layer" : "num_hidden_layers")} is {c.Layers}");
        }
        foreach (var (name, rows, cols) in Expected(c, store))
        {
            long[] shape = store.Shape(name) ?? throw new ModelFormatException(store.Path, $"missing tensor '{name}' (expected shape {Shape(rows, cols)})");
            bool ok = rows == 1 ? shape.Length == 1 && shape[0] == cols || shape.Length == 2 && shape[0] == 1 && shape[1] == cols
                                : shape.Length == 2 && shape[0] == rows && shape[1] == cols;
            if (!ok) throw new ModelFormatException(store.FileOf(name), $"tensor '{name}' has shape [{string.Join(", ", shape)}], expected {Shape(rows, cols)} from the config");
        }
    }

    private static string Shape(int rows, int cols) => rows == 1 ? $"[{cols}]" : $"[{rows}, {cols}]";

    /// <summary>A Llama-architecture family: every role the family's table names, matrices in their stored type.</summary>
    private static TransformerWeights LoadLlama(ITensorSource s, ModelConfig c, Uploader b)
    {
        Validate(s, c);
        var family = ModelFamilies.Of(c);
        // Gemma's RMSNorm scales by 1 + w: folded into the weight here. Its GGUF files already store 1 + w.
        float NormOffset(TensorRole role) => family.NormPlusOne && s is not GgufTensorSource && IsNorm(role) ? 1f : 0f;
        var layers = new LayerWeights[c.Layers];
        var w = new Dictionary<TensorRole, DeviceWeight>();
        for (int l = 0; l < c.Layers; l++)
        {
            // Every per-layer tensor by role; a fused one becomes its parts, row ranges of the stored bytes.
            w.Clear();
            foreach (var slot in family.Tensors.Where(t => t.PerLayer && t.Present(c)))
            {
                string name = slot.HfName(l);
                if (slot.Parts is { } parts)
                {
                    var fused = s.Matrix(name);
                    int row = 0;
                    foreach (var (role, rowsOf) in parts)
                    {
                        int rows = rowsOf(c);
                        w[role] = b.Upload(fused.RowRange($"{name}[{role}]", row, rows));
                        row += rows;
                    }
                }
                else w[slot.Role] = slot.Shape(c).Rows == 1 ? Vec(s, b, name, NormOffset(slot.Role)) : Mat(s, b, name);
            }
            DeviceWeight Req(TensorRole role) => w.TryGetValue(role, out var d) ? d : throw new InvalidOperationException($"family {family.Name} has no {role}");
            layers[l] = new LayerWeights
            {
                AttnNorm = Req(TensorRole.AttnNorm),
                Wq = Req(TensorRole.Wq), Wk = Req(TensorRole.Wk), Wv = Req(TensorRole.Wv), Wo = Req(TensorRole.Wo),
                Bq = w.GetValueOrDefault(TensorRole.Bq), Bk = w.GetValueOrDefault(TensorRole.Bk), Bv = w.GetValueOrDefault(TensorRole.Bv),
                QNorm = w.GetValueOrDefault(TensorRole.QNorm), KNorm = w.GetValueOrDefault(TensorRole.KNorm),
                PostAttnNorm = w.GetValueOrDefault(TensorRole.PostAttnNorm), PostMlpNorm = w.GetValueOrDefault(TensorRole.PostMlpNorm),
                MlpNorm = Req(TensorRole.MlpNorm),
                WGate = w.GetValueOrDefault(TensorRole.WGate), WUp = Req(TensorRole.WUp), WDown = Req(TensorRole.WDown),
            };
        }
        bool tied = !s.Contains("lm_head.weight");
        var embed = Mat(s, b, family.Slot(TensorRole.TokenEmbedding)!.Hf, gatherOnly: !tied);
        return new TransformerWeights
        {
            TokenEmbedding = embed,
            Layers = layers,
            FinalNorm = Vec(s, b, family.Slot(TensorRole.FinalNorm)!.Hf, NormOffset(TensorRole.FinalNorm)),
            LmHead = tied ? embed : Mat(s, b, "lm_head.weight"),
        };
    }

    private static TransformerWeights LoadGpt2(ITensorSource s, ModelConfig c, Uploader b)
    {
        Validate(s, c);
        string t = Gpt2Prefix(s);
        int d = c.HiddenSize;
        var layers = new LayerWeights[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"{t}h.{l}.";
            // c_attn (d, 3d) stored (in, out): transposed it is (3d, d) = [q; k; v] stacked by rows.
            var qkv = Transposed(s, p + "attn.c_attn.weight");
            var qkvBias = s.ReadF32(p + "attn.c_attn.bias");
            long part = (long)d * d;
            layers[l] = new LayerWeights
            {
                AttnNorm = Vec(s, b, p + "ln_1.weight"), AttnNormBias = Vec(s, b, p + "ln_1.bias"),
                Wq = b.Upload(FromFloats(p + "attn.q", qkv.AsSpan(0, (int)part), d, d)),
                Wk = b.Upload(FromFloats(p + "attn.k", qkv.AsSpan((int)part, (int)part), d, d)),
                Wv = b.Upload(FromFloats(p + "attn.v", qkv.AsSpan((int)(2 * part), (int)part), d, d)),
                Bq = b.Upload(FromFloats(p + "attn.q.bias", qkvBias.AsSpan(0, d), 1, d)),
                Bk = b.Upload(FromFloats(p + "attn.k.bias", qkvBias.AsSpan(d, d), 1, d)),
                Bv = b.Upload(FromFloats(p + "attn.v.bias", qkvBias.AsSpan(2 * d, d), 1, d)),
                Wo = b.Upload(FromFloats(p + "attn.c_proj.weight", Transposed(s, p + "attn.c_proj.weight"), d, d)),
                Bo = Vec(s, b, p + "attn.c_proj.bias"),
                MlpNorm = Vec(s, b, p + "ln_2.weight"), MlpNormBias = Vec(s, b, p + "ln_2.bias"),
                WUp = b.Upload(FromFloats(p + "mlp.c_fc.weight", Transposed(s, p + "mlp.c_fc.weight"), c.IntermediateSize, d)),
                BUp = Vec(s, b, p + "mlp.c_fc.bias"),
                WDown = b.Upload(FromFloats(p + "mlp.c_proj.weight", Transposed(s, p + "mlp.c_proj.weight"), d, c.IntermediateSize)),
                BDown = Vec(s, b, p + "mlp.c_proj.bias"),
            };
        }
        var wte = Mat(s, b, t + "wte.weight");
        return new TransformerWeights
        {
            TokenEmbedding = wte,
            PositionEmbedding = Mat(s, b, t + "wpe.weight"),
            Layers = layers,
            FinalNorm = Vec(s, b, t + "ln_f.weight"), FinalNormBias = Vec(s, b, t + "ln_f.bias"),
            LmHead = s.Contains("lm_head.weight") ? Mat(s, b, "lm_head.weight") : wte,
        };
    }

    /// <summary>A (rows, cols) matrix used in its stored type, zero copy on the CPU.</summary>
    private static DeviceWeight Mat(ITensorSource s, Uploader b, string name, bool gatherOnly = false)
    {
        var h = s.Matrix(name);
        h.GatherOnly = gatherOnly;
        return b.Upload(h);
    }

    public static HostWeight HostMatrix(ITensorSource s, string name) => s.Matrix(name);

    /// <summary>Norm weights and biases are small: always F32 on the device.</summary>
    /// <summary>True for the RMSNorm weights of a layer or of the output.</summary>
    public static bool IsNorm(TensorRole role) => role is TensorRole.AttnNorm or TensorRole.MlpNorm or TensorRole.PostAttnNorm or TensorRole.PostMlpNorm
        or TensorRole.FinalNorm or TensorRole.QNorm or TensorRole.KNorm;

    private static DeviceWeight Vec(ITensorSource s, Uploader b, string name, float offset = 0)
    {
        var v = s.ReadF32(name);
        if (offset != 0) for (int i = 0; i < v.Length; i++) v[i] += offset;
        return b.Upload(HostWeight.FromFloats(name, v, 1, v.Length));
    }

    private static HostWeight FromFloats(string name, ReadOnlySpan<float> v, int rows, int cols) =>
        HostWeight.FromFloats(name, v.ToArray(), rows, cols);

    /// <summary>Reads an (in, out) Conv1D weight as F32 and returns it (out, in).</summary>
    private static float[] Transposed(ITensorSource s, string name)
    {
        var shape = s.Shape(name)!;
        var src = s.ReadF32(name);
        int rows = (int)shape[0], cols = (int)shape[1];
        var dst = new float[src.Length];
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < cols; k++) dst[(long)k * rows + r] = src[(long)r * cols + k];
        return dst;
    }
}

using KernelEngine.Kernels.Rope;
using System.Runtime.InteropServices;
using System.Text.Json;
using KernelEngine.Backends;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Formats;
using KernelEngine.Models;
using KernelEngine.Models.Families;
using KernelEngine.Text;

namespace KernelEngine.Formats;

/// <summary>
/// Exports a model folder of a Llama-architecture family (llama, qwen2, qwen3) as GGUF for llama.cpp: the family's
/// <c>{arch}.*</c> hyper-parameters, the tokenizer (SentencePiece as "llama", byte-level BPE as "gpt2" with merges),
/// the family's GGUF tensor names, and for the llama architecture q/k rows permuted from Hugging Face's rotate-half
/// order to the interleaved order llama.cpp's RoPE expects there (as convert_hf_to_gguf.py does).
/// Weights keep their stored type, or are converted to <c>type</c> (F32, F16, Q8_0, Q4_0; a matrix whose rows are
/// not a multiple of 32 stays F32 when a block type is asked for). Norms are F32.
/// </summary>
public static class GgufExporter
{
    /// <summary>Writes the model folder <paramref name="modelDir"/> as one GGUF file (tensors converted to <paramref name="type"/> when given, else kept), tokenizer and chat template included.</summary>
    public static void Export(string modelDir, string outPath, WeightType? type = null)
    {
        var c = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        var family = ModelFamilies.Of(c);
        if (family.Architecture != Architecture.Llama)
            throw new InvalidRequestException($"GGUF export supports the Llama-architecture families (llama, qwen2, qwen3); this is '{c.ModelType}'");
        string a = family.GgufArch;
        using var store = TensorStore.OpenFolder(modelDir);
        WeightLoader.Validate(store, c);
        var tok = TokenizerLoader.FromFolder(modelDir, c);
        var g = new GgufWriter()
            .Add("general.architecture", a)
            .Add("general.name", Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelDir))))
            .Add("general.alignment", 32u)
            .Add("general.file_type", FileType(type))
            .Add($"{a}.context_length", (uint)c.MaxPositions)
            .Add($"{a}.embedding_length", (uint)c.HiddenSize)
            .Add($"{a}.block_count", (uint)c.Layers)
            .Add($"{a}.feed_forward_length", (uint)c.IntermediateSize)
            .Add($"{a}.attention.head_count", (uint)c.Heads)
            .Add($"{a}.attention.head_count_kv", (uint)c.KvHeads)
            .Add($"{a}.attention.key_length", (uint)c.HeadDim)
            .Add($"{a}.attention.value_length", (uint)c.HeadDim)
            .Add($"{a}.rope.dimension_count", (uint)c.RotaryDim)
            .Add($"{a}.rope.freq_base", (float)c.RopeTheta)
            .Add($"{a}.attention.layer_norm_rms_epsilon", c.NormEps)
            .Add($"{a}.vocab_size", (uint)c.VocabSize);
        switch (c.RopeScaling)
        {
            case null: break;
            case LinearScaling lin:
                g.Add($"{a}.rope.scaling.type", "linear").Add($"{a}.rope.scaling.factor", (float)lin.Factor);
                break;
            case YarnScaling y:
                g.Add($"{a}.rope.scaling.type", "yarn").Add($"{a}.rope.scaling.factor", (float)y.Factor)
                    .Add($"{a}.rope.scaling.original_context_length", (uint)y.OriginalMaxPositions)
                    .Add($"{a}.rope.scaling.yarn_beta_fast", (float)y.BetaFast).Add($"{a}.rope.scaling.yarn_beta_slow", (float)y.BetaSlow);
                if (y.AttentionFactorOverride is double af) g.Add($"{a}.rope.scaling.attn_factor", (float)af);
                break;
            case LongRopeScaling lr:
                // as llama.cpp's converter writes it: factor tensors, original context, a fixed attention factor
                g.Add($"{a}.rope.scaling.original_context_length", (uint)lr.OriginalMaxPositions)
                    .Add($"{a}.rope.scaling.attn_factor", (float)lr.AttentionFactor(c.MaxPositions));
                foreach (var (name, f) in new[] { ("rope_factors_long.weight", lr.LongFactor), ("rope_factors_short.weight", lr.ShortFactor) })
                    g.Tensor(name, GgmlType.F32, 1, f.Length, f.Length * 4L, () => MemoryMarshal.AsBytes(f.AsSpan()).ToArray());
                break;
            default: throw new InvalidRequestException($"GGUF export of rope scaling {c.RopeScaling.GetType().Name} is not supported yet (linear, yarn, longrope)");
        }
        if (c.AttentionSoftCap is float ac) g.Add($"{a}.attn_logit_softcapping", ac);
        if (c.FinalSoftCap is float fc) g.Add($"{a}.final_logit_softcapping", fc);
        if (c.SlidingWindowRuns && c.SlidingWindow is int window) g.Add($"{a}.attention.sliding_window", (uint)window);
        AddTokenizer(g, tok, modelDir, c);
        if (ChatTemplates.FromFolder(modelDir) is string template) g.Add("tokenizer.chat_template", template);

        void Matrix(string src, string dst, bool permuteHeads = false, int heads = 0)
        {
            var host = WeightLoader.HostMatrix(store, src);
            var target = type ?? host.Type;
            if (!target.Format().FitsRow(host.Cols)) target = WeightType.F32;
            if (target == WeightType.BF16) target = WeightType.F16; // CPU llama.cpp builds handle F16 everywhere
            long bytes = host.Rows * target.RowBytes(host.Cols);
            g.Tensor(dst, target.Format().Ggml, host.Rows, host.Cols, bytes, s => Convert(host, target, permuteHeads ? heads : 0, s));
        }
        void Vector(string src, string dst, float offset = 0)
        {
            var v = store.ReadF32(src);
            if (offset != 0) v = v.Select(x => x + offset).ToArray();
            g.Tensor(dst, GgmlType.F32, 1, v.Length, v.Length * 4L, () => MemoryMarshal.AsBytes(v.AsSpan()).ToArray());
        }

        // Every tensor of the family's table under its GGUF name; llama.cpp's llama architecture wants q/k rows permuted.
        bool permute = family.GgufRopeLayout == RopeLayout.Interleaved;
        foreach (var (slot, name, layer) in family.Expected(c))
        {
            string dst = slot.GgufName(layer);
            if (slot.Shape(c).Rows == 1) Vector(name, dst, family.NormPlusOne && WeightLoader.IsNorm(slot.Role) ? 1 : 0);   // Gemma: GGUF holds 1 + w
            else if (permute && slot.Role is TensorRole.Wq or TensorRole.Wk) Matrix(name, dst, true, slot.Role == TensorRole.Wq ? c.Heads : c.KvHeads);
            else Matrix(name, dst);
        }
        if (c.TieWordEmbeddings && store.Contains("lm_head.weight")) Matrix("lm_head.weight", "output.weight");
        g.Write(outPath);
    }

    private static uint FileType(WeightType? t) => t switch
    {
        // llama.cpp's llama_ftype ("mostly X"); single-type K files are its _S variants
        WeightType.F16 or WeightType.BF16 => 1u, WeightType.Q4_0 => 2u, WeightType.Q4_1 => 3u, WeightType.Q8_0 => 7u, WeightType.Q5_0 => 8u,
        WeightType.Q5_1 => 9u, WeightType.Q4_K => 14u, WeightType.Q5_K => 16u, WeightType.Q6_K => 18u, _ => 0u,
    };

    /// <summary>Row-permutes (heads > 0) from rotate-half to interleaved, then writes the rows in the target type.</summary>
    private static unsafe void Convert(HostWeight h, WeightType target, int heads, Stream output)
    {
        int rows = h.Rows, cols = h.Cols;
        long srcRowBytes = h.Type.RowBytes(cols), dstRowBytes = target.RowBytes(cols);
        var drow = new byte[dstRowBytes];
        var f = new float[cols];
        int hd = heads > 0 ? rows / heads : 0;
        for (int r = 0; r < rows; r++)
        {
            int src = r;
            if (heads > 0)
            {
                // new row (head, 2j + s) <- old row (head, s * hd/2 + j)
                int head = r / hd, within = r % hd, j = within / 2, s = within % 2;
                src = head * hd + s * (hd / 2) + j;
            }
            byte* srow = h.Data + src * srcRowBytes;
            if (h.Type == target && target != WeightType.BF16) { output.Write(new ReadOnlySpan<byte>(srow, (int)srcRowBytes)); continue; }
            fixed (float* fp = f) Kernels.MatMul.RowConvert.ToF32(srow, h.Type, cols, fp);
            target.Format().QuantizeRow(f, drow);
            output.Write(drow);
        }
    }

    private static void AddTokenizer(GgufWriter g, Tokenizer tok, string dir, ModelConfig c)
    {
        int n = c.VocabSize;
        var tokens = new string[n];
        var types = new int[n];
        if (tok is SentencePieceTokenizer)
        {
            var model = SentencePieceModel.Parse(Path.Combine(dir, "tokenizer.model"), File.ReadAllBytes(Path.Combine(dir, "tokenizer.model")));
            var scores = new float[n];
            for (int i = 0; i < n; i++)
            {
                bool has = i < model.Pieces.Length;
                tokens[i] = has ? model.Pieces[i] : $"[PAD{i}]";
                scores[i] = has ? model.Scores[i] : -1e9f;
                types[i] = has ? (int)model.Types[i] : 5;
            }
            g.Add("tokenizer.ggml.model", "llama").Add("tokenizer.ggml.tokens", tokens).Add("tokenizer.ggml.scores", scores).Add("tokenizer.ggml.token_type", types);
        }
        else
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "tokenizer.json")));
            var model = doc.RootElement.GetProperty("model");
            foreach (var p in model.GetProperty("vocab").EnumerateObject())
                if (p.Value.GetInt32() < n) tokens[p.Value.GetInt32()] = p.Name;
            for (int i = 0; i < n; i++) { tokens[i] ??= $"[PAD{i}]"; types[i] = 1; }
            var merges = model.GetProperty("merges").EnumerateArray()
                .Select(m => m.ValueKind == JsonValueKind.String ? m.GetString()! : m[0].GetString() + " " + m[1].GetString()).ToList();
            g.Add("tokenizer.ggml.model", "gpt2").Add("tokenizer.ggml.pre", "default").Add("tokenizer.ggml.tokens", tokens)
             .Add("tokenizer.ggml.token_type", types).Add("tokenizer.ggml.merges", merges);
        }
        if (c.BosTokenId is int bos) g.Add("tokenizer.ggml.bos_token_id", (uint)bos);
        if (c.EosTokenIds.Length > 0) g.Add("tokenizer.ggml.eos_token_id", (uint)c.EosTokenIds[0]);
        g.Add("tokenizer.ggml.add_bos_token", c.BosTokenId != null);
    }
}

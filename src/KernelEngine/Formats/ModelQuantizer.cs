using System.Runtime.InteropServices;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Quant;

namespace KernelEngine.Formats;

/// <summary>What <see cref="ModelQuantizer"/> does.</summary>
public sealed record QuantizeOptions
{
    /// <summary>The type every quantizable matrix is written in (see <see cref="QuantizationMix"/> for per-tensor mixes).</summary>
    public required WeightType Type { get; init; }
    /// <summary>llama.cpp's per-tensor mix (q4_k_m, q5_k_m, ...; see <see cref="QuantizationMix"/>): overrides <see cref="Type"/>
    /// per tensor, embeddings included as llama-quantize does.</summary>
    public QuantizationMix? Mix { get; init; }
    /// <summary>Tensor names (or suffixes) that stay in their stored precision.</summary>
    public IReadOnlyList<string> Keep { get; init; } = [];
    /// <summary>Quantize the token embedding too (off by default: it is a lookup table, and the LM head when tied).</summary>
    public bool QuantizeEmbeddings { get; init; }
    /// <summary>Reports each tensor written.</summary>
    public IProgress<(int Done, int Total, string Tensor)>? Progress { get; init; }
}

/// <summary>One line of the quantization report.</summary>
public sealed record QuantizedTensor(string Name, string From, string To, long BytesBefore, long BytesAfter, string? Note);

/// <summary>
/// Writes a quantized copy of a model folder: matrices of the Llama family become Q8_0/Q4_0 (U8 blobs of ggml
/// blocks along each row, see <see cref="QuantizedFormat"/>) or F16/BF16; norms, biases and (by default) the
/// embedding keep full precision; a matrix whose row length is not a multiple of 32 stays as stored (and the
/// report says so). config.json and the tokenizer files are copied.
/// </summary>
public static class ModelQuantizer
{
    private static readonly string[] CopiedFiles =
        ["config.json", "generation_config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"];

    /// <summary>Writes <paramref name="sourceDir"/>'s model quantized into <paramref name="outDir"/> (safetensors, config and tokenizer copied); returns what each tensor became.</summary>
    public static IReadOnlyList<QuantizedTensor> Quantize(string sourceDir, string outDir, QuantizeOptions options)
    {
        var config = ModelConfig.Load(Path.Combine(sourceDir, "config.json"));
        if (config.Architecture == Architecture.Gpt2 && options.Type.IsBlockQuantized())
            throw new InvalidRequestException("Q8_0/Q4_0 quantization of GPT-2 (Conv1D weights stored transposed) is not supported; use f16 or bf16");
        if (Path.GetFullPath(sourceDir) == Path.GetFullPath(outDir)) throw new InvalidRequestException("--out must differ from the source model folder");
        using var store = TensorStore.OpenFolder(sourceDir);
        Models.WeightLoader.Validate(store, config);
        Directory.CreateDirectory(outDir);
        var writer = new SafeTensorsWriter().Metadata("format", "pt").Metadata("ke.quantized", options.Type.Name());
        var report = new List<QuantizedTensor>();
        var tensors = store.Tensors.OrderBy(t => t.Name, StringComparer.Ordinal).ToList();
        var copied = new List<TensorInfo>();   // kept tensors: streamed from the source's mapping (an embedding can pass 2 GB)
        int done = 0;
        foreach (var t in tensors)
        {
            options.Progress?.Report((done++, tensors.Count, t.Name));
            string? why = KeepReason(t, config, options);
            if (why != null)
            {
                writer.Declare(t.Name, t.DType, t.Shape);
                copied.Add(t);
                report.Add(new QuantizedTensor(t.Name, t.DType.ToString(), t.DType.ToString(), t.ByteLength, t.ByteLength, why));
                continue;
            }
            int rows = (int)t.Shape[0], cols = (int)t.Shape[1];
            var type = TypeOf(t, config, options);
            var f32 = store.ReadF32(t.Name);
            byte[] data = WeightEncoding.Encode(f32, type, rows, cols);
            switch (type)
            {
                case WeightType.F32: writer.Add(t.Name, SafeTensorDType.F32, t.Shape, data); break;
                case WeightType.F16: writer.Add(t.Name, SafeTensorDType.F16, t.Shape, data); break;
                case WeightType.BF16: writer.Add(t.Name, SafeTensorDType.BF16, t.Shape, data); break;
                default:
                    writer.Add(t.Name, SafeTensorDType.U8, [rows, type.RowBytes(cols)], data);
                    writer.Metadata(QuantizedFormat.MetadataPrefix + t.Name, QuantizedFormat.Spec(type, rows, cols));
                    break;
            }
            report.Add(new QuantizedTensor(t.Name, t.DType.ToString(), type.Name(), t.ByteLength, data.Length,
                options.Mix != null && type != options.Mix.Base ? $"{options.Mix.Name}: {type.Name()}" : null));
        }
        writer.Write(Path.Combine(outDir, "model.safetensors"), stream =>
        {
            foreach (var t in copied) CopyTo(store, t, stream);
        });
        foreach (var f in CopiedFiles)
        {
            string src = Path.Combine(sourceDir, f);
            if (File.Exists(src)) File.Copy(src, Path.Combine(outDir, f), overwrite: true);
        }
        options.Progress?.Report((tensors.Count, tensors.Count, ""));
        return report;
    }

    /// <summary>The type a matrix gets: the options' type, or its mix's choice for the tensor's role and layer.</summary>
    private static WeightType TypeOf(TensorInfo t, ModelConfig c, QuantizeOptions o)
    {
        if (o.Mix is not { } mix) return o.Type;
        bool embedding = t.Name.EndsWith("embed_tokens.weight", StringComparison.Ordinal);
        string role = t.Name.EndsWith("v_proj.weight", StringComparison.Ordinal) ? "v"
            : t.Name.EndsWith("down_proj.weight", StringComparison.Ordinal) ? "down"
            : t.Name == "lm_head.weight" || (embedding && c.TieWordEmbeddings && !t.Name.StartsWith("lm_head")) ? "head" : "";
        int layer = 0;
        const string prefix = "model.layers.";
        if (t.Name.StartsWith(prefix, StringComparison.Ordinal) && int.TryParse(t.Name.AsSpan(prefix.Length, t.Name.IndexOf('.', prefix.Length) - prefix.Length), out int l)) layer = l;
        return mix.TypeFor(role, layer, c.Layers, t.Shape[1]);
    }

    /// <summary>Why a tensor keeps its precision, or null when it is quantized.</summary>
    private static string? KeepReason(TensorInfo t, ModelConfig c, QuantizeOptions o)
    {
        foreach (var k in o.Keep) if (t.Name == k || t.Name.EndsWith(k, StringComparison.Ordinal)) return "kept (--keep)";
        if (t.DType is not (SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16)) return $"kept ({t.DType} is not a float matrix)";
        if (t.Shape.Length != 2) return "kept (norm or bias)";
        bool embedding = t.Name.EndsWith("embed_tokens.weight") || t.Name.EndsWith("wte.weight") || t.Name.EndsWith("wpe.weight");
        if (o.Mix != null) return c.Architecture == Architecture.Llama ? null : "kept (mixes are for the llama family)";
        if (embedding && !o.QuantizeEmbeddings) return c.TieWordEmbeddings ? "kept (embedding, also the tied LM head)" : "kept (embedding)";
        var format = o.Type.Format();
        if (!format.FitsRow(t.Shape[1]))
            return $"kept: row length {t.Shape[1]} is not a multiple of {format.BlockElements} ({format.Name}'s block)";
        return null;
    }

    private static unsafe void CopyTo(TensorStore s, TensorInfo t, Stream stream)
    {
        byte* p = (byte*)s.DataPointer(t.Name);
        for (long done = 0; done < t.ByteLength; done += 1 << 24)
            stream.Write(new ReadOnlySpan<byte>(p + done, (int)Math.Min(1 << 24, t.ByteLength - done)));
    }

    /// <summary>Round to nearest even, NaN kept quiet.</summary>
    public static ushort ToBf16(float f) => WeightEncoding.ToBf16(f);
}

using KernelEngine.Kernels;

namespace KernelEngine.Formats;

/// <summary>
/// How KernelEngine stores a block-quantized matrix in safetensors: a U8 tensor of shape (rows, rowBytes) holding
/// ggml Q8_0/Q4_0 blocks, and file metadata "ke.quant.&lt;tensor&gt;" = "q8_0:ROWS:COLS" naming the format and the
/// logical shape.
/// </summary>
public sealed record QuantizedFormat(WeightType Type, long[] LogicalShape)
{
    internal const string MetadataPrefix = "ke.quant.";

    internal static QuantizedFormat? Of(TensorStore store, string tensor)
    {
        var info = store.TryInfo(tensor);
        if (info == null || info.DType != SafeTensorDType.U8) return null;
        foreach (var f in store.Files)
        {
            if (!f.Tensors.ContainsKey(tensor)) continue;
            if (!f.Metadata.TryGetValue(MetadataPrefix + tensor, out var spec)) return null;
            var parts = spec.Split(':');
            var format = Kernels.Formats.WeightFormat.FromName(parts[0]);
            if (format is not { IsBlockQuantized: true })
                throw new ModelFormatException(f.Path, $"tensor '{tensor}': unknown quantization '{parts[0]}'");
            var type = format.Type;
            if (parts.Length != 3 || !long.TryParse(parts[1], out long rows) || !long.TryParse(parts[2], out long cols)
                || rows is <= 0 or > int.MaxValue || cols is <= 0 or > int.MaxValue || !format.FitsRow(cols))
                throw new ModelFormatException(f.Path, $"tensor '{tensor}': bad quantization metadata '{spec}'");
            if (info.Shape.Length != 2 || info.Shape[0] != rows || info.Shape[1] != type.RowBytes((int)cols))
                throw new ModelFormatException(f.Path, $"tensor '{tensor}': {spec} needs U8 shape [{rows}, {type.RowBytes((int)cols)}], file has {info.ShapeText}");
            return new QuantizedFormat(type, [rows, cols]);
        }
        return null;
    }

    internal static string Spec(WeightType type, long rows, long cols) => $"{type.Name()}:{rows}:{cols}";
}

using System.Reflection;

namespace KernelEngine.Kernels.Formats;

/// <summary>
/// The table of weight formats: one <see cref="WeightFormat"/> per <see cref="IWeightFormat"/> implementation in this
/// assembly, looked up by <see cref="WeightType"/>, name or GGUF type id. Everything that needs to know a format's
/// block shape, bytes, name or row conversion asks here instead of switching on the type.
/// </summary>
public abstract unsafe class WeightFormat
{
    /// <inheritdoc cref="IWeightFormat.Type"/>
    public abstract WeightType Type { get; }
    /// <inheritdoc cref="IWeightFormat.Name"/>
    public abstract string Name { get; }
    /// <inheritdoc cref="IWeightFormat.BlockElements"/>
    public abstract int BlockElements { get; }
    /// <inheritdoc cref="IWeightFormat.BlockBytes"/>
    public abstract int BlockBytes { get; }
    /// <inheritdoc cref="IWeightFormat.Ggml"/>
    public abstract GgmlType Ggml { get; }
    /// <inheritdoc cref="IWeightFormat.PackedCpuDecode"/>
    public abstract bool PackedCpuDecode { get; }
    /// <inheritdoc cref="IWeightFormat.DeviceReadable"/>
    public abstract bool DeviceReadable { get; }
    /// <summary>Stored in blocks with shared scales (every format but the plain floats).</summary>
    public bool IsBlockQuantized => BlockElements > 1;

    /// <summary>True when a row of <paramref name="elements"/> is a whole number of blocks.</summary>
    public bool FitsRow(long elements) => elements > 0 && elements % BlockElements == 0;

    /// <summary>Bytes of a row of <paramref name="elements"/> (a whole number of blocks).</summary>
    public long RowBytes(long elements) => elements / BlockElements * BlockBytes;

    /// <inheritdoc cref="IWeightFormat.DequantizeRow"/>
    public abstract void DequantizeRow(byte* src, int n, float* dst);
    /// <inheritdoc cref="IWeightFormat.QuantizeRow"/>
    public abstract void QuantizeRow(ReadOnlySpan<float> src, Span<byte> dst);

    /// <summary>The format's name (<see cref="Name"/>).</summary>
    public override string ToString() => Name;

    private static readonly WeightFormat?[] ByType;
    private static readonly Dictionary<string, WeightFormat> ByName;
    private static readonly Dictionary<GgmlType, WeightFormat> ByGgml;

    static WeightFormat()
    {
        var formats = typeof(IWeightFormat).Assembly.GetTypes()
            .Where(t => t.IsValueType && typeof(IWeightFormat).IsAssignableFrom(t))
            .Select(t => (WeightFormat)Activator.CreateInstance(typeof(Row<>).MakeGenericType(t))!)
            .OrderBy(f => f.Type).ToArray();
        ByType = new WeightFormat?[Enum.GetValues<WeightType>().Max(t => (int)t) + 1];
        foreach (var f in formats)
        {
            if (ByType[(int)f.Type] != null) throw new InvalidOperationException($"two weight formats claim {f.Type}");
            ByType[(int)f.Type] = f;
        }
        All = formats;
        ByName = formats.ToDictionary(f => f.Name, StringComparer.OrdinalIgnoreCase);
        ByGgml = formats.ToDictionary(f => f.Ggml);
    }

    /// <summary>Every format, in <see cref="WeightType"/> order.</summary>
    public static IReadOnlyList<WeightFormat> All { get; }

    /// <summary>The format of <paramref name="type"/>; <see cref="ArgumentOutOfRangeException"/> for a value with no format.</summary>
    public static WeightFormat Of(WeightType type) =>
        (uint)type < (uint)ByType.Length && ByType[(int)type] is { } f ? f : throw new ArgumentOutOfRangeException(nameof(type), type, "no such weight format");

    /// <summary>The format named <paramref name="name"/> (case-insensitive, llama.cpp's spelling), or null.</summary>
    public static WeightFormat? FromName(string name) => ByName.GetValueOrDefault(name);
    /// <summary>The format with GGUF type id <paramref name="id"/>, or null when KernelEngine has none.</summary>
    public static WeightFormat? FromGgml(GgmlType id) => ByGgml.GetValueOrDefault(id);
    /// <summary>Every format's name, comma-separated (for messages and help text).</summary>
    public static string Names => string.Join(", ", All.Select(f => f.Name));

    /// <summary>The table row of one format: forwards to its static members.</summary>
    private sealed class Row<T> : WeightFormat where T : struct, IWeightFormat
    {
        public override WeightType Type => T.Type;
        public override string Name => T.Name;
        public override int BlockElements => T.BlockElements;
        public override int BlockBytes => T.BlockBytes;
        public override GgmlType Ggml => T.Ggml;
        public override bool PackedCpuDecode => T.PackedCpuDecode;
        public override bool DeviceReadable => T.DeviceReadable;
        public override void DequantizeRow(byte* src, int n, float* dst) => T.DequantizeRow(src, n, dst);
        public override void QuantizeRow(ReadOnlySpan<float> src, Span<byte> dst) => T.QuantizeRow(src, dst);
    }
}

using System.Runtime.CompilerServices;
using KernelEngine.Kernels.Formats;
using KernelEngine.Kernels.MatMul;

namespace KernelEngine.Kernels.Attention;

/// <summary>
/// How a layer's cached K or V rows are stored (llama.cpp's <c>--cache-type-k/-v</c>): F32, F16, or any format of the
/// weight-format table whose blocks are at most 32 elements (BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1). A layer is
/// (positions, kvHeads · headDim) elements; kernels address an element by its index there, and every head starts on a
/// block boundary (the head size is a whole number of blocks). F32 rows are read in place, F16 rows converted in
/// registers, block formats widened to F32 through their table row.
/// </summary>
internal readonly unsafe struct KvRows
{
    /// <summary>The largest block a cache type may have: ggml's 32-element blocks, never the 256 of the K-quants.</summary>
    public const int MaxBlockElements = 32;

    // unmanaged, so that kernel jobs holding it stay unmanaged: the format's row is looked up by type when needed
    private readonly int _blockElements, _blockBytes;

    public KvRows(WeightType type)
    {
        var format = WeightFormat.Of(type);
        if (format.BlockElements > MaxBlockElements) throw new ArgumentException($"{format.Name} cannot hold a KV cache (blocks of {format.BlockElements})", nameof(type));
        Type = type; _blockElements = format.BlockElements; _blockBytes = format.BlockBytes;
    }

    public WeightType Type { get; }
    /// <summary>F32, or F16 (which the kernels convert in registers); anything else is widened row by row.</summary>
    public bool IsBlockFormat => Type is not (WeightType.F32 or WeightType.F16);

    /// <summary>Whether <paramref name="type"/> can store a cache with heads of <paramref name="headDim"/>.</summary>
    public static bool Supports(WeightType type, int headDim)
    {
        var f = WeightFormat.Of(type);
        return f.BlockElements <= MaxBlockElements && headDim % f.BlockElements == 0;
    }

    /// <summary>Every type a cache may have, by name ("f32, f16, bf16, q8_0, ...").</summary>
    public static IEnumerable<WeightFormat> Types => WeightFormat.All.Where(f => f.BlockElements <= MaxBlockElements);

    /// <summary>Bytes of <paramref name="elements"/> (a whole number of blocks).</summary>
    public long Bytes(long elements) => elements / _blockElements * _blockBytes;

    /// <summary>The address of element <paramref name="element"/> (on a block boundary) of rows starting at <paramref name="rows"/>.</summary>
    public byte* At(void* rows, long element) => (byte*)rows + element / _blockElements * _blockBytes;

    /// <summary>dst[0..n) = elements [element, element + n) as F32 (element and n on block boundaries).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Widen(void* rows, long element, int n, float* dst) => RowConvert.ToF32(At(rows, element), Type, n, dst);

    /// <summary>Stores n F32 values at element (both on block boundaries), quantized as ggml's reference does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Store(float* src, void* rows, long element, int n)
    {
        if (Type == WeightType.F32) Buffer.MemoryCopy(src, At(rows, element), 4L * n, 4L * n);
        else WeightFormat.Of(Type).QuantizeRow(new ReadOnlySpan<float>(src, n), new Span<byte>(At(rows, element), (int)Bytes(n)));
    }
}

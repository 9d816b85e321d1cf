using KernelEngine.Kernels;
using KernelEngine.Kernels.Attention;

namespace KernelEngine.Backends;

/// <summary>The KV cache types by name, as llama.cpp's <c>--cache-type-k/-v</c> spells them (f32, f16, bf16, q8_0, q4_0, ...).</summary>
public static class KvCacheTypes
{
    /// <summary>Every type a KV cache may have on some backend.</summary>
    public static IEnumerable<string> All => KvRows.Types.Select(f => f.Name);

    /// <summary>The types <paramref name="backend"/> runs with heads of <paramref name="headDim"/>.</summary>
    internal static IEnumerable<string> Names(IBackend backend, int headDim) =>
        KvRows.Types.Where(f => backend.SupportsKvCache(f.Type, headDim)).Select(f => f.Name);

    /// <summary>The type called <paramref name="name"/>; an unknown name is an <see cref="InvalidRequestException"/> listing the known ones.</summary>
    public static WeightType Parse(string name) =>
        KvRows.Types.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase))?.Type
        ?? throw new InvalidRequestException($"unknown KV cache type '{name}' (known: {string.Join(", ", All)})");
}

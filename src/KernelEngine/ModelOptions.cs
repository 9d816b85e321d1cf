namespace KernelEngine;

/// <summary>How a model is loaded.</summary>
public sealed record ModelOptions
{
    /// <summary>auto (CUDA, then OpenCL, then CPU), cpu, ilgpu-cpu, cuda, opencl.</summary>
    public string Device { get; init; } = "auto";
    /// <summary>Context length of each session (default: the model's max positions).</summary>
    public int? ContextLength { get; init; }
    /// <summary>Keep the KV cache in F16 (half the memory and traffic); the same as <see cref="KvCacheType"/> "f16".</summary>
    public bool F16KvCache { get; init; }
    /// <summary>KV cache type as llama.cpp's <c>--cache-type-k/-v</c> names it: f32 (default), f16, bf16, q8_0, q4_0, q4_1,
    /// q5_0, q5_1 (the block formats on the CPU backend; see <see cref="Backends.KvCacheTypes"/>).</summary>
    public string? KvCacheType { get; init; }

    /// <summary>The cache type these options ask for.</summary>
    internal Kernels.WeightType ResolvedKvCacheType =>
        KvCacheType != null ? Backends.KvCacheTypes.Parse(KvCacheType) : F16KvCache ? Kernels.WeightType.F16 : Kernels.WeightType.F32;
    /// <summary>Time every kernel (see <see cref="Backends.ProfilingBackend"/>); synchronizes after each op.</summary>
    public bool Profile { get; init; }
    /// <summary>CPU: copy F32/F16/BF16 weights out of the memory-mapped files into huge-page native memory (Linux transparent
    /// huge pages; decode streams every weight each token and gains ~5 % bandwidth). Off: the mapped files are read in
    /// place (faster load, pages shared with the OS cache). Q8_0/Q4_0 are always repacked into such memory.</summary>
    public bool CopyWeights { get; init; } = true;
    /// <summary>CPU threads for the kernels (null: one per core). A count other than the core count gets the model its own
    /// worker pool, freed with the model.</summary>
    public int? Threads { get; init; }
    /// <summary>Tokens per batched prefill pass.</summary>
    public int PrefillBatch { get; init; } = 128;

    /// <summary>Checks the values before anything is loaded (a bad one is an <see cref="InvalidRequestException"/> naming it).</summary>
    public void Validate()
    {
        if (Device == null) throw new InvalidRequestException("ModelOptions.Device must not be null (auto, cpu, ilgpu-cpu, cuda, opencl)");
        if (ContextLength is int c && c <= 0) throw new InvalidRequestException($"ModelOptions.ContextLength {c} must be positive");
        if (KvCacheType != null && F16KvCache && ResolvedKvCacheType != Kernels.WeightType.F16)
            throw new InvalidRequestException($"ModelOptions.F16KvCache contradicts ModelOptions.KvCacheType '{KvCacheType}'");
        _ = ResolvedKvCacheType;
        if (Threads is int t && (t < 1 || t > 1024)) throw new InvalidRequestException($"ModelOptions.Threads {t} must be in 1..1024");
        if (PrefillBatch is < 1 or > 8192) throw new InvalidRequestException($"ModelOptions.PrefillBatch {PrefillBatch} must be in 1..8192");
    }
}

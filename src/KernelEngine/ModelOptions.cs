namespace KernelEngine;

/// <summary>How a model is loaded.</summary>
public sealed record ModelOptions
{
    /// <summary>auto (CUDA, then OpenCL, then CPU), cpu, ilgpu-cpu, cuda, opencl.</summary>
    public string Device { get; init; } = "auto";
    /// <summary>Context length of each session (default: the model's max positions).</summary>
    public int? ContextLength { get; init; }
    /// <summary>Keep the KV cache in F16 (half the memory and traffic).</summary>
    public bool F16KvCache { get; init; }
    /// <summary>Time every kernel (see <see cref="Backends.ProfilingBackend"/>); synchronizes after each op.</summary>
    public bool Profile { get; init; }
    /// <summary>CPU: copy F32/F16/BF16 weights out of the memory-mapped files into huge-page native memory (Linux transparent
    /// huge pages; decode streams every weight each token and gains ~5 % bandwidth). Off: the mapped files are read in
    /// place (faster load, pages shared with the OS cache). Q8_0/Q4_0 are always repacked into such memory.</summary>
    public bool CopyWeights { get; init; } = true;
    /// <summary>Tokens per batched prefill pass.</summary>
    public int PrefillBatch { get; init; } = 128;
}

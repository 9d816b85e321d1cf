using KernelEngine.Backends;

namespace KernelEngine.Formats;

/// <summary>One tensor as a source lists it: its weight type's name, logical shape (outermost first) and stored bytes.</summary>
internal sealed record TensorEntry(string Name, string Type, long[] Shape, long Bytes)
{
    public long Elements => Shape.Aggregate(1L, (a, d) => a * d);
}

/// <summary>
/// Where a model's tensors come from, under Hugging Face names: a safetensors folder (<see cref="TensorStore"/>) or a
/// GGUF file (<see cref="GgufTensorSource"/>, which translates llama.cpp's names). The weight loader reads only this.
/// </summary>
internal interface ITensorSource : IDisposable
{
    /// <summary>The folder or file, for messages.</summary>
    string Path { get; }
    IReadOnlyList<TensorEntry> Entries { get; }
    bool Contains(string name);
    /// <summary>Logical shape (a quantized matrix: its (rows, cols), not its bytes), or null when the tensor is missing.</summary>
    long[]? Shape(string name);
    /// <summary>The file that holds the tensor, for messages.</summary>
    string FileOf(string name);
    /// <summary>A (rows, cols) matrix in its stored type, read in place where possible.</summary>
    HostWeight Matrix(string name);
    /// <summary>A tensor of any float type as F32 (norms, biases).</summary>
    float[] ReadF32(string name);
}

namespace KernelEngine.Formats;

/// <summary>One tensor of a safetensors file: its dtype, shape and where its bytes are.</summary>
internal sealed record TensorInfo(string Name, SafeTensorDType DType, long[] Shape, long DataOffset, long ByteLength, string File)
{
    public long Elements
    {
        get { long n = 1; foreach (long d in Shape) n = checked(n * d); return n; }
    }

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

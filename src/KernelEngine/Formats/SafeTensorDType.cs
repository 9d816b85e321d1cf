namespace KernelEngine.Formats;

/// <summary>Element types of the safetensors format.</summary>
internal enum SafeTensorDType { F32, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL }

internal static class SafeTensorDTypes
{
    public static int ElementBytes(this SafeTensorDType t) => t switch
    {
        SafeTensorDType.F64 or SafeTensorDType.I64 => 8,
        SafeTensorDType.F32 or SafeTensorDType.I32 => 4,
        SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.I16 => 2,
        _ => 1,
    };

    public static bool TryParse(string name, out SafeTensorDType type) => name switch
    {
        "F32" => Set(SafeTensorDType.F32, out type), "F16" => Set(SafeTensorDType.F16, out type),
        "BF16" => Set(SafeTensorDType.BF16, out type), "F64" => Set(SafeTensorDType.F64, out type),
        "I8" => Set(SafeTensorDType.I8, out type), "U8" => Set(SafeTensorDType.U8, out type),
        "I16" => Set(SafeTensorDType.I16, out type), "I32" => Set(SafeTensorDType.I32, out type),
        "I64" => Set(SafeTensorDType.I64, out type), "BOOL" => Set(SafeTensorDType.BOOL, out type),
        _ => Set(default, out type) && false,
    };

    private static bool Set(SafeTensorDType v, out SafeTensorDType type) { type = v; return true; }
}

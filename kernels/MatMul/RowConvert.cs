using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace KernelEngine.Kernels.MatMul;

/// <summary>Widens one stored weight row (any <see cref="WeightType"/>) to F32 in a small scratch buffer.</summary>
public static unsafe class RowConvert
{
    /// <summary>Widens a row through its format's row of the table (F32 is a copy).</summary>
    public static void ToF32(byte* row, WeightType type, int elements, float* dst)
    {
        if (type == WeightType.F32) Buffer.MemoryCopy(row, dst, 4L * elements, 4L * elements);
        else Formats.WeightFormat.Of(type).DequantizeRow(row, elements, dst);
    }

    /// <summary>fp16 to f32 with <see cref="HalfVector"/>'s register conversion.</summary>
    public static void F16ToF32(ushort* src, int n, float* dst)
    {
        int i = 0;
        if (HalfVector.IsSupported)
            for (; i + 16 <= n; i += 16) HalfVector.LoadHalf16(src + i).Store(dst + i);
        for (; i < n; i++) dst[i] = HalfVector.ToSingle(src[i]);
    }

    /// <summary>bf16 is the upper half of an f32: widen to 32 bits and shift left by 16.</summary>
    public static void Bf16ToF32(ushort* src, int n, float* dst)
    {
        int i = 0;
        if (HalfVector.IsSupported)
            for (; i + 16 <= n; i += 16) HalfVector.LoadBf16x16(src + i).Store(dst + i);
        for (; i < n; i++) dst[i] = BitConverter.Int32BitsToSingle(src[i] << 16);
    }
}

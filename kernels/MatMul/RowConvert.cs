using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace KernelEngine.Kernels.MatMul;

/// <summary>Widens one stored weight row (any <see cref="WeightType"/>) to F32 in a small scratch buffer.</summary>
internal static unsafe class RowConvert
{
    /// <summary>Widens a row through its format's row of the table (F32 is a copy).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ToF32(byte* row, WeightType type, int elements, float* dst)
    {
        if (type == WeightType.F32) Buffer.MemoryCopy(row, dst, 4L * elements, 4L * elements);
        else Formats.WeightFormat.Of(type).DequantizeRow(row, elements, dst);
    }

    /// <summary>fp16 to f32 with <see cref="HalfVector"/>'s register conversion at the current SIMD width.</summary>
    public static void F16ToF32(ushort* src, int n, float* dst) => DenseDot.Widen<Simd.Fp16>(src, n, dst);

    /// <summary>bf16 is the upper half of an f32: widen to 32 bits and shift left by 16.</summary>
    public static void Bf16ToF32(ushort* src, int n, float* dst) => DenseDot.Widen<Simd.Bf16>(src, n, dst);
}

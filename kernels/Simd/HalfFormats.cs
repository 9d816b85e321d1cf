using System.Runtime.CompilerServices;
using KernelEngine.Kernels.MatMul;

namespace KernelEngine.Kernels.Simd;

/// <summary>A 16-bit float format (fp16 or bf16) as the dense templates read it, at any <see cref="ISimd{V}"/> width.</summary>
internal unsafe interface IHalfFormat
{
    /// <summary>2·Floats values as (even, odd), scaled by <see cref="DenseDot.XdScale"/> / <see cref="PairScale"/>.</summary>
    static abstract (V Even, V Odd) Pairs<S, V>(ushort* p) where S : ISimd<V> where V : struct;
    /// <summary>Floats values in order, exact.</summary>
    static abstract V Load<S, V>(ushort* p) where S : ISimd<V> where V : struct;
    /// <summary>What a sum of products of <see cref="Pairs"/> with x·<see cref="DenseDot.XdScale"/> is multiplied by.</summary>
    static abstract float PairScale { get; }
    static abstract float ToSingle(ushort h);
}

internal readonly unsafe struct Fp16 : IHalfFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static (V Even, V Odd) Pairs<S, V>(ushort* p) where S : ISimd<V> where V : struct => S.LoadHalfPairsUnscaled(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static V Load<S, V>(ushort* p) where S : ISimd<V> where V : struct => S.LoadHalf(p);
    public static float PairScale => HalfVector.HalfScale / DenseDot.XdScale;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static float ToSingle(ushort h) => HalfVector.ToSingle(h);
}

internal readonly unsafe struct Bf16 : IHalfFormat
{
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static (V Even, V Odd) Pairs<S, V>(ushort* p) where S : ISimd<V> where V : struct => S.LoadBf16Pairs(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    public static V Load<S, V>(ushort* p) where S : ISimd<V> where V : struct => S.LoadBf16(p);
    public static float PairScale => 1f / DenseDot.XdScale;
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)] public static float ToSingle(ushort h) => BitConverter.Int32BitsToSingle(h << 16);
}

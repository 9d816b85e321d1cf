using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace KernelEngine.Kernels.Simd;

/// <summary>The widest SIMD path this process runs (the runtime's <c>DOTNET_EnableAVX512=0</c> / <c>DOTNET_EnableAVX2=0</c>
/// narrow it, as on a CPU without those instructions), and what each kernel family takes on it.</summary>
internal static class SimdLevel
{
    public enum Width { Scalar = 0, V128 = 128, V256 = 256, V512 = 512 }

    public static Width Current { get; } =
        Simd512.IsSupported ? Width.V512 : Simd256.IsSupported ? Width.V256 : Simd128.IsSupported ? Width.V128 : Width.Scalar;

    /// <summary>A one-line description for <c>ke devices</c>: the path the kernels take and the instructions under it.</summary>
    public static string Describe() => Current switch
    {
        Width.V512 => "512-bit kernels (AVX-512F/BW: vpmaddubsw + vpmaddwd int8 dots, fp16 widened in registers)",
        Width.V256 => "256-bit kernels (AVX2 + FMA: vpmaddubsw + vpmaddwd int8 dots, fp16 widened in registers)",
        Width.V128 when AdvSimd.Arm64.IsSupported => $"128-bit kernels (NEON{(Dp.IsSupported ? " + dot product (sdot)" : "")})",
        Width.V128 => "128-bit kernels (SSE4.1 + SSSE3: pmaddubsw + pmaddwd int8 dots)",
        _ => "scalar kernels (no SIMD path for this CPU)",
    };
}

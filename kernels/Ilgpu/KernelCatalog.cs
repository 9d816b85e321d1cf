using System.Reflection;
using ILGPU;
using KernelEngine.Kernels.Activation;
using KernelEngine.Kernels.Attention;
using KernelEngine.Kernels.DraftVerify;
using KernelEngine.Kernels.MatMul;
using KernelEngine.Kernels.Memory;
using KernelEngine.Kernels.Norm;
using KernelEngine.Kernels.Rope;
using KernelEngine.Kernels.SoftmaxEntropy;

namespace KernelEngine.Kernels.Ilgpu;

/// <summary>One ILGPU kernel entry point: explicitly grouped (KernelConfig) or implicitly grouped (Index1D); with
/// <paramref name="WarpShuffles"/> it exchanges values between lanes, which ILGPU's OpenCL backend emits through Intel's
/// sub-group extension only (other OpenCL devices run the kernel's shared-memory twin).</summary>
internal sealed record KernelEntry(string Name, MethodInfo Method, bool ExplicitlyGrouped, bool WarpShuffles = false);

/// <summary>Every ILGPU kernel of the engine, so a test can compile each one to PTX and OpenCL C without a GPU.</summary>
internal static class KernelCatalog
{
    private static KernelEntry E<T>(string name, Action<T> k) => new(name, k.Method, true);
    private static KernelEntry I<T>(string name, Action<Index1D, T> k) => new(name, k.Method, false);

    public static IReadOnlyList<KernelEntry> All { get; } =
    [
        E<MatMulArgs>("matvec", MatMulIlgpu.MatVec),
        new("matvec-warp", ((Action<WarpMatVecArgs>)WarpMatVecIlgpu.Run).Method, true, WarpShuffles: true),
        E<MatMulArgs>("matmul-tiled", MatMulIlgpu.Tiled),
        I<MatMulArgs>("matmul-per-element", MatMulIlgpu.PerElement),
        E<NormArgs>("rmsnorm", NormIlgpu.RmsNorm),
        E<NormArgs>("layernorm", NormIlgpu.LayerNorm),
        I<NormArgs>("rmsnorm-per-row", NormIlgpu.RmsNormPerRow),
        I<NormArgs>("layernorm-per-row", NormIlgpu.LayerNormPerRow),
        I<RopeArgs>("rope", RopeIlgpu.Apply),
        I<RopeStoreArgs>("rope-store-kv", RopeIlgpu.ApplyAndStore),
        I<RotateCacheArgs>("rotate-keys", RopeIlgpu.RotateCache),
        E<AttentionArgs>("attention-prefill", AttentionIlgpu.Prefill),
        new("attention-prefill-tiled", ((Action<AttentionArgs>)PrefillAttentionIlgpu.Run).Method, true, WarpShuffles: true),
        E<AttentionArgs>("attention-decode", AttentionIlgpu.Decode),
        new("attention-decode-warp", ((Action<AttentionArgs>)AttentionIlgpu.DecodeWarp).Method, true, WarpShuffles: true),
        new("attention-fused", ((Action<FusedAttentionArgs>)FusedDecodeAttentionIlgpu.Run).Method, true, WarpShuffles: true),
        I<AttentionArgs>("attention-per-query", AttentionIlgpu.PerQuery),
        E<SoftmaxEntropyArgs>("softmax-entropy", SoftmaxEntropyIlgpu.Compute),
        new("softmax-entropy-warp", ((Action<SoftmaxEntropyArgs>)SoftmaxEntropyIlgpu.ComputeWarp).Method, true, WarpShuffles: true),
        E<DraftVerifyArgs>("draft-verify", DraftVerifyIlgpu.Verify),
        new("draft-verify-warp", ((Action<DraftVerifyArgs>)DraftVerifyIlgpu.VerifyWarp).Method, true, WarpShuffles: true),
        E<DraftVerifyArgs>("draft-rrs", DraftVerifyIlgpu.RecursiveReject),
        new("draft-rrs-warp", ((Action<DraftVerifyArgs>)DraftVerifyIlgpu.RecursiveRejectWarp).Method, true, WarpShuffles: true),
        I<EmbedArgs>("embed", MemoryIlgpu.Embed),
        I<KvArgs>("store-kv", MemoryIlgpu.StoreKv),
        new("silu-mul", ((Action<Index1D, ArrayView<float>, ArrayView<float>>)ActivationIlgpu.SiluMul).Method, false),
        new("gelu", ((Action<Index1D, ArrayView<float>>)ActivationIlgpu.GeluTanh).Method, false),
        new("add", ((Action<Index1D, ArrayView<float>, ArrayView<float>>)ActivationIlgpu.Add).Method, false),
        new("gelu-mul", ((Action<Index1D, ArrayView<float>, ArrayView<float>>)ActivationIlgpu.GeluMul).Method, false),
        new("scale", ((Action<Index1D, ArrayView<float>, float>)ActivationIlgpu.Scale).Method, false),
        new("softcap", ((Action<Index1D, ArrayView<float>, float>)ActivationIlgpu.SoftCap).Method, false),
        new("copy", ((Action<Index1D, ArrayView<int>, long, ArrayView<int>, long>)MemoryIlgpu.Copy).Method, false),
        I<CopyKvArgs>("copy-kv", MemoryIlgpu.CopyKv),
    ];
}

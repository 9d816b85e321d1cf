using KernelEngine.Kernels.Rope;

namespace KernelEngine.Backends;

/// <summary>RoPE of a model: inverse frequencies (headDim / 2, llama3 scaling applied) and the pair layout.</summary>
public sealed record RopeTable(float[] InvFreq, int HeadDim, RopeLayout Layout);

/// <summary>Shape of an attention call.</summary>
public readonly record struct AttentionShape(int Heads, int KvHeads, int HeadDim, float Scale);

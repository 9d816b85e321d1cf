using KernelEngine.Kernels.Rope;

namespace KernelEngine.Backends;

/// <summary>RoPE of a model: inverse frequencies (one per rotated pair: headDim / 2, fewer with partial rotary; scaling
/// applied), the pair layout, and a factor on the rotated dimensions' cos and sin (YaRN's / longrope's attention factor
/// under partial rotary, where it must not touch the dimensions that pass through; 1 otherwise, the factor then goes
/// into the softmax scale).</summary>
public sealed record RopeTable(float[] InvFreq, int HeadDim, RopeLayout Layout, float MScale = 1);

/// <summary>Shape of an attention call. Window &gt; 0: sliding-window attention, a query at position p sees keys
/// (p − Window, p] (transformers' and llama.cpp's rule: p − k &lt; Window); 0: all earlier positions. SoftCap &gt; 0:
/// scores become SoftCap · tanh(score / SoftCap) before the softmax (Gemma 2).</summary>
public readonly record struct AttentionShape(int Heads, int KvHeads, int HeadDim, float Scale, int Window = 0, float SoftCap = 0);

using KernelEngine.Kernels;
using KernelEngine.Kernels.DraftVerify;
using KernelEngine.Kernels.SoftmaxEntropy;

namespace KernelEngine.Backends;

/// <summary>
/// The kernel contract. The forward pass is written once against it; <see cref="CpuBackend"/> (SIMD C#) and
/// the ILGPU backend implement it. Every op works on the first <c>rows</c> rows of its tensors (a batch of
/// tokens: rows == 1 is decode, rows > 1 is prefill) and may run asynchronously until <see cref="Read"/>.
/// </summary>
internal interface IBackend : IDisposable
{
    DeviceInfo Device { get; }

    /// <summary>
    /// A backend for one session: it shares this backend's device, weights and compiled kernels and owns the scratch
    /// buffers ops need between launch and read-back, so sessions on one model never touch each other's scratch.
    /// Returns this backend itself when it keeps no such state (the CPU backend); then the caller must not dispose it.
    /// </summary>
    IBackend ForSession() => this;

    /// <summary>A zeroed (rows, cols) tensor; types other than F32 hold KV caches (see <see cref="SupportsKvCache"/>).</summary>
    DeviceTensor Allocate(int rows, int cols, WeightType type = WeightType.F32);
    /// <summary>Whether a KV cache of <paramref name="type"/> with heads of <paramref name="headDim"/> runs here (every
    /// backend: F32, F16; the CPU also the block formats of llama.cpp's --cache-type-k, Q8_0, Q4_0, ...).</summary>
    bool SupportsKvCache(WeightType type, int headDim) => type is WeightType.F32 or WeightType.F16;
    DeviceWeight Upload(HostWeight weight);
    /// <summary>Rows [row, row + rows) of an F32 tensor as a tensor of its own, sharing its memory (no copy); disposing
    /// the view frees nothing, and it must not outlive <paramref name="t"/>. Batched decoding hands each sequence its
    /// row of q, k, v and the attention output this way.</summary>
    DeviceTensor RowView(DeviceTensor t, int row, int rows);

    /// <summary>x[r] = table[ids[r]] (converted to F32).</summary>
    void Embed(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x);
    /// <summary>x[r] += table[ids[r]] (GPT-2 learned positions).</summary>
    void AddEmbed(DeviceWeight table, ReadOnlySpan<int> ids, DeviceTensor x);
    void RmsNorm(DeviceTensor x, DeviceWeight weight, DeviceTensor y, int rows, float eps);
    /// <summary>In place: each head of x (rows, heads * headDim), as (rows * heads) rows of headDim, RMS-normed with
    /// weight (headDim) (Qwen3's q/k norms).</summary>
    void RmsNormHeads(DeviceTensor x, DeviceWeight weight, int rows, int heads, float eps);
    void LayerNorm(DeviceTensor x, DeviceWeight weight, DeviceWeight bias, DeviceTensor y, int rows, float eps);
    /// <summary>y (rows, w.Rows) = x (rows, w.Cols) · wᵀ + bias.</summary>
    void MatMul(DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor y, int rows);
    /// <summary>y[i] = x · w[i]ᵀ + bias[i] for matrices that read the same x (q/k/v, gate/up); a backend may run them as
    /// one launch (the CPU does for decode).</summary>
    void MatMul(DeviceTensor x, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias, ReadOnlySpan<DeviceTensor> y, int rows)
    {
        for (int i = 0; i < w.Length; i++) MatMul(x, w[i], bias[i], y[i], rows);
    }
    /// <summary>residual += x · wᵀ + bias (the residual add after Wo and W_down); <paramref name="scratch"/> takes x · wᵀ + bias
    /// where the backend does not fuse the add (the CPU: exactly MatMul then Add).</summary>
    void MatMulAdd(DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor scratch, DeviceTensor residual, int rows) =>
        MatMulAddUnfused(this, x, w, bias, scratch, residual, rows);
    /// <summary><see cref="MatMulAdd"/> as its two ops (a backend's fallback where it cannot fuse).</summary>
    static void MatMulAddUnfused(IBackend b, DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor scratch, DeviceTensor residual, int rows)
    {
        b.MatMul(x, w, bias, scratch, rows);
        b.Add(residual, scratch, rows);
    }
    /// <summary>The gated MLP's first half: gateOut = act(x · gateᵀ) · (x · upᵀ + upBias), act SiLU or tanh-GELU;
    /// <paramref name="upOut"/> holds x · upᵀ + upBias where the backend does not fuse (the CPU: MatMul, then SiluMul/GeluMul).</summary>
    void GatedMatMul(DeviceTensor x, DeviceWeight gate, DeviceWeight up, DeviceWeight? upBias, DeviceTensor gateOut, DeviceTensor upOut, int rows, bool gelu) =>
        GatedMatMulUnfused(this, x, gate, up, upBias, gateOut, upOut, rows, gelu);
    /// <summary><see cref="GatedMatMul"/> as its ops.</summary>
    static void GatedMatMulUnfused(IBackend b, DeviceTensor x, DeviceWeight gate, DeviceWeight up, DeviceWeight? upBias, DeviceTensor gateOut, DeviceTensor upOut,
        int rows, bool gelu)
    {
        b.MatMul(x, [gate, up], [null, upBias], [gateOut, upOut], rows);
        if (gelu) b.GeluMul(gateOut, upOut, rows); else b.SiluMul(gateOut, upOut, rows);
    }
    /// <summary>Rotates each head of x (rows, heads * headDim) by its row's position.</summary>
    void Rope(DeviceTensor x, int rows, int heads, ReadOnlySpan<int> positions, RopeTable rope);
    /// <summary>y_i = (rmsnorm(x) ⊙ norm) · w_iᵀ + b_i for matrices that read the normed x (q/k/v); <paramref name="normed"/>
    /// holds the normed x where the backend does not fuse the norm into the matvec (the CPU: RmsNorm, then MatMul).</summary>
    void NormMatMul(DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, ReadOnlySpan<DeviceWeight> w, ReadOnlySpan<DeviceWeight?> bias,
        ReadOnlySpan<DeviceTensor> y, int rows) => NormMatMulUnfused(this, x, norm, eps, normed, w, bias, y, rows);
    /// <summary><see cref="NormMatMul"/> as its ops.</summary>
    static void NormMatMulUnfused(IBackend b, DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, ReadOnlySpan<DeviceWeight> w,
        ReadOnlySpan<DeviceWeight?> bias, ReadOnlySpan<DeviceTensor> y, int rows)
    {
        b.RmsNorm(x, norm, normed, rows, eps);
        b.MatMul(normed, w, bias, y, rows);
    }
    /// <summary><see cref="GatedMatMul"/> of rmsnorm(x) ⊙ norm (the MLP's first half with its norm).</summary>
    void NormGatedMatMul(DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, DeviceWeight gate, DeviceWeight up, DeviceWeight? upBias,
        DeviceTensor gateOut, DeviceTensor upOut, int rows, bool gelu) => NormGatedMatMulUnfused(this, x, norm, eps, normed, gate, up, upBias, gateOut, upOut, rows, gelu);
    /// <summary><see cref="NormGatedMatMul"/> as its ops (the gated product itself still fused where the backend can).</summary>
    static void NormGatedMatMulUnfused(IBackend b, DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, DeviceWeight gate, DeviceWeight up,
        DeviceWeight? upBias, DeviceTensor gateOut, DeviceTensor upOut, int rows, bool gelu)
    {
        b.RmsNorm(x, norm, normed, rows, eps);
        b.GatedMatMul(normed, gate, up, upBias, gateOut, upOut, rows, gelu);
    }
    /// <summary>Rotates q and k by their rows' positions and writes k, v into the cache of a layer at [start, start + rows):
    /// <see cref="Rope"/> twice and <see cref="StoreKv"/>, which a GPU runs as one launch.</summary>
    void RopeStoreKv(DeviceTensor q, DeviceTensor k, DeviceTensor v, int rows, int heads, int kvHeads, ReadOnlySpan<int> positions, RopeTable rope,
        KvCache cache, int layer, int start)
    {
        Rope(q, rows, heads, positions, rope);
        Rope(k, rows, kvHeads, positions, rope);
        StoreKv(k, v, cache, layer, start, rows);
    }
    /// <summary>
    /// The front of one decode token's attention block: q, k, v = (rmsnorm(x) ⊙ norm) · W_q/k/vᵀ + b (<paramref name="qkv"/> →
    /// <paramref name="y"/>), q and k rotated at positions[0], k and v stored at cache position <paramref name="start"/>,
    /// attention of q over the layer's cache into <paramref name="output"/>: <see cref="NormMatMul"/>, <see cref="RopeStoreKv"/>
    /// and <see cref="Attention"/> as one launch on a GPU. False, having done nothing, where the backend does not fuse them
    /// (the CPU, shapes its kernel does not take); then the caller runs those ops.
    /// </summary>
    bool TryDecodeAttention(DeviceTensor x, DeviceWeight norm, float eps, ReadOnlySpan<DeviceWeight> qkv, ReadOnlySpan<DeviceWeight?> bias,
        ReadOnlySpan<DeviceTensor> y, ReadOnlySpan<int> positions, RopeTable rope, KvCache cache, int layer, int start, DeviceTensor output, AttentionShape shape) => false;
    /// <summary><see cref="TryDecodeAttention"/> as its ops (<paramref name="normed"/> holds the normed x where the backend
    /// does not fuse the norm).</summary>
    static void DecodeAttentionUnfused(IBackend b, DeviceTensor x, DeviceWeight norm, float eps, DeviceTensor normed, ReadOnlySpan<DeviceWeight> qkv,
        ReadOnlySpan<DeviceWeight?> bias, ReadOnlySpan<DeviceTensor> y, ReadOnlySpan<int> positions, RopeTable rope, KvCache cache, int layer, int start,
        DeviceTensor output, AttentionShape shape)
    {
        b.NormMatMul(x, norm, eps, normed, qkv, bias, y, 1);
        b.RopeStoreKv(y[0], y[1], y[2], 1, shape.Heads, shape.KvHeads, positions, rope, cache, layer, start);
        b.Attention(y[0], cache, layer, start, 1, output, shape);
    }
    /// <summary>Writes k, v rows into the cache of a layer at positions [start, start + rows).</summary>
    void StoreKv(DeviceTensor k, DeviceTensor v, KvCache cache, int layer, int start, int rows);
    /// <summary>
    /// Causal attention of q rows (cache positions start..start+rows-1) over the layer's cache into output. With
    /// branch &gt; 0 the rows are consecutive draft branches of that length, each seeing [0, start) and its own rows.
    /// </summary>
    void Attention(DeviceTensor q, KvCache cache, int layer, int start, int rows, DeviceTensor output, AttentionShape shape, int branch = 0);
    /// <summary>Whether <see cref="AttentionRows"/> should be given the RoPE table (it rotates each row inside its own work,
    /// the CPU's per-sequence tasks) rather than the batch rotated first in one <see cref="Rope"/> launch per tensor.</summary>
    bool RotatesInAttentionRows => false;
    /// <summary>
    /// Batched decoding: row r is one token of its own sequence. With <paramref name="rope"/> its q and k are first
    /// rotated to <paramref name="positions"/>[r]; its k, v go to <paramref name="caches"/>[r] at that position and its q
    /// attends over that cache, exactly as <see cref="Rope"/>, <see cref="StoreKv"/> and <see cref="Attention"/> of one row
    /// would (the CPU runs the rows in parallel, each as it runs alone).
    /// </summary>
    void AttentionRows(IReadOnlyList<SequenceRow> rows, IReadOnlyList<KvCache> caches, ReadOnlySpan<int> positions, int layer, AttentionShape shape,
        RopeTable? rope = null)
    {
        for (int r = 0; r < positions.Length; r++)
        {
            if (rope != null)
            {
                Rope(rows[r].Q, 1, shape.Heads, positions.Slice(r, 1), rope);
                Rope(rows[r].K, 1, shape.KvHeads, positions.Slice(r, 1), rope);
            }
            StoreKv(rows[r].K, rows[r].V, caches[r], layer, positions[r], 1);
            Attention(rows[r].Q, caches[r], layer, positions[r], 1, rows[r].Att, shape);
        }
    }
    /// <summary>Copies count cache positions from src to dst in every layer of the set (commits an accepted draft branch,
    /// context shift, a windowed layer's move to the front of its block); the ranges must not overlap. Positions map to
    /// rows by <see cref="KvCache.PositionRow"/>.</summary>
    void CopyKv(KvCache cache, int src, int dst, int count, KvLayers layers = KvLayers.All);
    /// <summary>Copies positions [start, count) of every layer from one cache to another of the same shape and type (a batched
    /// sequence whose prompt starts with what a running sequence already holds, where its pages cannot be mapped).</summary>
    void CopyKvPrefix(KvCache from, KvCache to, int count, int start = 0);
    /// <summary>Bytes of the pages KV caches can share (<see cref="MapKv"/>); 0 where this backend cannot share pages (then
    /// caches copy, <see cref="CopyKvPrefix"/>).</summary>
    int KvShareGranuleBytes => 0;
    /// <summary>A zeroed KV tensor whose pages other caches can map (only where <see cref="KvShareGranuleBytes"/> &gt; 0).</summary>
    DeviceTensor AllocateShareable(int rows, int cols, WeightType type) => throw new NotSupportedException($"{Device.Id} cannot share KV pages");
    /// <summary>Positions [start, end) of every layer of <paramref name="to"/> map <paramref name="owner"/>'s own pages
    /// for them, copy-on-write (both caches shareable, of one shape; the ranges whole pages: <see cref="KvCache.ShareFrom"/>).</summary>
    void MapKv(KvCache owner, KvCache to, int start, int end) => throw new NotSupportedException($"{Device.Id} cannot share KV pages");
    /// <summary>Undoes <see cref="MapKv"/>: positions [start, end) of every layer of the cache are its own pages again (zeroed).</summary>
    void UnmapKv(KvCache cache, int start, int end) => throw new NotSupportedException($"{Device.Id} cannot share KV pages");
    /// <summary>Rotates the cached keys of positions [position, position + count) in every layer of the set by delta
    /// positions (context shift: keys moved back by d positions are rotated by -d).</summary>
    void RotateKeys(KvCache cache, int position, int count, int delta, RopeTable rope, KvLayers layers = KvLayers.All);
    /// <summary>gate = silu(gate) * up.</summary>
    void SiluMul(DeviceTensor gate, DeviceTensor up, int rows);
    /// <summary>x = gelu_tanh(x).</summary>
    void Gelu(DeviceTensor x, int rows);
    /// <summary>gate = gelu_tanh(gate) * up (GeGLU).</summary>
    void GeluMul(DeviceTensor gate, DeviceTensor up, int rows);
    /// <summary>x *= factor (Gemma's embedding scale).</summary>
    void Scale(DeviceTensor x, int rows, float factor);
    /// <summary>x = cap · tanh(x / cap) (Gemma 2's final logit soft-capping).</summary>
    void SoftCap(DeviceTensor x, int rows, float cap);
    /// <summary>x += y.</summary>
    void Add(DeviceTensor x, DeviceTensor y, int rows);
    void CopyRows(DeviceTensor src, int srcRow, DeviceTensor dst, int dstRow, int rows);
    /// <summary>Copies rows of a tensor to the host as F32 (a KV cache's F16 or block-format rows widened; waits for pending work).</summary>
    void Read(DeviceTensor t, int row, int rows, Span<float> dst);
    /// <summary>Fused softmax-entropy of one row of logits / temperature: max, log-sum-exp, entropy, log p(token), argmax.</summary>
    SoftmaxStats SoftmaxEntropy(DeviceTensor logits, int row, float temperature, int token);
    /// <summary><see cref="SoftmaxEntropy"/> of rows [0, stats.Length) with no token (batched decoding's greedy rows), each
    /// exactly as alone; the CPU runs the rows in parallel.</summary>
    void SoftmaxEntropyRows(DeviceTensor logits, float temperature, Span<SoftmaxStats> stats)
    {
        for (int r = 0; r < stats.Length; r++) stats[r] = SoftmaxEntropy(logits, r, temperature, -1);
    }
    /// <summary>
    /// Draft verification on the device (see DraftVerifyCpu): p (k + 1, vocab), q (k, vocab) for one draft of k tokens;
    /// with <paramref name="multi"/>, recursive rejection over the candidates of one position (p, q one row each, modified).
    /// </summary>
    Verdict VerifyDrafts(DeviceTensor p, DeviceTensor q, ReadOnlySpan<int> drafts, ReadOnlySpan<double> uniforms, bool greedy, bool multi, bool withoutReplacement);
    /// <summary>Waits for queued work.</summary>
    void Synchronize();
    /// <summary>Kernel launches issued so far (GPU backends; the CPU backend counts ops).</summary>
    long Launches { get; }
}

/// <summary>Kinds of compute device.</summary>
public enum DeviceKind
{
    /// <summary>The SIMD C# kernels on this machine's cores.</summary>
    Cpu,
    /// <summary>ILGPU's CPU accelerator: the GPU kernels run in a simulator (for debugging).</summary>
    IlgpuCpu,
    /// <summary>An NVIDIA GPU through ILGPU.</summary>
    Cuda,
    /// <summary>An OpenCL device through ILGPU.</summary>
    OpenCL,
}

/// <summary>A compute device: what <c>ke devices</c> lists.</summary>
public sealed record DeviceInfo(DeviceKind Kind, string Name, long MemoryBytes, string Capabilities)
{
    /// <summary>The device kind as <see cref="ModelOptions.Device"/> spells it ("cpu", "cuda", "opencl", "ilgpu-cpu").</summary>
    public string Id => Kind switch { DeviceKind.Cpu => "cpu", DeviceKind.IlgpuCpu => "ilgpu-cpu", DeviceKind.Cuda => "cuda", _ => "opencl" };
}

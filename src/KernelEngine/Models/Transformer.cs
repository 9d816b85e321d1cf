using System.Runtime.CompilerServices;
using KernelEngine.Backends;
using KernelEngine.Formats;
using KernelEngine.Kernels.Rope;
using KernelEngine.Models.Families;

namespace KernelEngine.Models;

/// <summary>
/// The forward pass, written once for every family and backend as calls on the kernel contract:
/// <code>
///   x += attention(norm1(x))      // Llama: RMSNorm, RoPE, GQA (Qwen3: q/k heads RMS-normed first).  GPT-2: LayerNorm, learned positions.
///   x += mlp(norm2(x))            // Llama: down(silu(gate(x)) * up(x)).  GPT-2: proj(gelu(fc(x))).
///   (Gemma 2: GeGLU, a norm after each block too, embeddings × √dim, soft-capped scores and logits, every other layer windowed)
/// </code>
/// </summary>
internal sealed class Transformer : IDisposable
{
    private readonly IBackend _b;
    private readonly AttentionShape _attn, _attnWindow;   // full layers, sliding-window layers
    private readonly ModelFamily _family;
    private readonly RopeTable? _ropeLocal;   // Gemma 3's sliding-window layers

    /// <summary>The attention of layer l: the window where the config puts one.</summary>
    private AttentionShape ShapeOf(int l) => Config.SlidingLayers is { } sliding ? sliding[l] ? _attnWindow : _attn : _attnWindow;

    /// <param name="contextLength">the context sessions get (longrope picks its factors by it)</param>
    public Transformer(ModelConfig config, TransformerWeights weights, IBackend backend, int contextLength)
    {
        Config = config; Weights = weights; _b = backend;
        // YaRN's and longrope's attention factor multiplies the rotated q and k: the logits by its square
        double factor = config.Architecture == Architecture.Llama ? config.RopeScaling?.AttentionFactor(contextLength) ?? 1 : 1;
        // Under partial rotary only the rotated dimensions carry the factor (transformers and llama.cpp scale cos and sin):
        // it goes into the RoPE table then, not into the softmax scale.
        bool partial = config.RotaryDim < config.HeadDim;
        double scale = (partial ? 1 : factor * factor) / Math.Sqrt(config.QueryPreAttnScalar ?? config.HeadDim);
        _attn = new AttentionShape(config.Heads, config.KvHeads, config.HeadDim, (float)scale, 0, config.AttentionSoftCap ?? 0);
        _attnWindow = _attn with { Window = config.SlidingWindowRuns ? config.SlidingWindow ?? 0 : 0 };
        _family = ModelFamilies.Of(config);
        Rope = config.Architecture == Architecture.Llama
            ? new RopeTable(InverseFrequencies(config, contextLength), config.HeadDim, config.RopeLayout, partial ? (float)factor : 1f) : null;
        if (config.RopeLocalTheta is double local)
            _ropeLocal = new RopeTable(RopeFrequencies.Compute(config.RotaryDim, local, null, contextLength), config.HeadDim, config.RopeLayout);
    }

    private static float[] InverseFrequencies(ModelConfig c, int contextLength)
    {
        var inv = RopeFrequencies.Compute(c.RotaryDim, c.RopeTheta, c.RopeScaling, contextLength);
        if (c.RopeFreqFactors is { } f)
            for (int i = 0; i < inv.Length; i++) inv[i] /= f[i];
        return inv;
    }

    /// <summary>Per layer, whether it attends through a sliding window (of <see cref="AttentionWindow"/> positions).</summary>
    public bool[] WindowedLayers => Enumerable.Range(0, Config.Layers).Select(l => ShapeOf(l).Window > 0).ToArray();
    /// <summary>The sliding window of the windowed layers (0: none).</summary>
    public int AttentionWindow => _attnWindow.Window;

    public ModelConfig Config { get; }
    public TransformerWeights Weights { get; }
    public IBackend Backend => _b;
    public RopeTable? Rope { get; }

    /// <summary>
    /// Runs tokens at positions [start, start + n) through the model, appending their keys and values to the cache.
    /// Logits land in s.Logits: one row per token when <paramref name="allLogits"/>, else the last token's in row 0.
    /// </summary>
    /// <param name="branch">0, or the length of each draft branch laid out consecutively (see IBackend.Attention);
    /// row i of a branch sits at position start + i for RoPE</param>
    /// <param name="hiddenOnly">stop after the final norm: s.Xb holds every row's normed hidden state, no logits (embeddings)</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Forward(RunState s, KvCache cache, ReadOnlySpan<int> tokens, int start, bool allLogits, int branch = 0, CancellationToken ct = default, bool hiddenOnly = false)
    {
        var b = s.Backend;
        int n = tokens.Length;
        if (n == 0 || n > s.Capacity) throw new ArgumentOutOfRangeException(nameof(tokens), n, $"batch must be 1..{s.Capacity}");
        if (start + n > cache.ContextLength)
            throw new InvalidRequestException($"positions {start}..{start + n - 1} exceed the context length {cache.ContextLength}");
        cache.MakeRoom(b, start, n);
        for (int i = 0; i < n; i++) s.Positions[i] = start + (branch > 0 ? i % branch : i);
        var positions = s.Positions.AsSpan(0, n);

        b.Embed(Weights.TokenEmbedding, tokens, s.X);
        if (_family.ScaleEmbedding) b.Scale(s.X, n, MathF.Sqrt(Config.HiddenSize));
        if (Weights.PositionEmbedding != null) b.AddEmbed(Weights.PositionEmbedding, positions, s.X);
        for (int l = 0; l < Config.Layers; l++)
        {
            // Between layers: a cancelled prefill stops here; the batch's tokens are not committed to the session.
            ct.ThrowIfCancellationRequested();
            AttentionBlock(b, s, cache, l, start, n, positions, branch);
            MlpBlock(b, s, l, n);
        }
        if (hiddenOnly)
        {
            Norm(b, s.X, Weights.FinalNorm, Weights.FinalNormBias, s.Xb, n);
            return;
        }
        if (allLogits)
        {
            Norm(b, s.X, Weights.FinalNorm, Weights.FinalNormBias, s.Xb, n);
            b.MatMul(s.Xb, Weights.LmHead, null, s.Logits, n);
        }
        else if (n == 1 && Weights.FinalNormBias == null)
            b.NormMatMul(s.X, Weights.FinalNorm, Config.NormEps, s.Xb, [Weights.LmHead], [null], [s.Logits], 1);   // decode: one launch on a GPU
        else
        {
            b.CopyRows(s.X, n - 1, s.Xb, 0, 1);
            Norm(b, s.Xb, Weights.FinalNorm, Weights.FinalNormBias, s.Xb, 1);
            b.MatMul(s.Xb, Weights.LmHead, null, s.Logits, 1);
        }
        if (Config.FinalSoftCap is float cap) b.SoftCap(s.Logits, allLogits ? n : 1, cap);
    }

    /// <summary>
    /// One decode step of a batch of sequences: row r is token <paramref name="tokens"/>[r] of the sequence whose cache is
    /// <paramref name="caches"/>[r], at <paramref name="positions"/>[r]. Every matmul takes all rows (the weights are read
    /// once for the batch); each row's keys and values go to its own cache and its attention reads only that cache.
    /// Row r of s.Logits gets sequence r's next-token logits. Every op is row by row what <see cref="Forward"/> does for
    /// one token, so on the CPU a sequence gets the logits it would get alone.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void ForwardDecode(RunState s, ReadOnlySpan<int> tokens, ReadOnlySpan<int> positions, IReadOnlyList<KvCache> caches)
    {
        var b = s.Backend;
        int n = tokens.Length;
        if (n == 0 || n > s.Capacity || positions.Length != n || caches.Count != n)
            throw new ArgumentOutOfRangeException(nameof(tokens), n, $"a decode batch of 1..{s.Capacity} rows, one position and one cache each");
        for (int r = 0; r < n; r++)
        {
            if (positions[r] >= caches[r].ContextLength)
                throw new InvalidRequestException($"position {positions[r]} exceeds the context length {caches[r].ContextLength}");
            caches[r].MakeRoom(b, positions[r], 1);
        }
        positions.CopyTo(s.Positions);
        b.Embed(Weights.TokenEmbedding, tokens, s.X);
        if (_family.ScaleEmbedding) b.Scale(s.X, n, MathF.Sqrt(Config.HiddenSize));
        if (Weights.PositionEmbedding != null) b.AddEmbed(Weights.PositionEmbedding, positions, s.X);
        for (int l = 0; l < Config.Layers; l++)
        {
            AttentionBlock(b, s, null, l, 0, n, positions, 0, caches);
            MlpBlock(b, s, l, n);
        }
        Norm(b, s.X, Weights.FinalNorm, Weights.FinalNormBias, s.Xb, n);
        b.MatMul(s.Xb, Weights.LmHead, null, s.Logits, n);
        if (Config.FinalSoftCap is float cap) b.SoftCap(s.Logits, n, cap);
    }

    /// <summary>Context shift: drops cache positions [keep, keep + discard), see <see cref="KvCache.Shift"/>.</summary>
    public void ShiftCache(KvCache cache, int keep, int discard, int count)
    {
        // Gemma 3's local (sliding-window) layers rotate with their own base: the cache's windowed layers.
        if (_ropeLocal != null && cache.Window == 0)
            throw new InvalidRequestException("context shift needs the sliding window of a model whose local layers have their own RoPE base (gemma3 with sliding_window set)");
        cache.Shift(_b, keep, discard, count, Rope, _ropeLocal);
    }

    /// <summary>x += Wo · attention(rope(Wq xn), rope(Wk xn), Wv xn), xn = norm1(x). With <paramref name="caches"/>, row r
    /// is one token of another sequence: its k, v go to caches[r] at positions[r] and its attention reads that cache.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void AttentionBlock(IBackend b, RunState s, KvCache? cache, int l, int start, int n, ReadOnlySpan<int> positions, int branch,
        IReadOnlyList<KvCache>? caches = null)
    {
        var w = Weights.Layers[l];
        var rope = Rope == null ? null : _ropeLocal != null && Config.SlidingLayers is { } sliding && sliding[l] ? _ropeLocal : Rope;
        // decode on a GPU: norm, q/k/v, RoPE, the KV store and attention in one launch
        bool fused = caches == null && n == 1 && branch == 0 && rope != null && w.AttnNormBias == null && w.QNorm == null
            && b.TryDecodeAttention(s.X, w.AttnNorm, Config.NormEps, [w.Wq, w.Wk, w.Wv], [w.Bq, w.Bk, w.Bv], [s.Q, s.K, s.V], positions, rope, cache!, l, start,
                s.Att, ShapeOf(l));
        if (!fused) AttentionCore(b, s, cache, w, rope, l, start, n, positions, branch, caches);
        if (w.PostAttnNorm == null) b.MatMulAdd(s.Att, w.Wo, w.Bo, s.Xb, s.X, n);
        else
        {
            b.MatMul(s.Att, w.Wo, w.Bo, s.Xb, n);
            b.RmsNorm(s.Xb, w.PostAttnNorm, s.Xb, n, Config.NormEps);
            b.Add(s.X, s.Xb, n);
        }
    }

    /// <summary>q, k, v from norm1(x), RoPE, the KV store and attention into s.Att, op by op.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void AttentionCore(IBackend b, RunState s, KvCache? cache, LayerWeights w, RopeTable? rope, int l, int start, int n, ReadOnlySpan<int> positions,
        int branch, IReadOnlyList<KvCache>? caches)
    {
        if (w.AttnNormBias == null) b.NormMatMul(s.X, w.AttnNorm, Config.NormEps, s.Xb, [w.Wq, w.Wk, w.Wv], [w.Bq, w.Bk, w.Bv], [s.Q, s.K, s.V], n);
        else
        {
            Norm(b, s.X, w.AttnNorm, w.AttnNormBias, s.Xb, n);
            b.MatMul(s.Xb, [w.Wq, w.Wk, w.Wv], [w.Bq, w.Bk, w.Bv], [s.Q, s.K, s.V], n);
        }
        if (w.QNorm != null)
        {
            b.RmsNormHeads(s.Q, w.QNorm, n, Config.Heads, Config.NormEps);
            b.RmsNormHeads(s.K, w.KNorm!, n, Config.KvHeads, Config.NormEps);
        }
        if (caches == null)
        {
            if (rope != null) b.RopeStoreKv(s.Q, s.K, s.V, n, Config.Heads, Config.KvHeads, positions, rope, cache!, l, start);
            else b.StoreKv(s.K, s.V, cache!, l, start, n);
            b.Attention(s.Q, cache!, l, start, n, s.Att, ShapeOf(l), branch);
        }
        else
        {
            // the CPU rotates each row in its sequence's task; a device rotates the batch in one launch per tensor
            if (rope != null && !b.RotatesInAttentionRows)
            {
                b.Rope(s.Q, n, Config.Heads, positions, rope);
                b.Rope(s.K, n, Config.KvHeads, positions, rope);
            }
            b.AttentionRows(s.Rows, caches, positions, l, ShapeOf(l), b.RotatesInAttentionRows ? rope : null);   // stores each row's k, v in its own cache
        }
    }

    /// <summary>x += mlp(norm2(x)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void MlpBlock(IBackend b, RunState s, int l, int n)
    {
        var w = Weights.Layers[l];
        DeviceTensor hidden;
        if (w.WGate != null && w.MlpNormBias == null)
        {
            b.NormGatedMatMul(s.X, w.MlpNorm, Config.NormEps, s.Xb, w.WGate, w.WUp, w.BUp, s.Gate, s.Up, n, _family.GatedGelu);
            hidden = s.Gate;
        }
        else if (w.WGate != null)
        {
            Norm(b, s.X, w.MlpNorm, w.MlpNormBias, s.Xb, n);
            b.GatedMatMul(s.Xb, w.WGate, w.WUp, w.BUp, s.Gate, s.Up, n, _family.GatedGelu);
            hidden = s.Gate;
        }
        else
        {
            Norm(b, s.X, w.MlpNorm, w.MlpNormBias, s.Xb, n);
            b.MatMul(s.Xb, w.WUp, w.BUp, s.Up, n);
            b.Gelu(s.Up, n);
            hidden = s.Up;
        }
        if (w.PostMlpNorm == null) b.MatMulAdd(hidden, w.WDown, w.BDown, s.Xb, s.X, n);
        else
        {
            b.MatMul(hidden, w.WDown, w.BDown, s.Xb, n);
            b.RmsNorm(s.Xb, w.PostMlpNorm, s.Xb, n, Config.NormEps);
            b.Add(s.X, s.Xb, n);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Norm(IBackend b, DeviceTensor x, DeviceWeight w, DeviceWeight? bias, DeviceTensor y, int n)
    {
        if (bias == null) b.RmsNorm(x, w, y, n, Config.NormEps);
        else b.LayerNorm(x, w, bias, y, n, Config.NormEps);
    }

    public void Dispose() => Weights.Dispose();
}

using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using KernelEngine.Kernels.Simd;
using KernelEngine.Kernels.SoftmaxEntropy;

namespace KernelEngine.Decoding;

/// <summary>
/// Chooses tokens from logits per <see cref="SamplingSettings"/>. Buffers are sized to the vocabulary once;
/// a call allocates nothing. Candidates are narrowed by top-k with a partial selection before any sort.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingSettings _s;
    private readonly Rng _rng;
    private readonly float[] _work;      // (vocab) penalised, tempered logits
    private readonly int[] _ids;         // (vocab) candidate ids
    private readonly float[] _vals;      // (vocab) candidate logits / probabilities

    /// <summary>A sampler over <paramref name="vocab"/> logits with these settings (its random stream seeded from <see cref="SamplingSettings.Seed"/>).</summary>
    public Sampler(SamplingSettings settings, int vocab)
    {
        settings.Validate();
        _s = settings;
        _rng = new Rng(settings.Seed);
        _work = new float[vocab];
        _ids = new int[vocab];
        _vals = new float[vocab];
    }

    /// <summary>The settings it samples with.</summary>
    public SamplingSettings Settings => _s;
    /// <summary>Its random stream.</summary>
    public Rng Rng => _rng;

    /// <param name="logits">(vocab) raw logits of the next position</param>
    /// <param name="history">tokens so far (for the repetition penalty)</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> history)
    {
        if (_s.IsGreedy) return SpanMath.IndexOfMax(Penalized(logits, history));
        int n = Candidates(logits, history);
        double total = 0;
        for (int i = 0; i < n; i++) total += _vals[i];
        double r = _rng.NextDouble() * total;
        for (int i = 0; i < n; i++)
        {
            r -= _vals[i];
            if (r < 0) return _ids[i];
        }
        return _ids[n - 1];
    }

    /// <summary>
    /// The full-vocabulary distribution that <see cref="Sample"/> draws from (zeros outside the kept set); greedy
    /// settings give a one-hot row at the argmax. Speculative decoding verifies against these rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Distribution(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, Span<float> probs)
    {
        probs.Clear();
        if (_s.IsGreedy) { probs[SpanMath.IndexOfMax(Penalized(logits, history))] = 1; return; }
        int n = Candidates(logits, history);
        double total = 0;
        for (int i = 0; i < n; i++) total += _vals[i];
        for (int i = 0; i < n; i++) probs[_ids[i]] = (float)(_vals[i] / total);
    }

    private Span<float> Penalized(ReadOnlySpan<float> logits, ReadOnlySpan<int> history)
    {
        var x = _work.AsSpan(0, logits.Length);
        logits.CopyTo(x);
        if (_s.RepetitionPenalty != 1f)
        {
            var recent = history.Length > _s.RepetitionWindow ? history[^_s.RepetitionWindow..] : history;
            foreach (int id in recent)
                if ((uint)id < (uint)x.Length) x[id] = x[id] > 0 ? logits[id] / _s.RepetitionPenalty : logits[id] * _s.RepetitionPenalty;
        }
        return x;
    }

    /// <summary>Fills _ids/_vals with the kept candidates (most likely first where a cut needs the order), _vals = probabilities (unnormalized after cuts); returns their count.</summary>
    private int Candidates(ReadOnlySpan<float> logits, ReadOnlySpan<int> history)
    {
        var x = Penalized(logits, history);
        SpanMath.ScaleShift(x, 1f / _s.Temperature, 0f, x);
        int n = x.Length;
        var ids = _ids.AsSpan(0, n);
        var vals = _vals.AsSpan(0, n);
        for (int i = 0; i < n; i++) ids[i] = i;
        x.CopyTo(vals);
        bool topK = _s.TopK > 0 && _s.TopK < n;
        if (topK)
        {
            SelectTop(vals, ids, _s.TopK);
            n = _s.TopK;
        }
        vals = vals[..n]; ids = ids[..n];
        if (!topK && _s.TopP >= 1f)
        {
            // No cut needs the order (min-p compares with the largest only): the whole vocabulary in id order, not a
            // sort of it per token (OpenAI's defaults, top_k off and top_p 1, land here).
            SoftmaxEntropyCpu.Softmax(vals, vals);
            if (_s.MinP <= 0) return n;
            float threshold = SpanMath.Max(vals) * _s.MinP;
            int kept = 0;
            for (int i = 0; i < n; i++)
                if (vals[i] >= threshold) { vals[kept] = vals[i]; ids[kept] = ids[i]; kept++; }
            return kept;
        }
        vals.Sort(ids, static (a, b) => b.CompareTo(a));      // descending logits
        SoftmaxEntropyCpu.Softmax(vals, vals);                   // now probabilities
        if (_s.TopP < 1f)
        {
            double cum = 0;
            int keep = n;
            for (int i = 0; i < n; i++) { cum += vals[i]; if (cum >= _s.TopP) { keep = i + 1; break; } }
            n = keep;
        }
        if (_s.MinP > 0)
        {
            float threshold = vals[0] * _s.MinP;
            int keep = 1;
            while (keep < n && vals[keep] >= threshold) keep++;
            n = keep;
        }
        return n;
    }

    /// <summary>Moves the k largest values (and their ids) to the front, in no particular order (quickselect).</summary>
    private static void SelectTop(Span<float> vals, Span<int> ids, int k)
    {
        int lo = 0, hi = vals.Length - 1;
        while (lo < hi)
        {
            float pivot = vals[(lo + hi) >>> 1];
            int i = lo, j = hi;
            while (i <= j)
            {
                while (vals[i] > pivot) i++;
                while (vals[j] < pivot) j--;
                if (i <= j)
                {
                    (vals[i], vals[j]) = (vals[j], vals[i]);
                    (ids[i], ids[j]) = (ids[j], ids[i]);
                    i++; j--;
                }
            }
            if (k - 1 <= j) hi = j;
            else if (k - 1 >= i) lo = i;
            else return;
        }
    }
}

using System.Diagnostics;
using System.Numerics.Tensors;
using KernelEngine.Kernels.DraftVerify;
using KernelEngine.Kernels.SoftmaxEntropy;
using KernelEngine.Text;

namespace KernelEngine.Decoding;

/// <summary>
/// Speculative decoding loops on a target session: a draft model (one or several branches per step) or
/// prompt lookup proposes tokens, the target scores every branch in ONE batched pass over its KV cache
/// (<see cref="Session.FeedBranches"/>), <see cref="DraftVerifyCpu"/> accepts a prefix and supplies the next token,
/// and both caches roll back to the accepted length. Greedy settings reproduce plain greedy decoding of the target;
/// sampling settings reproduce its sampling distribution exactly.
/// </summary>
public sealed class SpeculativeDecoder
{
    private readonly Session _target;
    private readonly Session? _draft;
    private readonly SpeculativeSettings _spec;
    private readonly int _vocab;

    public SpeculativeDecoder(Session target, Session? draft, SpeculativeSettings spec)
    {
        spec.Validate(draft != null);
        if (draft != null && draft.Model.Config.VocabSize != target.Model.Config.VocabSize)
            throw new InvalidRequestException($"draft vocabulary {draft.Model.Config.VocabSize} differs from the target's {target.Model.Config.VocabSize}");
        _target = target; _draft = draft; _spec = spec;
        _vocab = target.Model.Config.VocabSize;
    }

    public DecodingStats? Stats { get; private set; }

    public IEnumerable<GeneratedToken> Generate(IReadOnlyList<int> promptIds, GenerationSettings settings, bool atStartOfText = false, CancellationToken ct = default)
    {
        settings.Sampling.Validate();
        if (settings.Sampling.RepetitionPenalty != 1f) throw new InvalidRequestException("speculative decoding does not support a repetition penalty");
        if (promptIds.Count == 0) throw new InvalidRequestException("empty prompt");
        if (promptIds.Count >= _target.ContextLength) throw new InvalidRequestException($"prompt of {promptIds.Count} tokens does not fit the context length {_target.ContextLength}");
        return Run(promptIds.ToList(), settings, atStartOfText, ct);
    }

    private IEnumerable<GeneratedToken> Run(List<int> committed, GenerationSettings settings, bool atStartOfText, CancellationToken ct)
    {
        var tok = _target.Model.Tokenizer;
        var text = new TextStream(tok, atStartOfText);
        bool greedy = settings.Sampling.IsGreedy;
        var targetSampler = new Sampler(settings.Sampling, _vocab);
        var draftSampler = new Sampler(settings.Sampling with { Seed = settings.Sampling.Seed ^ 0x9E3779B97F4A7C15UL }, _vocab);
        var rng = targetSampler.Rng;
        int maxGamma = _spec.AdaptiveGamma ? _spec.MaxGamma : _spec.Gamma;
        int k = _spec.Drafts;
        var drafts = new int[k, maxGamma];                 // (branch, position) draft tokens
        var q = new float[k * maxGamma * _vocab];          // (branch, position, vocab) draft distributions
        var q0 = new float[_vocab];                         // first-position draft distribution (before exclusions)
        var p = new float[(maxGamma + 1) * _vocab];         // (position, vocab) target distributions along one branch
        var scratch = new float[_vocab];
        var uniforms = new double[maxGamma + k + 2];
        var accepted = new long[maxGamma];
        var proposed = new long[maxGamma];
        int gamma = _spec.Gamma, generated = 0, targetPasses = 0, draftPasses = 0;
        var targetTime = new Stopwatch(); var draftTime = new Stopwatch();
        int startLength = committed.Count;
        float[]? targetLogits = null;

        while (generated < settings.MaxTokens && !ct.IsCancellationRequested)
        {
            int room = _target.ContextLength - committed.Count;
            if (room <= 0) break;
            int g = Math.Min(gamma, Math.Min(settings.MaxTokens - generated - 1, room - 1));
            Sync(_target, committed);
            if (committed.Count - _target.Position > 1)
                _target.Feed(Tail(committed, _target.Position).AsSpan(0, committed.Count - _target.Position - 1)); // the prompt, batched
            int missing = committed.Count - _target.Position;          // 1: the last token is unfed
            g = Math.Min(g, _target.BatchCapacity - missing);
            int branches = k, branchLen;

            // 1. Drafts
            draftTime.Start();
            if (g > 0 && _spec.LookupNgram > 0)
            {
                g = Lookup(committed, _spec.LookupNgram, g, drafts);
                branches = 1;
                if (g > 0) Array.Clear(q, 0, g * _vocab);
                for (int i = 0; i < g; i++) q[i * _vocab + drafts[0, i]] = 1;   // a deterministic draft: one-hot q
            }
            else if (g > 0)
            {
                branches = Math.Max(1, Math.Min(Math.Min(k, (room - missing) / (missing + g)), _target.BatchCapacity / (missing + g)));
                for (int b = 0; b < branches; b++)
                {
                    Sync(_draft!, committed);
                    var logits = _draft!.Feed(Tail(committed, _draft.Position));
                    draftPasses++;
                    if (b == 0) draftSampler.Distribution(logits, default, q0);   // no history: repetition penalties are refused above
                    var qb0 = q.AsSpan(b * maxGamma * _vocab, _vocab);
                    q0.CopyTo(qb0);
                    // First tokens of the branches are distinct: without replacement from q0 (greedy: the b-th best).
                    for (int c = 0; c < b; c++) qb0[drafts[c, 0]] = 0;
                    drafts[b, 0] = greedy ? TensorPrimitives.IndexOfMax(b == 0 ? logits : Masked(logits, drafts, b, scratch)) : DraftVerifyCpu.Sample(qb0, draftSampler.Rng.NextDouble());
                    if (drafts[b, 0] < 0) { branches = b; break; }   // q0 has fewer than k tokens
                    for (int i = 1; i < g; i++)
                    {
                        logits = _draft.Feed([drafts[b, i - 1]]);
                        draftPasses++;
                        var qbi = q.AsSpan((b * maxGamma + i) * _vocab, _vocab);
                        draftSampler.Distribution(logits, default, qbi);
                        drafts[b, i] = greedy ? TensorPrimitives.IndexOfMax(logits) : DraftVerifyCpu.Sample(qbi, draftSampler.Rng.NextDouble());
                    }
                }
                // q rows of position 0 hold q0 for the verifier; exclusions are redone there.
                for (int b = 0; b < branches; b++) q0.CopyTo(q.AsSpan(b * maxGamma * _vocab, _vocab));
            }
            draftTime.Stop();
            if (g == 0) branches = 1;

            // 2. One batched target pass over every branch: [unfed committed tokens, drafts of the branch].
            branchLen = missing + g;
            var rows = new int[branches * branchLen];
            for (int b = 0; b < branches; b++)
            {
                for (int i = 0; i < missing; i++) rows[b * branchLen + i] = committed[committed.Count - missing + i];
                for (int i = 0; i < g; i++) rows[b * branchLen + missing + i] = drafts[b, i];
            }
            if (targetLogits == null || targetLogits.Length < rows.Length * _vocab) targetLogits = new float[rows.Length * _vocab];
            targetTime.Start();
            _target.FeedBranches(rows, branchLen, targetLogits);
            targetTime.Stop();
            targetPasses++;

            // 3. Verify.
            for (int i = 0; i < uniforms.Length; i++) uniforms[i] = rng.NextDouble();
            int branch = 0, nAccepted, next;
            if (branches > 1)
            {
                var p0 = p.AsSpan(0, _vocab);
                TargetRow(targetSampler, targetLogits, 0, branchLen, missing - 1, p0, committed);
                var cand = new int[branches];
                for (int b = 0; b < branches; b++) cand[b] = drafts[b, 0];
                q0.CopyTo(scratch);
                var v0 = DraftVerifyCpu.RecursiveReject(p0, scratch, cand, withoutReplacement: true, uniforms.AsSpan(0, branches + 1), greedy);
                proposed[0]++;
                if (v0.Branch < 0) { nAccepted = 0; next = v0.Token; }
                else
                {
                    accepted[0]++;
                    branch = v0.Branch;
                    for (int i = 1; i <= g; i++) TargetRow(targetSampler, targetLogits, branch, branchLen, missing - 1 + i, p.AsSpan((i - 1) * _vocab, _vocab), committed);
                    var dRest = new int[g - 1];
                    for (int i = 1; i < g; i++) dRest[i - 1] = drafts[branch, i];
                    var v = DraftVerifyCpu.Verify(p.AsSpan(0, g * _vocab), q.AsSpan((branch * maxGamma + 1) * _vocab, (g - 1) * _vocab), dRest,
                        uniforms.AsSpan(branches + 1, g), _vocab, greedy, scratch);
                    for (int i = 0; i < Math.Min(v.Accepted + 1, g - 1); i++) { proposed[i + 1]++; if (i < v.Accepted) accepted[i + 1]++; }
                    nAccepted = 1 + v.Accepted; next = v.Token;
                }
            }
            else
            {
                for (int i = 0; i <= g; i++) TargetRow(targetSampler, targetLogits, 0, branchLen, missing - 1 + i, p.AsSpan(i * _vocab, _vocab), committed);
                var d = new int[g];
                for (int i = 0; i < g; i++) d[i] = drafts[0, i];
                var v = DraftVerifyCpu.Verify(p.AsSpan(0, (g + 1) * _vocab), q.AsSpan(0, g * _vocab), d, uniforms.AsSpan(0, g + 1), _vocab, greedy, scratch);
                for (int i = 0; i < Math.Min(v.Accepted + 1, g); i++) { proposed[i]++; if (i < v.Accepted) accepted[i]++; }
                nAccepted = v.Accepted; next = v.Token;
            }

            // 4. Commit: the unfed tokens and the accepted drafts are in the target cache (branch rows).
            var keep = new int[missing + nAccepted];
            for (int i = 0; i < missing; i++) keep[i] = committed[committed.Count - missing + i];
            for (int i = 0; i < nAccepted; i++) keep[missing + i] = drafts[branch, i];
            _target.CommitBranch(branch, branchLen, keep);
            if (_spec.AdaptiveGamma && g > 0)
                gamma = nAccepted == g ? Math.Min(gamma + 1, maxGamma) : nAccepted == 0 ? Math.Max(1, gamma - 1) : gamma;

            // 5. Emit accepted drafts then the verifier's token, stopping as plain generation would.
            bool stop = false;
            for (int i = 0; i <= nAccepted && !stop; i++)
            {
                int id = i < nAccepted ? drafts[branch, i] : next;
                int row = (branch * branchLen) + missing - 1 + i;
                var s = SoftmaxEntropyCpu.Compute(targetLogits.AsSpan(row * _vocab, _vocab), 1f, id);
                generated++;
                committed.Add(id);
                if (settings.StopAtEos && tok.IsEos(id)) { stop = true; break; }
                string piece = text.Push(id);
                yield return new GeneratedToken(id, piece, committed.Count - 1, s.TokenLogProb, s.EntropyBits,
                    settings.ReturnLogits ? targetLogits.AsSpan(row * _vocab, _vocab).ToArray() : null);
                if (generated >= settings.MaxTokens) stop = true;
                foreach (var st in settings.StopStrings) if (st.Length > 0 && piece.Contains(st, StringComparison.Ordinal)) stop = true;
            }
            if (stop) break;
        }
        long acc = accepted.Sum(), prop = proposed.Sum();
        Stats = new DecodingStats
        {
            GeneratedTokens = committed.Count - startLength, TargetPasses = targetPasses, DraftPasses = draftPasses,
            TargetSeconds = targetTime.Elapsed.TotalSeconds, DraftSeconds = draftTime.Elapsed.TotalSeconds,
            AcceptanceByPosition = proposed.Select((n, i) => n == 0 ? double.NaN : accepted[i] / (double)n).TakeWhile(x => !double.IsNaN(x)).ToArray(),
            AcceptanceRate = prop == 0 ? 0 : acc / (double)prop,
        };
    }

    /// <summary>Target distribution of row (branch, index) of the verification pass.</summary>
    private static void TargetRow(Sampler sampler, float[] logits, int branch, int branchLen, int index, Span<float> dst, List<int> history)
    {
        int vocab = dst.Length;
        sampler.Distribution(logits.AsSpan((branch * branchLen + index) * vocab, vocab), default, dst);
    }

    private static ReadOnlySpan<float> Masked(ReadOnlySpan<float> logits, int[,] drafts, int b, float[] scratch)
    {
        logits.CopyTo(scratch);
        for (int c = 0; c < b; c++) scratch[drafts[c, 0]] = float.NegativeInfinity;
        return scratch;
    }

    /// <summary>Rewinds a session to the longest prefix it shares with the committed tokens, leaving at least one unfed.</summary>
    internal static void Sync(Session s, List<int> committed)
    {
        int n = 0, max = Math.Min(s.Position, committed.Count - 1);
        while (n < max && s.Tokens[n] == committed[n]) n++;
        s.Rewind(n);
    }

    private static int[] Tail(List<int> committed, int from) => committed.GetRange(from, committed.Count - from).ToArray();

    /// <summary>Prompt lookup: the tokens after the latest earlier occurrence of the final n-gram (n down to 1).</summary>
    internal static int Lookup(List<int> tokens, int maxN, int gamma, int[,] drafts)
    {
        int len = tokens.Count;
        for (int n = Math.Min(maxN, len - 1); n >= 1; n--)
        {
            for (int start = len - n - 1; start >= 0; start--)
            {
                bool match = true;
                for (int i = 0; i < n && match; i++) match = tokens[start + i] == tokens[len - n + i];
                if (!match) continue;
                int count = Math.Min(gamma, len - (start + n));
                for (int i = 0; i < count; i++) drafts[0, i] = tokens[start + n + i];
                return count;
            }
        }
        return 0;
    }
}

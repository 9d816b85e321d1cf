using System.Diagnostics;
using System.Numerics.Tensors;
using KernelEngine.Backends;
using KernelEngine.Kernels.DraftVerify;
using KernelEngine.Kernels.SoftmaxEntropy;
using KernelEngine.Text;

namespace KernelEngine.Decoding;

/// <summary>
/// Speculative decoding loops on a target session: a draft model (one or several branches per step) or
/// prompt lookup proposes tokens, the target scores every branch in ONE batched pass over its KV cache
/// (<see cref="Session.FeedBranches"/>), the verifier (<c>IBackend.VerifyDrafts</c> on the backend for greedy single-branch
/// steps, so a GPU returns only the verdict; <see cref="DraftVerifyCpu"/> on the host otherwise) accepts a prefix and supplies the next token,
/// and both caches roll back to the accepted length. Greedy settings reproduce plain greedy decoding of the target;
/// sampling settings reproduce its sampling distribution exactly.
/// </summary>
public sealed class SpeculativeDecoder
{
    private readonly Session _target;
    private readonly Session? _draft;
    private readonly SpeculativeSettings _spec;
    private readonly int _vocab;

    /// <summary>Verifies drafts of <paramref name="draft"/> (or prompt lookups when null) with <paramref name="target"/>; the output has the target's distribution.</summary>
    public SpeculativeDecoder(Session target, Session? draft, SpeculativeSettings spec)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate(draft != null);
        if (draft != null && ReferenceEquals(draft, target)) throw new InvalidRequestException("the draft session must not be the target session");
        if (draft != null && draft.Model.Config.VocabSize != target.Model.Config.VocabSize)
            throw new InvalidRequestException($"draft vocabulary {draft.Model.Config.VocabSize} differs from the target's {target.Model.Config.VocabSize}");
        _target = target; _draft = draft; _spec = spec;
        _vocab = target.Model.Config.VocabSize;
    }

    /// <summary>Counters of the last generation (also in the target session's <see cref="Session.LastStats"/>.Loop).</summary>
    public DecodingStats? Stats => _target.LastStats?.Loop;

    /// <summary>Streams tokens after <paramref name="promptIds"/>, as <see cref="Session.Generate(IReadOnlyList{int}, GenerationSettings, bool, CancellationToken)"/> does.</summary>
    public IEnumerable<GeneratedToken> Generate(IReadOnlyList<int> promptIds, GenerationSettings settings, bool atStartOfText = false, CancellationToken ct = default) =>
        Generator.Run(new Strategy(this, settings), promptIds, settings, atStartOfText, ct);

    /// <summary>The same tokens as <see cref="Generate"/>, computed off the caller's thread.</summary>
    public IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> promptIds, GenerationSettings settings, bool atStartOfText = false, CancellationToken ct = default) =>
        Generator.Async(() => Generate(promptIds, settings, atStartOfText, ct), ct);

    /// <summary>One generation's state: drafts, distributions and counters, allocated once.</summary>
    private sealed class Strategy : IDecodingStrategy
    {
        private readonly SpeculativeDecoder _d;
        private readonly Session _target;
        private readonly Session? _draft;
        private readonly SpeculativeSettings _spec;
        private readonly int _vocab, _maxGamma, _k;
        private readonly bool _greedy, _returnLogits;
        private readonly Sampler _targetSampler, _draftSampler;
        private readonly Rng _rng;
        private readonly int[,] _drafts;   // (branch, position) draft tokens
        private readonly float[] _q;       // (branch, position, vocab) draft distributions
        private readonly float[] _q0;      // first-position draft distribution (before exclusions)
        private readonly float[] _p;       // (position, vocab) target distributions along one branch
        private readonly float[] _scratch;
        private readonly double[] _uniforms;
        private readonly long[] _accepted, _proposed;
        private readonly Stopwatch _targetTime = new(), _draftTime = new();
        private float[]? _targetLogits;
        private int _backendVerifications;
        private int _gamma, _targetPasses, _draftPasses, _generated;
        // Constrained decoding: the committed text's place in the grammar; drafts and the target's rows are masked by the
        // place of their position, so the verifier reproduces the target's masked distribution. One branch per step.
        private readonly Constraints.GrammarMatcher? _grammar;
        private readonly List<Constraints.GrammarMatcher> _places = new();   // (position) the grammar before draft i
        private readonly float[] _masked;

        public Strategy(SpeculativeDecoder d, GenerationSettings settings)
        {
            _d = d; _target = d._target; _draft = d._draft; _spec = d._spec; _vocab = d._vocab;
            _greedy = settings.Sampling.IsGreedy;
            _returnLogits = settings.ReturnLogits;
            _targetSampler = new Sampler(settings.Sampling, _vocab);
            _draftSampler = new Sampler(settings.Sampling with { Seed = settings.Sampling.Seed ^ 0x9E3779B97F4A7C15UL }, _vocab);
            _rng = _targetSampler.Rng;
            _maxGamma = _spec.AdaptiveGamma ? _spec.MaxGamma : _spec.Gamma;
            _k = _spec.Drafts;
            _drafts = new int[_k, _maxGamma];
            _q = new float[(long)_k * _maxGamma * _vocab];
            _q0 = new float[_vocab];
            _p = new float[(_maxGamma + 1) * _vocab];
            _scratch = new float[_vocab];
            _uniforms = new double[_maxGamma + _k + 2];
            _accepted = new long[_maxGamma];
            _proposed = new long[_maxGamma];
            _gamma = _spec.Gamma;
            Sessions = _draft == null ? [_target] : [_target, _draft];
            _grammar = Constraints.GrammarCache.Of(settings) is { } grammar ? new(grammar, _target.Model.Tokenizer) : null;
            _masked = new float[_vocab];
        }

        /// <summary>The logits as the grammar at <paramref name="position"/> of this step lets them through (unchanged without one).</summary>
        private ReadOnlySpan<float> Constrained(ReadOnlySpan<float> logits, int position, int tokensLeft)
        {
            if (_grammar == null) return logits;
            logits.CopyTo(_masked);
            _places[position].Mask(_masked, tokensLeft);
            return _masked;
        }

        public Session Primary => _target;
        public IReadOnlyList<Session> Sessions { get; }
        public int ContextLength => _draft == null ? _target.ContextLength : Math.Min(_target.ContextLength, _draft.ContextLength);

        public void Validate(GenerationSettings settings)
        {
            if (settings.Sampling.RepetitionPenalty != 1f) throw new InvalidRequestException("speculative decoding does not support a repetition penalty");
        }

        /// <summary>The target (and the draft model) take the prompt but its last token, batched; the last token goes
        /// into the first verification pass with the drafts.</summary>
        public int Prefill(IReadOnlyList<int> prompt, CancellationToken ct)
        {
            var committed = prompt as List<int> ?? prompt.ToList();
            int reused = CatchUp(_target, committed, ct);
            if (_draft != null) CatchUp(_draft, committed, ct);
            return reused;
        }

        private static int CatchUp(Session s, List<int> committed, CancellationToken ct)
        {
            Sync(s, committed);
            int reused = s.Position;
            if (committed.Count - s.Position > 1)
                s.FeedCore(Tail(committed, s.Position).AsSpan(0, committed.Count - s.Position - 1), ct);
            return reused;
        }

        public void Step(List<int> committed, int maxNew, List<StepToken> output, CancellationToken ct)
        {
            // Tokens after this step: at most maxNew (drafts + the verifier's token), all but the last fed.
            int g = Math.Min(_gamma, maxNew - 1);
            CatchUp(_target, committed, ct);
            int missing = committed.Count - _target.Position;          // 1: the last token is unfed
            g = Math.Max(0, Math.Min(g, _target.BatchCapacity - missing));
            int room = ContextLength - _target.Position;
            int branches = _k, branchLen;
            if (_grammar != null)
            {
                _places.Clear();
                _places.Add(_grammar.Clone());
            }

            // 1. Drafts
            _draftTime.Start();
            if (g > 0 && _spec.LookupNgram > 0)
            {
                g = Lookup(committed, _spec.LookupNgram, g, _drafts);
                branches = 1;
                if (_grammar != null)
                    for (int i = 0; i < g; i++)
                    {
                        if (!_places[i].Allows(_drafts[0, i])) { g = i; break; }   // the lookup leaves the grammar here
                        var after = _places[i].Clone();
                        after.Accept(_drafts[0, i]);
                        _places.Add(after);
                    }
                if (g > 0) Array.Clear(_q, 0, g * _vocab);
                for (int i = 0; i < g; i++) _q[i * _vocab + _drafts[0, i]] = 1;   // a deterministic draft: one-hot q
            }
            else if (g > 0)
            {
                branches = _grammar != null ? 1 : Math.Max(1, Math.Min(Math.Min(_k, room / (missing + g)), _target.BatchCapacity / (missing + g)));
                for (int b = 0; b < branches; b++)
                {
                    Sync(_draft!, committed);
                    var logits = Constrained(_draft!.FeedCore(Tail(committed, _draft.Position), ct), 0, maxNew);
                    _draftPasses++;
                    if (b == 0) _draftSampler.Distribution(logits, default, _q0);   // no history: repetition penalties are refused above
                    var qb0 = _q.AsSpan(b * _maxGamma * _vocab, _vocab);
                    _q0.CopyTo(qb0);
                    // First tokens of the branches are distinct: without replacement from q0 (greedy: the b-th best).
                    for (int c = 0; c < b; c++) qb0[_drafts[c, 0]] = 0;
                    _drafts[b, 0] = _greedy ? TensorPrimitives.IndexOfMax(b == 0 ? logits : Masked(logits, _drafts, b, _scratch)) : DraftVerifyCpu.Sample(qb0, _draftSampler.Rng.NextDouble());
                    if (_drafts[b, 0] < 0) { branches = b; break; }   // q0 has fewer than k tokens
                    for (int i = 1; i < g; i++)
                    {
                        if (_grammar != null)
                        {
                            var after = _places[i - 1].Clone();
                            after.Accept(_drafts[b, i - 1]);
                            if (!after.CanContinue) { g = i; break; }   // the draft ended the grammar's text
                            _places.Add(after);
                        }
                        logits = Constrained(_draft.FeedCore([_drafts[b, i - 1]], ct), i, maxNew - i);
                        _draftPasses++;
                        var qbi = _q.AsSpan((b * _maxGamma + i) * _vocab, _vocab);
                        _draftSampler.Distribution(logits, default, qbi);
                        _drafts[b, i] = _greedy ? TensorPrimitives.IndexOfMax(logits) : DraftVerifyCpu.Sample(qbi, _draftSampler.Rng.NextDouble());
                    }
                }
                // q rows of position 0 hold q0 for the verifier; exclusions are redone there.
                for (int b = 0; b < branches; b++) _q0.CopyTo(_q.AsSpan(b * _maxGamma * _vocab, _vocab));
                if (_grammar != null && g > 0 && _places.Count == g)
                {
                    var last = _places[g - 1].Clone();   // the place after every draft: the target's last row
                    last.Accept(_drafts[0, g - 1]);
                    _places.Add(last);
                }
            }
            _draftTime.Stop();
            if (g == 0) branches = 1;
            ct.ThrowIfCancellationRequested();

            // 2. One batched target pass over every branch: [unfed committed tokens, drafts of the branch].
            branchLen = missing + g;
            var rows = new int[branches * branchLen];
            for (int b = 0; b < branches; b++)
            {
                for (int i = 0; i < missing; i++) rows[b * branchLen + i] = committed[committed.Count - missing + i];
                for (int i = 0; i < g; i++) rows[b * branchLen + missing + i] = _drafts[b, i];
            }
            // Greedy, one branch, no grammar and no returned logits: the logits stay on the device and the backend verifies.
            bool onDevice = _greedy && branches == 1 && _grammar == null && !_returnLogits;
            DeviceTensor? deviceLogits = null;
            _targetTime.Start();
            if (onDevice) deviceLogits = _target.FeedBranchesOnDevice(rows, branchLen);
            else
            {
                if (_targetLogits == null || _targetLogits.Length < rows.Length * _vocab) _targetLogits = new float[rows.Length * _vocab];
                _target.FeedBranchesCore(rows, branchLen, _targetLogits);
            }
            _targetTime.Stop();
            _targetPasses++;

            // 3. Verify (on the host from hostLogits, which every path but the device one filled).
            float[] hostLogits = onDevice ? [] : _targetLogits!;
            for (int i = 0; i < _uniforms.Length; i++) _uniforms[i] = _rng.NextDouble();
            int branch = 0, nAccepted, next;
            if (branches > 1)
            {
                var p0 = _p.AsSpan(0, _vocab);
                TargetRow(_targetSampler, hostLogits, 0, branchLen, missing - 1, p0);
                var cand = new int[branches];
                for (int b = 0; b < branches; b++) cand[b] = _drafts[b, 0];
                _q0.CopyTo(_scratch);
                var v0 = DraftVerifyCpu.RecursiveReject(p0, _scratch, cand, withoutReplacement: true, _uniforms.AsSpan(0, branches + 1), _greedy);
                _proposed[0]++;
                if (v0.Branch < 0) { nAccepted = 0; next = v0.Token; }
                else
                {
                    _accepted[0]++;
                    branch = v0.Branch;
                    for (int i = 1; i <= g; i++) TargetRow(_targetSampler, hostLogits, branch, branchLen, missing - 1 + i, _p.AsSpan((i - 1) * _vocab, _vocab));
                    var dRest = new int[g - 1];
                    for (int i = 1; i < g; i++) dRest[i - 1] = _drafts[branch, i];
                    var v = DraftVerifyCpu.Verify(_p.AsSpan(0, g * _vocab), _q.AsSpan((branch * _maxGamma + 1) * _vocab, (g - 1) * _vocab), dRest,
                        _uniforms.AsSpan(branches + 1, g), _vocab, _greedy, _scratch);
                    for (int i = 0; i < Math.Min(v.Accepted + 1, g - 1); i++) { _proposed[i + 1]++; if (i < v.Accepted) _accepted[i + 1]++; }
                    nAccepted = 1 + v.Accepted; next = v.Token;
                }
            }
            else
            {
                var d = new int[g];
                for (int i = 0; i < g; i++) d[i] = _drafts[0, i];
                Verdict v;
                if (deviceLogits != null)
                {
                    var backend = _target.Backend;
                    var p = backend.RowView(deviceLogits, missing - 1, g + 1);   // rows predicting each draft, then the bonus
                    v = backend.VerifyDrafts(p, p, d, _uniforms.AsSpan(0, g + 1), greedy: true, multi: false, withoutReplacement: false);   // greedy reads no q
                    _backendVerifications++;
                }
                else
                {
                    for (int i = 0; i <= g; i++)
                    {
                        if (_grammar == null) TargetRow(_targetSampler, hostLogits, 0, branchLen, missing - 1 + i, _p.AsSpan(i * _vocab, _vocab));
                        else _targetSampler.Distribution(Constrained(hostLogits.AsSpan((missing - 1 + i) * _vocab, _vocab), i, maxNew - i), default, _p.AsSpan(i * _vocab, _vocab));
                    }
                    v = DraftVerifyCpu.Verify(_p.AsSpan(0, (g + 1) * _vocab), _q.AsSpan(0, g * _vocab), d, _uniforms.AsSpan(0, g + 1), _vocab, _greedy, _scratch);
                }
                for (int i = 0; i < Math.Min(v.Accepted + 1, g); i++) { _proposed[i]++; if (i < v.Accepted) _accepted[i]++; }
                nAccepted = v.Accepted; next = v.Token;
            }

            // 4. Commit: the unfed tokens and the accepted drafts are in the target cache (branch rows).
            var keep = new int[missing + nAccepted];
            for (int i = 0; i < missing; i++) keep[i] = committed[committed.Count - missing + i];
            for (int i = 0; i < nAccepted; i++) keep[missing + i] = _drafts[branch, i];
            _target.CommitBranchCore(branch, branchLen, keep);
            if (_spec.AdaptiveGamma && g > 0)
                _gamma = nAccepted == g ? Math.Min(_gamma + 1, _maxGamma) : nAccepted == 0 ? Math.Max(1, _gamma - 1) : _gamma;

            // 5. The accepted drafts, then the verifier's token; the generator decides where to stop.
            for (int i = 0; i <= nAccepted; i++)
            {
                int id = i < nAccepted ? _drafts[branch, i] : next;
                _grammar?.Accept(id);
                int row = (branch * branchLen) + missing - 1 + i;
                if (deviceLogits != null)
                {
                    var ds = _target.Backend.SoftmaxEntropy(deviceLogits, row, 1f, id);
                    output.Add(new StepToken(id, ds.TokenLogProb, ds.EntropyBits, null));
                    continue;
                }
                var rowLogits = hostLogits.AsSpan(row * _vocab, _vocab);
                var s = SoftmaxEntropyCpu.Compute(rowLogits, 1f, id);
                output.Add(new StepToken(id, s.TokenLogProb, s.EntropyBits, _returnLogits ? rowLogits.ToArray() : null));
            }
            _generated += output.Count;
        }

        public DecodingStats LoopStats
        {
            get
            {
                long acc = _accepted.Sum(), prop = _proposed.Sum();
                return new DecodingStats
                {
                    GeneratedTokens = _generated, TargetPasses = _targetPasses, DraftPasses = _draftPasses, BackendVerifications = _backendVerifications,
                    TargetSeconds = _targetTime.Elapsed.TotalSeconds, DraftSeconds = _draftTime.Elapsed.TotalSeconds,
                    AcceptanceByPosition = _proposed.Select((n, i) => n == 0 ? double.NaN : _accepted[i] / (double)n).TakeWhile(x => !double.IsNaN(x)).ToArray(),
                    AcceptanceRate = prop == 0 ? 0 : acc / (double)prop,
                };
            }
        }
    }

    /// <summary>Target distribution of row (branch, index) of the verification pass.</summary>
    private static void TargetRow(Sampler sampler, float[] logits, int branch, int branchLen, int index, Span<float> dst)
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
        s.RewindCore(n);
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

using System.Numerics.Tensors;
using System.Text;
using KernelEngine.Kernels.SoftmaxEntropy;

namespace KernelEngine.Decoding;

/// <summary>
/// Scores a text: tokens = BOS + encode(text); every token after the first is predicted exactly once. Texts longer
/// than the window are scored with a sliding window: window w covers tokens [w·stride, w·stride + context) and
/// scores only the tokens no earlier window scored, so each has as much context as fits. Each window runs as
/// batched prefill passes (matrix-matrix), never a decode loop.
/// </summary>
public static class Scorer
{
    /// <summary>The tokens a text is scored on: BOS (where the model uses one) and the text.</summary>
    public static int[] TokensOf(Model model, string text)
    {
        if (text.Length == 0) throw new InvalidRequestException("empty text: nothing to score");
        var ids = model.Tokenizer.Encode(text, addBos: true);
        if (model.Tokenizer.BosId == null && model.Config.BosTokenId is int b) ids = [b, .. ids];
        return ids;
    }

    /// <summary>Reads a text file as strict UTF-8 (invalid bytes are an error, not replacement characters).</summary>
    public static string ReadText(string path)
    {
        if (!File.Exists(path)) throw new InvalidRequestException($"{path}: file not found");
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length == 0) throw new InvalidRequestException($"{path}: the file is empty, nothing to score");
        try { return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes); }
        catch (DecoderFallbackException e) { throw new InvalidRequestException($"{path}: not valid UTF-8 (byte offset {e.Index})"); }
    }

    /// <summary>Scores a text (see <see cref="ScoreTokens"/>).</summary>
    public static ScoreResult Score(Model model, string text, ScoreOptions? options = null, Model? baseModel = null, BaseLogProbs? baseLogProbs = null)
    {
        var tokens = TokensOf(model, text);
        return ScoreTokens(model, tokens, Encoding.UTF8.GetByteCount(text), options, baseModel, baseLogProbs);
    }

    /// <summary>Runs the base model alone and keeps its log-probs, to save and reuse.</summary>
    public static BaseLogProbs ComputeBase(Model baseModel, int[] tokens, ScoreOptions? options = null)
    {
        var (ctx, stride) = Window(baseModel, options, tokens.Length);
        int vocab = baseModel.Config.VocabSize;
        var rows = new float[(long)(tokens.Length - 1) * vocab];
        Run(baseModel, tokens, ctx, stride, options?.Progress, (target, logits) =>
        {
            var dst = rows.AsSpan((target - 1) * vocab, vocab);
            LogSoftmax(logits, dst);
        });
        return new BaseLogProbs { Tokens = tokens, LogProbs = rows, Vocab = vocab, Context = ctx, Stride = stride };
    }

    /// <summary>Runs the base model and writes its log-probs to <paramref name="path"/> row by row (for texts whose
    /// log-probs do not fit in memory); <see cref="BaseLogProbs.Load"/> reads them back one row at a time.</summary>
    public static void SaveBase(Model baseModel, int[] tokens, string path, ScoreOptions? options = null)
    {
        if (tokens.Length < 2) throw new InvalidRequestException("need at least one token after BOS to score");
        var (ctx, stride) = Window(baseModel, options, tokens.Length);
        int vocab = baseModel.Config.VocabSize;
        var row = new float[vocab];
        BaseLogProbs.Write(path, tokens, vocab, ctx, stride, stream =>
            Run(baseModel, tokens, ctx, stride, options?.Progress, (target, logits) =>
            {
                LogSoftmax(logits, row);
                stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(row.AsSpan()));
            }));
    }

    /// <summary>Scores tokens in sliding windows; with a base model (run in lockstep) or base log-probs, also KL(base || model) per token.</summary>
    public static ScoreResult ScoreTokens(Model model, int[] tokens, long bytes, ScoreOptions? options = null, Model? baseModel = null, BaseLogProbs? baseLogProbs = null)
    {
        options ??= new ScoreOptions();
        if (tokens.Length < 2) throw new InvalidRequestException("need at least one token after BOS to score");
        var (ctx, stride) = Window(model, options, tokens.Length);
        if (baseModel != null && baseModel.Config.VocabSize != model.Config.VocabSize)
            throw new InvalidRequestException($"base vocabulary {baseModel.Config.VocabSize} differs from the model's {model.Config.VocabSize}");
        if (baseModel != null && baseLogProbs != null) throw new InvalidRequestException("give a base model or base log-probs, not both");
        if (baseModel != null && ctx > baseModel.ContextLength)
            throw new InvalidRequestException($"context {ctx} is larger than the base model's context length {baseModel.ContextLength}");
        if (baseLogProbs != null)
        {
            if (!baseLogProbs.Tokens.AsSpan().SequenceEqual(tokens))
                throw new InvalidRequestException("the base log-probs were computed on different tokens (another text or tokenizer)");
            if (baseLogProbs.Vocab != model.Config.VocabSize)
                throw new InvalidRequestException($"base log-probs have vocabulary {baseLogProbs.Vocab}, the model {model.Config.VocabSize}");
        }
        int vocab = model.Config.VocabSize;
        var scores = new TokenScore[tokens.Length - 1];
        var lp = new float[vocab];
        var baseRow = new float[vocab];
        Model[] models = baseModel != null ? [model, baseModel] : [model];
        int windows = Run(models, tokens, ctx, stride, options.Progress, options.Shard, (target, rows) =>
        {
            var logits = rows[0];
            int truth = tokens[target];
            var s = SoftmaxEntropyCpu.Compute(logits, 1f, truth);
            int rank = 0;
            float tl = logits[truth];
            foreach (float v in logits) if (v > tl) rank++;
            var score = new TokenScore(target, truth, s.TokenLogProb, s.EntropyBits, rank, 0);
            if (baseLogProbs != null || baseModel != null)
            {
                ReadOnlySpan<float> b;
                if (baseLogProbs != null) b = baseLogProbs.Row(target - 1);
                else
                {
                    LogSoftmax(rows[1], baseRow);
                    b = baseRow;
                }
                LogSoftmax(logits, lp);
                double kl = 0;
                for (int i = 0; i < vocab; i++)
                {
                    double pb = Math.Exp(b[i]);
                    if (pb > 0) kl += pb * (b[i] - lp[i]);
                }
                score = score with
                {
                    KlDivergence = Math.Max(0, kl), Top1Agrees = TensorPrimitives.IndexOfMax(b) == s.ArgMax, BaseLogProb = b[truth],
                };
            }
            scores[target - 1] = score;
        }, (target, contextTokens) => { scores[target - 1] = scores[target - 1] with { ContextTokens = contextTokens }; });
        var c = model.Config;
        double matmulParams = (double)c.Layers * (c.HiddenSize * (double)(c.Heads * c.HeadDim) * 2 + 2.0 * c.HiddenSize * c.KvDim
            + (c.Architecture == Formats.Architecture.Llama ? 3.0 : 2.0) * c.HiddenSize * c.IntermediateSize) + (double)c.VocabSize * c.HiddenSize;
        var scored = options.Shard == null ? scores : scores.Where(t => t.Position > 0).ToArray();   // a shard's targets only
        var totals = new ScoreTotals
        {
            Bytes = bytes, Windows = windows, IcBias = options.IcBias, MatmulParams = matmulParams, AttentionWidth = (double)c.Layers * c.Heads * c.HeadDim,
        };
        foreach (var t in scored) totals.Add(t);
        return new ScoreResult
        {
            Tokens = scored, Bytes = bytes, IcBias = options.IcBias, Windows = windows, Totals = totals, Context = ctx, Stride = stride,
            FlopsPerToken = scored.Length > 0 ? totals.FlopsPerToken : 2 * matmulParams,
        };
    }

    /// <summary>Windows a text of <paramref name="tokens"/> tokens is scored in (the loop of <c>Run</c>, without the model).</summary>
    public static long WindowCount(int tokens, int ctx, int stride)
    {
        long windows = 0;
        for (long begin = 0, scoredUpTo = 1; scoredUpTo < tokens; begin += stride, windows++) scoredUpTo = Math.Min(begin + ctx, tokens);
        return windows;
    }

    private static (int Context, int Stride) Window(Model model, ScoreOptions? o, int tokens)
    {
        int ctx = o?.Context ?? model.ContextLength;
        if (ctx < 2) throw new InvalidRequestException($"context {ctx} must be at least 2 tokens");
        if (ctx > model.ContextLength)
            throw new InvalidRequestException($"context {ctx} is larger than the model's context length {model.ContextLength}");
        int stride = o?.Stride ?? Math.Max(1, ctx / 2);
        if (stride < 1 || stride > ctx - 1) throw new InvalidRequestException($"stride {stride} must be in 1..{ctx - 1} (context {ctx})");
        return (ctx, stride);
    }

    /// <summary>
    /// Slides the window and calls onLogits(target, logits predicting tokens[target]) once per target 1..n-1,
    /// and onContext(target, tokens attended) for the FLOPs count. Returns the number of windows.
    /// </summary>
    private static int Run(Model model, int[] tokens, int ctx, int stride, IProgress<(int, int)>? progress,
        Action<int, float[]> onLogits, Action<int, int>? onContext = null) =>
        Run([model], tokens, ctx, stride, progress, null, (target, rows) => onLogits(target, rows[0]), onContext);

    /// <summary>The windows of <see cref="Run(Model, int[], int, int, IProgress{ValueTuple{int, int}}?, Action{int, float[]}, Action{int, int}?)"/>
    /// for several models in lockstep (a model and its KL base): rows[m] holds model m's logits for the target, so no
    /// model's log-probs for the whole text are ever held (memory is a prefill chunk of logits per model).</summary>
    private static int Run(Model[] models, int[] tokens, int ctx, int stride, IProgress<(int, int)>? progress, ScoreShard? shard,
        Action<int, float[][]> onLogits, Action<int, int>? onContext = null)
    {
        var sessions = new Session[models.Length];
        try
        {
            for (int m = 0; m < models.Length; m++) sessions[m] = models[m].CreateSession();
            int vocab = models[0].Config.VocabSize, chunk = models.Min(m => m.Options.PrefillBatch);
            var logits = models.Select(_ => new float[chunk * vocab]).ToArray();
            var rows = models.Select(_ => new float[vocab]).ToArray();
            int scoredUpTo = 1;   // next target to score
            int windows = 0;
            var (first, last) = shard?.Range(WindowCount(tokens.Length, ctx, stride)) ?? (0, long.MaxValue);
            long w = 0;
            for (int begin = 0; scoredUpTo < tokens.Length; begin += stride, w++)
            {
                int end = Math.Min(begin + ctx, tokens.Length);
                if (w < first || w >= last) { scoredUpTo = end; continue; }   // another shard's window
                foreach (var session in sessions) session.Reset();
                windows++;
                // Feed tokens [begin, end - 1): the logits at position p predict tokens[p + 1].
                for (int p = begin; p < end - 1; p += chunk)
                {
                    int n = Math.Min(chunk, end - 1 - p);
                    for (int m = 0; m < sessions.Length; m++) sessions[m].FeedAll(tokens.AsSpan(p, n), logits[m].AsSpan(0, n * vocab));
                    for (int i = 0; i < n; i++)
                    {
                        int target = p + i + 1;
                        if (target < scoredUpTo) continue;
                        for (int m = 0; m < sessions.Length; m++) logits[m].AsSpan(i * vocab, vocab).CopyTo(rows[m]);
                        onLogits(target, rows);
                        onContext?.Invoke(target, target - begin);
                    }
                }
                scoredUpTo = end;
                progress?.Report((scoredUpTo - 1, tokens.Length - 1));
            }
            return windows;
        }
        finally
        {
            foreach (var session in sessions) session?.Dispose();
        }
    }

    private static void LogSoftmax(ReadOnlySpan<float> logits, Span<float> dst)
    {
        var s = SoftmaxEntropyCpu.Compute(logits);
        TensorPrimitives.Subtract(logits, (float)s.LogSumExp, dst);
    }
}

using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using KernelEngine.Decoding;

namespace KernelEngine.Cli;

/// <summary>
/// What <c>ke score --shard I/N --json</c> prints: one shard's <see cref="ScoreTotals"/> (sums exact, as integers of
/// 2^-1074) and what identifies the job (text hash and length in tokens, window, model shape), so that
/// <c>ke score --merge</c> refuses parts of different jobs and prints what an unsharded run prints, digit for digit.
/// </summary>
internal sealed record ScorePartial
{
    public const string KindName = "ke.score.partial";
    [JsonPropertyName("kind")] public string Kind { get; init; } = KindName;
    [JsonPropertyName("shard")] public int Shard { get; init; }
    [JsonPropertyName("shards")] public int Shards { get; init; }
    [JsonPropertyName("text_sha256")] public string TextSha256 { get; init; } = "";
    [JsonPropertyName("text_tokens")] public int TextTokens { get; init; }
    [JsonPropertyName("context")] public int Context { get; init; }
    [JsonPropertyName("stride")] public int Stride { get; init; }
    [JsonPropertyName("tokens")] public long Tokens { get; init; }
    [JsonPropertyName("bytes")] public long Bytes { get; init; }
    [JsonPropertyName("windows")] public long Windows { get; init; }
    [JsonPropertyName("top1")] public long Top1 { get; init; }
    [JsonPropertyName("attended")] public long Attended { get; init; }
    [JsonPropertyName("log_prob_sum_exact")] public string LogProbSum { get; init; } = "0";
    [JsonPropertyName("entropy_bits_sum_exact")] public string EntropyBitsSum { get; init; } = "0";
    [JsonPropertyName("ic_bias")] public double IcBias { get; init; }
    [JsonPropertyName("matmul_params")] public double MatmulParams { get; init; }
    [JsonPropertyName("attention_width")] public double AttentionWidth { get; init; }
    [JsonPropertyName("has_base")] public bool HasBase { get; init; }
    [JsonPropertyName("kl_sum_exact")] public string KlSum { get; init; } = "0";
    [JsonPropertyName("base_log_prob_sum_exact")] public string BaseLogProbSum { get; init; } = "0";
    [JsonPropertyName("top1_agree")] public long Top1Agree { get; init; }
    [JsonPropertyName("kl_values")] public List<double> KlValues { get; init; } = new();

    public static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    public static ScorePartial Of(ScoreResult r, ScoreShard shard, string textHash, int textTokens) => new()
    {
        Shard = shard.Index, Shards = shard.Count, TextSha256 = textHash, TextTokens = textTokens, Context = r.Context, Stride = r.Stride,
        Tokens = r.Totals.Tokens, Bytes = r.Totals.Bytes, Windows = r.Totals.Windows, Top1 = r.Totals.Top1, Attended = r.Totals.Attended,
        LogProbSum = r.Totals.LogProb.ToString(), EntropyBitsSum = r.Totals.EntropyBits.ToString(), IcBias = r.Totals.IcBias,
        MatmulParams = r.Totals.MatmulParams, AttentionWidth = r.Totals.AttentionWidth, HasBase = r.Totals.HasBase,
        KlSum = r.Totals.Kl.ToString(), BaseLogProbSum = r.Totals.BaseLogProb.ToString(), Top1Agree = r.Totals.Top1Agree, KlValues = r.Totals.KlValues,
    };

    private ScoreTotals ToTotals() => new()
    {
        Tokens = Tokens, Bytes = Bytes, Windows = Windows, Top1 = Top1, Attended = Attended,
        LogProb = ExactSum.Parse(LogProbSum), EntropyBits = ExactSum.Parse(EntropyBitsSum), IcBias = IcBias,
        MatmulParams = MatmulParams, AttentionWidth = AttentionWidth, HasBase = HasBase, Kl = ExactSum.Parse(KlSum),
        BaseLogProb = ExactSum.Parse(BaseLogProbSum), Top1Agree = Top1Agree, KlValues = new List<double>(KlValues),
    };

    /// <summary>Reads the parts (every shard of one job exactly once) and adds them up.</summary>
    public static ScoreTotals Merge(IReadOnlyList<string> paths)
    {
        if (paths.Count == 0) throw new InvalidRequestException("--merge needs the partial results of every shard");
        var parts = new List<(string Path, ScorePartial Part)>();
        foreach (var path in paths)
        {
            if (!File.Exists(path)) throw new InvalidRequestException($"{path}: file not found");
            ScorePartial? p;
            try { p = JsonSerializer.Deserialize<ScorePartial>(File.ReadAllText(path)); }
            catch (JsonException e) { throw new InvalidRequestException($"{path}: not a partial score ({e.Message})"); }
            if (p == null || p.Kind != KindName) throw new InvalidRequestException($"{path}: not a partial score (\"kind\" is not \"{KindName}\"; write it with ke score --shard I/N --json)");
            parts.Add((path, p));
        }
        var first = parts[0].Part;
        foreach (var (path, p) in parts)
        {
            string? differs = p.Shards != first.Shards ? "shards" : p.TextSha256 != first.TextSha256 ? "text_sha256" : p.TextTokens != first.TextTokens ? "text_tokens"
                : p.Context != first.Context ? "context" : p.Stride != first.Stride ? "stride" : p.Bytes != first.Bytes ? "bytes" : p.IcBias != first.IcBias ? "ic_bias"
                : p.MatmulParams != first.MatmulParams || p.AttentionWidth != first.AttentionWidth ? "matmul_params" : null;
            if (differs != null) throw new InvalidRequestException($"{path}: \"{differs}\" differs from {parts[0].Path}'s: the parts are not of one job");
        }
        var seen = parts.GroupBy(x => x.Part.Shard).ToDictionary(g => g.Key, g => g.Select(x => x.Path).ToList());
        if (seen.FirstOrDefault(kv => kv.Value.Count > 1) is { Value: not null } dup)
            throw new InvalidRequestException($"shard {dup.Key}/{first.Shards} is given twice ({string.Join(", ", dup.Value)})");
        var missing = Enumerable.Range(0, first.Shards).Where(i => !seen.ContainsKey(i)).ToList();
        if (missing.Count > 0) throw new InvalidRequestException($"missing shard(s) {string.Join(", ", missing.Select(i => $"{i}/{first.Shards}"))}");
        var total = parts.OrderBy(x => x.Part.Shard).Select(x => x.Part.ToTotals()).ToList();
        for (int i = 1; i < total.Count; i++) total[0].Add(total[i]);
        if (total[0].Tokens != first.TextTokens - 1) throw new InvalidRequestException($"the parts scored {total[0].Tokens} tokens; the text has {first.TextTokens - 1} to score");
        return total[0];
    }
}

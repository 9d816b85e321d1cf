using System.CommandLine;
using System.Globalization;
using System.Text;
using KernelEngine.Decoding;

namespace KernelEngine.Cli;

internal static class ScoreCommand
{
    public static Command Create()
    {
        var model = CliCommon.Model(); model.Required = false; var json = CliCommon.Json(); var device = CliCommon.Device();
        var file = new Option<string?>("--file", "-f") { Description = "UTF-8 text file to score" };
        var shard = new Option<string?>("--shard") { Description = "Score only shard I of N (I/N, 0-based, e.g. a Kubernetes indexed Job's index): prints a partial result to merge with --merge" };
        var merge = new Option<string[]>("--merge") { Description = "Add up the partial results of every shard (files written by --shard I/N --json): prints what an unsharded run prints", AllowMultipleArgumentsPerToken = true };
        var context = new Option<int?>("--context") { Description = "Window length in tokens (default: the model's context)" }.InRange(2, int.MaxValue);
        var stride = new Option<int?>("--stride") { Description = "Window advance in tokens (default: half the window)" }.InRange(1, int.MaxValue);
        var trace = new Option<string?>("--trace") { Description = "Per-token trace file: .json for JSON, else CSV" };
        var klBase = new Option<string?>("--kl-base") { Description = "Base model folder: report KL(base || model), top-1 agreement, perplexity ratio" };
        var klBaseFile = new Option<string?>("--kl-base-file") { Description = "Base log-probs saved earlier with --save-base (instead of running --kl-base)" };
        var saveBase = new Option<string?>("--save-base") { Description = "Save the base's log-probs (of --kl-base, or of --model when no base is given) to this file" };
        var icBias = new Option<double>("--ic-bias") { Description = "Bias b of the information-capacity formula", DefaultValueFactory = _ => -27 }.InRange(-1e6, 1e6);
        var kvType = CliCommon.KvType();
        var cmd = new Command("score", "Score a text: NLL, perplexity, bits per token/byte, entropy, information capacity, KL against a base")
        {
            model, file, shard, merge, context, stride, trace, klBase, klBaseFile, saveBase, icBias, kvType, device, json,
        };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            if (p.GetValue(merge) is { Length: > 0 } parts)
            {
                if (p.GetValue(shard) != null) throw new InvalidRequestException("give --shard or --merge, not both");
                Print(Summary(ScorePartial.Merge(parts)), p.GetValue(json));
                return 0;
            }
            string text = Scorer.ReadText(p.GetValue(file) ?? throw new InvalidRequestException("--file is required (or --merge PART...)"));
            ScoreShard? part = p.GetValue(shard) is string sh ? ScoreShard.Parse(sh) : null;
            if (part != null && (p.GetValue(trace) != null || p.GetValue(saveBase) != null))
                throw new InvalidRequestException("--shard writes a partial result only: drop --trace and --save-base");
            var opts = new ModelOptions { Device = p.GetValue(device)! };
            // --kv-type applies to the scored model; a --kl-base runs with an F32 cache (so --kl-base of the same folder
            // measures what the F16 cache costs)
            using var m = CliProgress.Load(p.GetValue(model) ?? throw new InvalidRequestException("--model is required (or --merge PART...)"), opts with { KvCacheType = p.GetValue(kvType) });
            var so = new ScoreOptions { Context = p.GetValue(context), Stride = p.GetValue(stride), IcBias = p.GetValue(icBias), Shard = part };
            var tokens = Scorer.TokensOf(m, text);
            // The base runs in lockstep with the model (--kl-base) or is read a row at a time (--kl-base-file): memory does
            // not grow with the text's length.
            if (p.GetValue(klBase) != null && p.GetValue(klBaseFile) != null) throw new InvalidRequestException("give --kl-base or --kl-base-file, not both");
            using var bm = p.GetValue(klBase) is string baseDir ? CliProgress.Load(baseDir, opts) : null;
            using var baseLp = p.GetValue(klBaseFile) is string bf ? BaseLogProbs.Load(bf) : null;
            if (p.GetValue(saveBase) is string save)
            {
                if (baseLp != null) baseLp.Save(save);
                else CliProgress.Run("writing the base log-probs", fraction =>
                {
                    Scorer.SaveBase(bm ?? m, tokens, save, so with { Progress = Tokens(fraction) });
                    return 0;
                });
            }
            var r = CliProgress.Run($"scoring {tokens.Length} tokens", fraction =>
                Scorer.ScoreTokens(m, tokens, Encoding.UTF8.GetByteCount(text), so with { Progress = Tokens(fraction) }, baseModel: bm, baseLogProbs: baseLp));
            if (p.GetValue(trace) is string tracePath) WriteTrace(tracePath, r, m);
            if (r.TokenCount > 2000) Console.Error.WriteLine();
            if (part is { } sp)
            {
                if (!p.GetValue(json)) throw new InvalidRequestException("--shard prints a partial result as JSON: add --json");
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(ScorePartial.Of(r, sp, ScorePartial.Hash(text), tokens.Length)));
                return 0;
            }
            Print(Summary(r.Totals), p.GetValue(json));
            return 0;
        }));
        return cmd;
    }

    /// <summary>The figures a score prints, all read from its totals (so a merged run prints the same digits).</summary>
    private static Dictionary<string, object> Summary(ScoreTotals r)
    {
        var summary = new Dictionary<string, object>
        {
            ["tokens"] = r.Tokens, ["bytes"] = r.Bytes, ["windows"] = r.Windows,
            ["mean_nll"] = r.MeanNll, ["bits_per_token"] = r.BitsPerToken, ["bits_per_byte"] = r.BitsPerByte,
            ["perplexity"] = r.Perplexity, ["mean_entropy_bits"] = r.MeanEntropyBits, ["top1_accuracy"] = r.Top1Accuracy,
            ["flops_per_token"] = r.FlopsPerToken, ["information_capacity"] = r.InformationCapacity, ["ic_bias"] = r.IcBias,
        };
        if (r.HasBase)
        {
            summary["kl_mean"] = r.MeanKl; summary["kl_p50"] = r.KlPercentile(50); summary["kl_p90"] = r.KlPercentile(90);
            summary["kl_p99"] = r.KlPercentile(99); summary["kl_max"] = r.KlPercentile(100);
            summary["top1_agreement"] = r.Top1Agreement; summary["base_perplexity"] = r.BasePerplexity; summary["perplexity_ratio"] = r.PerplexityRatio;
        }
        return summary;
    }

    private static void Print(Dictionary<string, object> summary, bool json)
    {
        if (json) CliCommon.PrintJson(summary);
        else foreach (var (k, v) in summary) Console.WriteLine($"{k,-22} {(v is double d ? d.ToString("G6", CultureInfo.InvariantCulture) : v)}");
    }

    private static void WriteTrace(string path, ScoreResult r, Model m)
    {
        var rows = r.Tokens.Select(t => new
        {
            position = t.Position, token_id = t.TokenId, piece = m.Tokenizer.Piece(t.TokenId), log_prob = t.LogProb,
            entropy_bits = t.EntropyBits, rank = t.Rank, context_tokens = t.ContextTokens,
            kl = double.IsNaN(t.KlDivergence) ? (double?)null : t.KlDivergence,
        });
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            File.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(rows, CliCommon.JsonOptions));
            return;
        }
        using var w = new StreamWriter(path);
        w.WriteLine("position,token_id,piece,log_prob,entropy_bits,rank,context_tokens,kl");
        foreach (var t in rows)
            w.WriteLine(string.Join(',', t.position, t.token_id, Csv(t.piece), t.log_prob.ToString("R", CultureInfo.InvariantCulture),
                t.entropy_bits.ToString("R", CultureInfo.InvariantCulture), t.rank, t.context_tokens, t.kl?.ToString("R", CultureInfo.InvariantCulture) ?? ""));
    }

    private static string Csv(string s) => "\"" + s.Replace("\"", "\"\"") + "\"";

    private static IProgress<(int Done, int Total)> Tokens(Action<double> fraction) =>
        new CliProgress.Reporter<(int Done, int Total)>(x => fraction(x.Total == 0 ? 1 : (double)x.Done / x.Total));
}

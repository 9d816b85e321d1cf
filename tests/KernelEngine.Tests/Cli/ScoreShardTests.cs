using NUnit.Framework;

namespace KernelEngine.Tests.Cli;

/// <summary>
/// Scoring that splits across machines: the partial results of N shards merged print exactly (string-equal JSON) what
/// one unsharded run prints, with and without a KL base, for shard counts that do and do not divide the windows; and
/// merging refuses incomplete, duplicated or foreign parts.
/// </summary>
public sealed class ScoreShardTests
{
    private static string Dir() => Directory.CreateDirectory(TestScratch.Path("score-shards")).FullName;

    private static string Text()
    {
        string path = Path.Combine(Dir(), "text.txt");
        if (!File.Exists(path))
        {
            var s = new System.Text.StringBuilder();
            string[] lines = ["Once upon a time, there was a little girl named Lily.", "She liked to play in the park with her dog.",
                "One day, the sun was hot and the sky was blue.", "Tom saw a big red ball and ran to get it."];
            for (int i = 0; i < 24; i++) s.Append(lines[i % lines.Length]).Append(' ');
            File.WriteAllText(path, s.ToString());
        }
        return path;
    }

    [TestCase(4, false)]
    [TestCase(3, true)]
    public void MergedShards_PrintWhatOneRunPrints(int shards, bool klBase)
    {
        string[] common = ["score", "--model", SharedData.Stories, "--file", Text(), "--context", "48", "--stride", "20", "--json"];
        // KL of the F16 KV cache against the F32 one (the base): small but non-zero per token
        if (klBase) common = [.. common, "--kv-type", "f16", "--kl-base", SharedData.Stories];
        var whole = CliRunner.Run(common);
        Assert.That(whole.ExitCode, Is.EqualTo(0), whole.Stderr);
        var parts = new List<string>();
        for (int i = 0; i < shards; i++)
        {
            var r = CliRunner.Run([.. common, "--shard", $"{i}/{shards}"]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
            string part = Path.Combine(Dir(), $"part-{klBase}-{i}.json");
            File.WriteAllText(part, r.Stdout);
            parts.Add(part);
        }
        parts.Reverse();   // order does not matter
        var merged = CliRunner.Run(["score", "--merge", .. parts, "--json"]);
        Assert.That(merged.ExitCode, Is.EqualTo(0), merged.Stderr);
        Assert.That(merged.Stdout, Is.EqualTo(whole.Stdout));
        Assert.That(whole.Stdout, Does.Contain("\"windows\": ").And.Contain(klBase ? "kl_p99" : "perplexity"));
        using var doc = System.Text.Json.JsonDocument.Parse(whole.Stdout);
        Assert.That(doc.RootElement.GetProperty("windows").GetInt32(), Is.GreaterThan(shards), "several windows per shard");
        if (klBase) Assert.That(doc.RootElement.GetProperty("kl_mean").GetDouble(), Is.GreaterThan(0));

        // incomplete, duplicated and foreign parts are refused, naming what is wrong
        var missing = CliRunner.Run(["score", "--merge", .. parts.Skip(1), "--json"]);
        Assert.That(missing.ExitCode, Is.Not.EqualTo(0));
        Assert.That(missing.Stderr, Does.Contain("missing shard"));
        var twice = CliRunner.Run(["score", "--merge", .. parts, parts[0], "--json"]);
        Assert.That(twice.Stderr, Does.Contain("given twice"));
        string foreign = Path.Combine(Dir(), $"foreign-{klBase}.json");
        File.WriteAllText(foreign, File.ReadAllText(parts[0]).Replace("\"stride\":20", "\"stride\":21"));
        var mixed = CliRunner.Run(["score", "--merge", .. parts.Skip(1), foreign, "--json"]);
        Assert.That(mixed.Stderr, Does.Contain("\"stride\" differs"));
    }
}

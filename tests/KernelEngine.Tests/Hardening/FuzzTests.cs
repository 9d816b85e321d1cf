using NUnit.Framework;

namespace KernelEngine.Tests.Hardening;

/// <summary>
/// Mutated model folders (<see cref="ModelFolderFuzzer"/>) must each give a typed error (<see cref="KernelEngineException"/>)
/// or a run: load, create a session, encode a prompt and generate a few tokens. Anything else (another exception, a hang)
/// fails with the case and its mutation named; a crash would take the test host down, which fails the run too.
/// CI runs a fixed-seed set; <c>KE_FUZZ_CASES=10000</c> (or <c>tools/fuzz.sh --long</c>) runs a long one.
/// </summary>
[Category("Fuzz")]
public sealed class FuzzTests
{
    private static int Cases(int ci) => int.TryParse(Environment.GetEnvironmentVariable("KE_FUZZ_CASES"), out int n) && n > 0 ? n : ci;

    [TestCase("models/stories260K", 240, 1)]
    [TestCase("models/tiny-random-gpt2", 60, 2)]
    public void MutatedModelFolders_GiveTypedErrorsOrRuns(string model, int ciCases, int seed)
    {
        string source = SharedData.Require(model);
        int cases = Cases(ciCases);
        if (model.Contains("gpt2")) cases = Math.Max(1, cases / 4);   // a 50k-token tokenizer.json per case: fewer
        var fuzzer = new ModelFolderFuzzer(source, seed);
        string root = Path.Combine(Path.GetTempPath(), "ke-fuzz-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        var outcomes = new Dictionary<string, int>();
        var failures = new List<string>();
        try
        {
            for (int i = 0; i < cases; i++)
            {
                var c = fuzzer.Next(root, i);
                var run = Task.Run(() => RunCase(c.Folder));
                if (!run.Wait(TimeSpan.FromSeconds(60))) { failures.Add($"case {i} ({c.Description}): hung for 60 s"); break; }
                string outcome = run.Result;
                if (outcome.StartsWith("UNTYPED", StringComparison.Ordinal)) failures.Add($"case {i} ({c.Description}): {outcome}");
                string kind = outcome.Split(':')[0];
                outcomes[kind] = outcomes.GetValueOrDefault(kind) + 1;
                Directory.Delete(c.Folder, true);
            }
        }
        finally
        {
            Directory.Delete(root, true);
        }
        TestContext.Out.WriteLine($"{model}: {cases} mutated folders: " + string.Join(", ", outcomes.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")));
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));
        Assert.That(outcomes.Keys.Count(k => k != "ran"), Is.GreaterThan(0), "the mutations reach the error paths");
    }

    [Test]
    public void MutatedGgufFiles_GiveTypedErrorsOrRuns()
    {
        SharedData.Require("models/stories260K");
        int cases = Cases(1500) / 5;   // CI: 300; --long (10,000): 2,000 GGUF files
        cases = Math.Max(cases, 60);
        string root = Path.Combine(Path.GetTempPath(), "ke-fuzz-gguf-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        var outcomes = new Dictionary<string, int>();
        var failures = new List<string>();
        try
        {
            string source = Path.Combine(root, "source.gguf");
            KernelEngine.Formats.GgufExporter.Export(SharedData.Stories, source, KernelEngine.Kernels.WeightType.Q8_0);
            long dataStart;
            using (var f = KernelEngine.Formats.GgufFile.Open(source)) dataStart = f.DataStart;
            var fuzzer = new GgufFuzzer(File.ReadAllBytes(source), dataStart, seed: 3);
            for (int i = 0; i < cases; i++)
            {
                var (data, what) = fuzzer.Next();
                string path = Path.Combine(root, $"case{i:D5}.gguf");
                File.WriteAllBytes(path, data);
                var run = Task.Run(() => RunCase(path));
                if (!run.Wait(TimeSpan.FromSeconds(60))) { failures.Add($"case {i} ({what}): hung for 60 s"); break; }
                if (run.Result.StartsWith("UNTYPED", StringComparison.Ordinal)) failures.Add($"case {i} ({what}): {run.Result}");
                string kind = run.Result.Split(':')[0];
                outcomes[kind] = outcomes.GetValueOrDefault(kind) + 1;
                File.Delete(path);
            }
        }
        finally
        {
            Directory.Delete(root, true);
        }
        TestContext.Out.WriteLine($"GGUF (stories260K Q8_0): {cases} mutated files: " + string.Join(", ", outcomes.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key} {kv.Value}")));
        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(20)));
        Assert.That(outcomes.Keys.Count(k => k != "ran"), Is.GreaterThan(0));
    }

    /// <summary>"ran", a typed error's type name, or "UNTYPED ..." with the exception.</summary>
    private static string RunCase(string folder)
    {
        try
        {
            using var model = Model.Load(folder, new ModelOptions { ContextLength = 32 });
            using var session = model.CreateSession();
            // The tokenizer may know more ids than the model (tiny-random-gpt2): generate from the ones the model has.
            var prompt = session.EncodePrompt("Once upon a time").Where(id => id < model.Config.VocabSize).Take(session.ContextLength - 1).ToArray();
            if (prompt.Length == 0) prompt = [0];
            foreach (var _ in session.Generate(prompt, new GenerationSettings { MaxTokens = 4, Sampling = KernelEngine.Decoding.SamplingSettings.Greedy })) { }
            return "ran";
        }
        catch (KernelEngineException e) { return e.GetType().Name; }
        catch (Exception e) { return $"UNTYPED {e.GetType().Name}: {e.Message}\n{e.StackTrace}"; }
    }
}

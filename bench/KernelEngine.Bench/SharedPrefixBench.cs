using System.Diagnostics;
using KernelEngine.Decoding;

namespace KernelEngine.Bench;

/// <summary>
/// Prefix sharing between running sequences, copied vs mapped (copy-on-write pages): one request holds a system prompt,
/// then N − 1 requests that start with it arrive while it runs. Reports when they all have their first token, the KV
/// budget pages in use, and the KV memory the caches touched (the growth of /proc/meminfo's Shmem while they run: the
/// batched caches live in memory files; the rest of the machine should be idle).
/// </summary>
internal static class SharedPrefixBench
{
    public static async Task Run(string dir, int systemTokens, int requests, int reps, TextWriter output)
    {
        using var model = Model.Load(dir, new ModelOptions { ContextLength = Math.Max(2048, systemTokens + 128) });
        var rng = new Random(5);
        int[] system = Enumerable.Range(0, systemTokens).Select(_ => rng.Next(3, model.Config.VocabSize)).ToArray();
        output.WriteLine($"| {requests} requests, {systemTokens}-token system prompt | all first tokens (ms) | KV pages in use (shared) | KV memory touched (MiB) |");
        output.WriteLine("|---|---|---|---|");
        for (int rep = 0; rep < reps; rep++)
            foreach (bool share in new[] { false, true })
            {
                long before = ShmemKiB();
                await using var batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = Math.Min(16, requests), ShareKvPages = share });
                var settings = new GenerationSettings { MaxTokens = 16, Sampling = SamplingSettings.Greedy, StopAtEos = false };
                var first = batch.Submit([.. system, 7], settings).Tokens.GetAsyncEnumerator();
                await first.MoveNextAsync();   // its prompt is in its cache and it is decoding
                var clock = Stopwatch.StartNew();
                var rest = Enumerable.Range(1, requests - 1).Select(i => batch.Submit([.. system, 7 + i, 9], settings).Tokens.GetAsyncEnumerator()).ToList();
                foreach (var r in rest) await r.MoveNextAsync();
                double firstTokensMs = clock.Elapsed.TotalMilliseconds;
                var stats = batch.Stats;
                double touchedMiB = (ShmemKiB() - before) / 1024.0;
                foreach (var r in rest.Append(first)) { while (await r.MoveNextAsync()) { } await r.DisposeAsync(); }
                output.WriteLine($"| {(share ? "mapped" : "copied")} | {firstTokensMs:F0} | {stats.KvPagesInUse} ({stats.KvPagesShared}) | {touchedMiB:F1} |");
            }
    }

    private static long ShmemKiB() => OperatingSystem.IsLinux()
        ? long.Parse(File.ReadLines("/proc/meminfo").First(l => l.StartsWith("Shmem:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1])
        : 0;
}

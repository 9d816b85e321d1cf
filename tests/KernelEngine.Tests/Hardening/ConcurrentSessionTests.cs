using KernelEngine.Decoding;
using NUnit.Framework;

namespace KernelEngine.Tests.Hardening;

/// <summary>
/// Sessions sharing one Model, on every backend: each session has its own KV cache and its own device scratch
/// (the ILGPU backend used to share its scratch and result buffers, so 2 sessions got each other's tokens in 18 of 20 runs).
/// </summary>
public sealed class ConcurrentSessionTests
{
    [TestCase("cpu", 8, 48, 5)]
    [TestCase("ilgpu-cpu", 8, 12, 2)]
    public void EightSessionsOnOneModel_GiveTheSerialIds(string device, int sessions, int tokens, int repeats)
    {
        using var model = Model.Load(SharedData.Stories, new ModelOptions { Device = device, ContextLength = 96 });
        string[] prompts = ["Once upon a time", "Lily", "Tom went to", "The sun", "A big dog", "One day", "Sam and Mia", "The little bird"];
        GenerationSettings Settings(int i) => new()
        {
            MaxTokens = tokens,
            Sampling = i % 2 == 0 ? SamplingSettings.Greedy : new SamplingSettings { Temperature = 0.9f, Seed = (ulong)i },
        };
        int[] Run(int i)
        {
            using var s = model.CreateSession();
            return s.Generate(s.EncodePrompt(prompts[i]), Settings(i)).Select(t => t.Id).ToArray();
        }
        var serial = Enumerable.Range(0, sessions).Select(Run).ToArray();
        Assert.That(serial.Distinct(new SeqEq()).Count(), Is.GreaterThan(sessions / 2), "the sessions do different work");
        for (int rep = 0; rep < repeats; rep++)
        {
            var parallel = Enumerable.Range(0, sessions).Select(i => Task.Run(() => Run(i))).ToArray();
            Task.WaitAll(parallel);
            for (int i = 0; i < sessions; i++) Assert.That(parallel[i].Result, Is.EqualTo(serial[i]), $"session {i}, repeat {rep}");
        }
    }

    private sealed class SeqEq : IEqualityComparer<int[]>
    {
        public bool Equals(int[]? a, int[]? b) => a!.SequenceEqual(b!);
        public int GetHashCode(int[] a) => a.Length == 0 ? 0 : a[0] * 31 + a[^1];
    }
}

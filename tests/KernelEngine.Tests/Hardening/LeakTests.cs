using NUnit.Framework;

namespace KernelEngine.Tests.Hardening;

/// <summary>Load/dispose and session cycles leave resident memory, file descriptors and memory maps flat (Linux /proc).</summary>
[Category("Leak")]
public sealed class LeakTests
{
    private readonly record struct Usage(long RssBytes, int Fds, int Maps)
    {
        public static Usage Now()
        {
            for (int i = 0; i < 3; i++) { GC.Collect(); GC.WaitForPendingFinalizers(); }
            long rss = 0;
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
            return new Usage(rss, Directory.GetFileSystemEntries("/proc/self/fd").Length, File.ReadLines("/proc/self/maps").Count());
        }

        public override string ToString() => $"RSS {RssBytes / 1048576.0:F1} MiB, {Fds} fds, {Maps} maps";
    }

    private static void AssertFlat(Usage before, Usage after, string what)
    {
        TestContext.Out.WriteLine($"{what}: before {before}; after {after}");
        Assert.That(after.RssBytes - before.RssBytes, Is.LessThan(48L << 20), $"{what}: resident memory grew ({before} -> {after})");
        Assert.That(after.Fds - before.Fds, Is.LessThanOrEqualTo(2), $"{what}: file descriptors grew ({before} -> {after})");
        Assert.That(after.Maps - before.Maps, Is.LessThanOrEqualTo(16), $"{what}: memory maps grew ({before} -> {after})");
    }

    [Test]
    public void LoadDisposeCycles_StayFlat()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("reads /proc");
        string dir = SharedData.Stories;
        void Cycle()
        {
            using var model = Model.Load(dir, new ModelOptions { ContextLength = 64 });
            using var s = model.CreateSession();
            s.Generate(s.EncodePrompt("Once"), new GenerationSettings { MaxTokens = 2 }).ToList();
        }
        for (int i = 0; i < 30; i++) Cycle();
        var before = Usage.Now();
        for (int i = 0; i < 300; i++) Cycle();
        AssertFlat(before, Usage.Now(), "300 load/dispose cycles");
    }

    [Test]
    public void SessionCycles_StayFlat()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("reads /proc");
        using var model = Model.Load(SharedData.Stories, new ModelOptions { ContextLength = 64 });
        var settings = new GenerationSettings { MaxTokens = 1, Sampling = KernelEngine.Decoding.SamplingSettings.Greedy };
        void Cycle()
        {
            using var s = model.CreateSession();
            foreach (var _ in s.Generate([1], settings)) { }
        }
        for (int i = 0; i < 500; i++) Cycle();
        var before = Usage.Now();
        for (int i = 0; i < 20_000; i++) Cycle();
        AssertFlat(before, Usage.Now(), "20,000 session cycles");
    }
}

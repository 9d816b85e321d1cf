using NUnit.Framework;

namespace KernelEngine.Tests;

/// <summary>Locates ../shared (beside the repository root) and skips the test with a clear message when it is absent.</summary>
public static class SharedData
{
    public static string RepoRoot { get; } = FindRepoRoot();

    private static string FindRepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "KernelEngine.sln"))) return d.FullName;
        return Directory.GetCurrentDirectory();
    }

    public static string Root => Environment.GetEnvironmentVariable("KE_SHARED") ?? Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared"));

    /// <summary>Path under ../shared; Assert.Ignore when it is missing.</summary>
    public static string Require(string relative)
    {
        string p = Path.Combine(Root, relative);
        if (!File.Exists(p) && !Directory.Exists(p))
            Assert.Ignore($"shared test data not found: {p} (the ../shared folder beside the repository is needed for this test)");
        return p;
    }

    public static string Stories => Require("models/stories260K");
    public static string Gpt2Tiny => Require("models/tiny-random-gpt2");
}

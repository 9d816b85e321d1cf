using NUnit.Framework;

namespace KernelEngine.Tests;

/// <summary>
/// One temp folder per test run for files that tests share or cache within the run (quantized drafts, presets, llama.cpp
/// files); the whole folder is removed when the run ends. Tests that make their own folders delete them themselves.
/// </summary>
[SetUpFixture]
public sealed class TestScratch
{
    public static string Root { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"ke-tests-{Environment.ProcessId}");

    /// <summary>A path under the run's folder (created on first use).</summary>
    public static string Path(string name)
    {
        Directory.CreateDirectory(Root);
        return System.IO.Path.Combine(Root, name);
    }

    [OneTimeTearDown]
    public void RemoveRoot()
    {
        try { if (Directory.Exists(Root)) Directory.Delete(Root, true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

using System.Text.Json.Nodes;

namespace KernelEngine.Tests.Hardening;

/// <summary>A throw-away copy of a model folder (deleted on Dispose) with helpers to edit its config.</summary>
public sealed class TempModel : IDisposable
{
    public string Dir { get; }

    public TempModel(string source)
    {
        Dir = Path.Combine(Path.GetTempPath(), "ke-hard-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Dir);
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(Dir, Path.GetFileName(f)));
    }

    public static TempModel Stories() => new(SharedData.Stories);

    public string ConfigPath => Path.Combine(Dir, "config.json");

    /// <summary>Sets (or with null removes) a top-level config.json field given as JSON text.</summary>
    public TempModel SetConfig(string field, string? json)
    {
        var root = JsonNode.Parse(File.ReadAllText(ConfigPath))!.AsObject();
        if (json == null) root.Remove(field);
        else root[field] = JsonNode.Parse(json);
        File.WriteAllText(ConfigPath, root.ToJsonString());
        return this;
    }

    public void Dispose()
    {
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}

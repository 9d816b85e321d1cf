using System.Text.Json;
using KernelEngine.Formats;

namespace KernelEngine.Text;

/// <summary>
/// Where a model's chat template lives: <c>tokenizer_config.json</c>'s <c>chat_template</c> (a string, or a list of named
/// templates of which "default" is taken) in a folder, <c>tokenizer.chat_template</c> in a GGUF file.
/// </summary>
public static class ChatTemplates
{
    /// <summary>The default chat template of a model folder (tokenizer_config.json or chat_template.jinja), or null.</summary>
    public static string? FromFolder(string folder) => NamedFromFolder(folder).GetValueOrDefault("default");

    /// <summary>Every template of tokenizer_config.json by name: a plain string is "default"; a list gives its names
    /// ("default", "tool_use", ...).</summary>
    public static IReadOnlyDictionary<string, string> NamedFromFolder(string folder)
    {
        var named = new Dictionary<string, string>(StringComparer.Ordinal);
        string path = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(path)) return named;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("chat_template", out var t)) return named;
            if (t.ValueKind == JsonValueKind.String) named["default"] = t.GetString()!;
            if (t.ValueKind == JsonValueKind.Array)
                foreach (var e in t.EnumerateArray())
                    if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                        && e.TryGetProperty("template", out var tt) && tt.ValueKind == JsonValueKind.String)
                        named.TryAdd(n.GetString()!, tt.GetString()!);
            return named;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new TokenizerException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    internal static string? FromGguf(GgufFile f) => f.GetString("tokenizer.chat_template");

    /// <summary>tokenizer_config.json's <c>bos_token</c> / <c>eos_token</c> (a string, or an object with <c>content</c>), which
    /// templates print as text; null where absent.</summary>
    public static (string? Bos, string? Eos) SpecialTokensFromFolder(string folder)
    {
        string path = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(path)) return (null, null);
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return (null, null);
            return (Token(doc.RootElement, "bos_token"), Token(doc.RootElement, "eos_token"));
        }
        catch (JsonException e)
        {
            throw new TokenizerException($"{path}: not valid JSON ({e.Message})", e);
        }

        static string? Token(JsonElement root, string key) =>
            !root.TryGetProperty(key, out var t) ? null
            : t.ValueKind == JsonValueKind.String ? t.GetString()
            : t.ValueKind == JsonValueKind.Object && t.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString()
            : null;
    }
}

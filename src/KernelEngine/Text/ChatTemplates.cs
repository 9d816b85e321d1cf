using System.Text.Json;
using KernelEngine.Formats;

namespace KernelEngine.Text;

/// <summary>
/// Where a model's chat template lives: <c>tokenizer_config.json</c>'s <c>chat_template</c> (a string, or a list of named
/// templates of which "default" is taken) in a folder, <c>tokenizer.chat_template</c> in a GGUF file.
/// </summary>
public static class ChatTemplates
{
    public static string? FromFolder(string folder)
    {
        string path = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("chat_template", out var t)) return null;
            if (t.ValueKind == JsonValueKind.String) return t.GetString();
            if (t.ValueKind == JsonValueKind.Array)
                foreach (var e in t.EnumerateArray())
                    if (e.ValueKind == JsonValueKind.Object && e.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && n.GetString() == "default"
                        && e.TryGetProperty("template", out var tt) && tt.ValueKind == JsonValueKind.String)
                        return tt.GetString();
            return null;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new TokenizerException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    public static string? FromGguf(GgufFile f) => f.GetString("tokenizer.chat_template");
}

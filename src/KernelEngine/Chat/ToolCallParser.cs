using System.Text.Json;

namespace KernelEngine.Chat;

/// <summary>
/// Finds tool calls in a model's answer, in the formats of the common chat templates: Hermes / Qwen
/// (<c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c>, several allowed), Mistral
/// (<c>[TOOL_CALLS] [{"name": ..., "arguments": {...}, "id": ...}]</c>) and Llama 3.1 (the whole answer one JSON
/// object <c>{"name": ..., "parameters": {...}}</c>, optionally after <c>&lt;|python_tag|&gt;</c>, several joined by ';').
/// Text that is not a call stays the answer's content.
/// </summary>
public static class ToolCallParser
{
    /// <summary>The answer's text outside tool calls, and the calls (name, arguments as JSON, id when the model gave one).</summary>
    public sealed record Parsed(string Content, IReadOnlyList<(string Name, string ArgumentsJson, string? Id)> Calls);

    /// <summary>Finds the tool calls in an answer.</summary>
    public static Parsed Parse(string text)
    {
        var calls = new List<(string, string, string?)>();
        // Hermes / Qwen
        if (text.Contains("<tool_call>", StringComparison.Ordinal))
        {
            var content = new System.Text.StringBuilder();
            int pos = 0;
            while (true)
            {
                int open = text.IndexOf("<tool_call>", pos, StringComparison.Ordinal);
                if (open < 0) { content.Append(text, pos, text.Length - pos); break; }
                content.Append(text, pos, open - pos);
                int bodyStart = open + "<tool_call>".Length;
                int close = text.IndexOf("</tool_call>", bodyStart, StringComparison.Ordinal);
                string body = close < 0 ? text[bodyStart..] : text[bodyStart..close];
                if (TryCall(body.Trim(), out var call)) calls.Add(call);
                else content.Append(text, open, (close < 0 ? text.Length : close + "</tool_call>".Length) - open);
                if (close < 0) break;
                pos = close + "</tool_call>".Length;
            }
            if (calls.Count > 0) return new Parsed(content.ToString().Trim(), calls);
        }
        // Mistral
        int marker = text.IndexOf("[TOOL_CALLS]", StringComparison.Ordinal);
        if (marker >= 0)
        {
            int start = marker + "[TOOL_CALLS]".Length;
            while (start < text.Length && char.IsWhiteSpace(text[start])) start++;
            if (TryJsonValue(text, start, out var value, out int end))
            {
                var items = value.ValueKind == JsonValueKind.Array ? value.EnumerateArray().ToList() : [value];
                foreach (var item in items)
                    if (TryCall(item, out var call)) calls.Add(call);
                if (calls.Count > 0) return new Parsed((text[..marker] + text[end..]).Trim(), calls);
            }
        }
        // Llama 3.1: the answer is JSON
        string t = text.Trim();
        if (t.StartsWith("<|python_tag|>", StringComparison.Ordinal)) t = t["<|python_tag|>".Length..].TrimStart();
        if (t.StartsWith('{'))
        {
            int pos = 0;
            while (pos < t.Length && TryJsonValue(t, pos, out var value, out int end) && TryCall(value, out var call))
            {
                calls.Add(call);
                pos = end;
                while (pos < t.Length && (char.IsWhiteSpace(t[pos]) || t[pos] == ';')) pos++;
            }
            if (calls.Count > 0 && pos >= t.Length) return new Parsed("", calls);
            calls.Clear();
        }
        return new Parsed(text, calls);
    }

    private static bool TryCall(string json, out (string, string, string?) call)
    {
        call = default;
        int end = 0;
        return TryJsonValue(json, 0, out var v, out end) && end == json.Length && TryCall(v, out call);
    }

    private static bool TryCall(JsonElement v, out (string, string, string?) call)
    {
        call = default;
        if (v.ValueKind != JsonValueKind.Object) return false;
        if (v.TryGetProperty("function", out var f) && f.ValueKind == JsonValueKind.Object) v = f;
        if (!v.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String) return false;
        string args = "{}";
        foreach (var key in new[] { "arguments", "parameters" })
            if (v.TryGetProperty(key, out var a))
            {
                args = a.ValueKind == JsonValueKind.String ? a.GetString()! : a.GetRawText();
                break;
            }
        string? id = v.TryGetProperty("id", out var idv) && idv.ValueKind == JsonValueKind.String ? idv.GetString() : null;
        call = (name.GetString()!, args, id);
        return true;
    }

    /// <summary>Reads one JSON value starting at <paramref name="start"/> (brackets matched outside strings).</summary>
    private static bool TryJsonValue(string s, int start, out JsonElement value, out int end)
    {
        value = default; end = start;
        if (start >= s.Length || s[start] is not ('{' or '[')) return false;
        int depth = 0;
        bool inString = false;
        for (int i = start; i < s.Length; i++)
        {
            char c = s[i];
            if (inString)
            {
                if (c == '\\') i++;
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') inString = true;
            else if (c is '{' or '[') depth++;
            else if (c is '}' or ']' && --depth == 0)
            {
                try
                {
                    using var doc = JsonDocument.Parse(s.AsMemory(start, i + 1 - start));
                    value = doc.RootElement.Clone();
                    end = i + 1;
                    return true;
                }
                catch (JsonException) { return false; }
            }
        }
        return false;
    }
}

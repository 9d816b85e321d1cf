using System.Collections;
using System.Text.Json;
using KernelEngine.Text.Jinja;

namespace KernelEngine.Text;

/// <summary>
/// A Hugging Face chat template (Jinja), rendered exactly as transformers' <c>apply_chat_template</c> renders it: jinja2
/// with trim_blocks, lstrip_blocks and loop controls, an immutable sandbox, <c>tojson</c> as json.dumps with
/// ensure_ascii off, <c>raise_exception(msg)</c> and <c>strftime_now(fmt)</c>. Parsed once; rendering is thread-safe.
/// A syntax error, a runtime error or the template's own raise_exception is a <see cref="TemplateException"/>.
/// </summary>
public sealed class ChatTemplate
{
    private readonly List<Node> _nodes;

    /// <param name="source">The template text (tokenizer_config.json's chat_template, GGUF tokenizer.chat_template).</param>
    /// <param name="now">The clock of strftime_now (default: the local time).</param>
    public ChatTemplate(string source, Func<DateTime>? now = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        Source = source;
        Now = now ?? (() => DateTime.Now);
        _nodes = Parser.Parse(source);
    }

    /// <summary>The template text.</summary>
    public string Source { get; }
    /// <summary>The clock of strftime_now.</summary>
    public Func<DateTime> Now { get; }

    /// <summary>Renders with the variables of a JSON object (messages, add_generation_prompt, tools, bos_token, eos_token, ...).</summary>
    public string Render(JsonElement variables)
    {
        if (variables.ValueKind != JsonValueKind.Object) throw new InvalidRequestException("template variables must be a JSON object");
        var vars = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var p in variables.EnumerateObject()) vars[p.Name] = Py.FromJson(p.Value);
        return new Interpreter(new Builtins(Now)).Render(_nodes, vars);
    }

    /// <summary>Renders with .NET values: string, bool, integers, floating point, null, JsonElement, IDictionary (string keys)
    /// and IEnumerable become their Python counterparts.</summary>
    public string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var vars = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (k, v) in variables) vars[k] = ToValue(v, 0);
        return new Interpreter(new Builtins(Now)).Render(_nodes, vars);
    }

    private static object? ToValue(object? v, int depth)
    {
        if (depth > 64) throw new InvalidRequestException("template variables are nested more than 64 levels deep");
        switch (v)
        {
            case null: return null;
            case string or bool or long or double: return v;
            case int or short or byte or sbyte or ushort or uint: return Convert.ToInt64(v);
            case ulong u: return u <= long.MaxValue ? (long)u : (double)u;
            case float or decimal: return Convert.ToDouble(v);
            case JsonElement e: return Py.FromJson(e);
            case IDictionary d:
            {
                var dict = new PyDict();
                foreach (DictionaryEntry kv in d) dict[kv.Key as string ?? Convert.ToString(kv.Key, System.Globalization.CultureInfo.InvariantCulture) ?? ""] = ToValue(kv.Value, depth + 1);
                return dict;
            }
            case IEnumerable<KeyValuePair<string, object?>> pairs:
            {
                var dict = new PyDict();
                foreach (var (k, x) in pairs) dict[k] = ToValue(x, depth + 1);
                return dict;
            }
            case IEnumerable items: return items.Cast<object?>().Select(x => ToValue(x, depth + 1)).ToList();
            default: throw new InvalidRequestException($"a template variable of type {v.GetType().Name} has no Python counterpart");
        }
    }
}

using System.Text.Json;
using System.Text.RegularExpressions;

namespace KernelEngine.Tests.Constraints;

/// <summary>A JSON Schema validator for the keywords the constrained-decoding tests use, written from the JSON Schema
/// specification independently of the grammar compiler: the reference the generated documents are checked against.</summary>
internal static class SchemaCheck
{
    public static string? Error(JsonElement doc, JsonElement schema, JsonElement root, string at = "$")
    {
        if (schema.ValueKind == JsonValueKind.True) return null;
        if (schema.TryGetProperty("$ref", out var r))
        {
            var parts = r.GetString()!.Split('/');
            return Error(doc, root.GetProperty(parts[1]).GetProperty(parts[2]), root, at);
        }
        if (schema.TryGetProperty("const", out var c) && !Equal(doc, c)) return $"{at}: not the const";
        if (schema.TryGetProperty("enum", out var en) && !en.EnumerateArray().Any(v => Equal(doc, v))) return $"{at}: not in the enum";
        if (schema.TryGetProperty("anyOf", out var any) && !any.EnumerateArray().Any(s => Error(doc, s, root, at) == null)) return $"{at}: matches no anyOf branch";
        if (schema.TryGetProperty("oneOf", out var one) && one.EnumerateArray().Count(s => Error(doc, s, root, at) == null) != 1) return $"{at}: matches not exactly one oneOf branch";
        if (schema.TryGetProperty("type", out var type))
        {
            var types = type.ValueKind == JsonValueKind.Array ? type.EnumerateArray().Select(t => t.GetString()!).ToArray() : [type.GetString()!];
            if (!types.Any(t => Is(doc, t))) return $"{at}: {doc.ValueKind} is not {string.Join("/", types)}";
        }
        switch (doc.ValueKind)
        {
            case JsonValueKind.String:
                int len = doc.GetString()!.EnumerateRunes().Count();
                if (schema.TryGetProperty("minLength", out var mn) && len < mn.GetInt32()) return $"{at}: shorter than minLength";
                if (schema.TryGetProperty("maxLength", out var mx) && len > mx.GetInt32()) return $"{at}: longer than maxLength";
                if (schema.TryGetProperty("format", out var f))
                {
                    string pattern = f.GetString() switch
                    {
                        "date" => @"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$",
                        "uuid" => @"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
                        _ => ".*",
                    };
                    if (!Regex.IsMatch(doc.GetString()!, pattern)) return $"{at}: not a {f.GetString()}";
                }
                break;
            case JsonValueKind.Array:
                int n = doc.GetArrayLength();
                if (schema.TryGetProperty("minItems", out var mi) && n < mi.GetInt32()) return $"{at}: fewer than minItems";
                if (schema.TryGetProperty("maxItems", out var ma) && n > ma.GetInt32()) return $"{at}: more than maxItems";
                if (schema.TryGetProperty("items", out var items))
                    for (int i = 0; i < n; i++)
                        if (Error(doc[i], items, root, $"{at}[{i}]") is string e) return e;
                break;
            case JsonValueKind.Object:
                var props = schema.TryGetProperty("properties", out var p) ? p : default;
                if (schema.TryGetProperty("required", out var req))
                    foreach (var name in req.EnumerateArray())
                        if (!doc.TryGetProperty(name.GetString()!, out _)) return $"{at}: missing required '{name.GetString()}'";
                var seen = new HashSet<string>();
                foreach (var member in doc.EnumerateObject())
                {
                    if (!seen.Add(member.Name)) return $"{at}: '{member.Name}' twice";
                    if (props.ValueKind == JsonValueKind.Object && props.TryGetProperty(member.Name, out var ps))
                    {
                        if (Error(member.Value, ps, root, $"{at}.{member.Name}") is string e) return e;
                    }
                    else if (schema.TryGetProperty("additionalProperties", out var ap))
                    {
                        if (ap.ValueKind == JsonValueKind.False) return $"{at}: additional property '{member.Name}'";
                        if (ap.ValueKind == JsonValueKind.Object && Error(member.Value, ap, root, $"{at}.{member.Name}") is string e) return e;
                    }
                }
                break;
        }
        return null;
    }

    private static bool Is(JsonElement d, string type) => type switch
    {
        "null" => d.ValueKind == JsonValueKind.Null,
        "boolean" => d.ValueKind is JsonValueKind.True or JsonValueKind.False,
        "string" => d.ValueKind == JsonValueKind.String,
        "array" => d.ValueKind == JsonValueKind.Array,
        "object" => d.ValueKind == JsonValueKind.Object,
        "number" => d.ValueKind == JsonValueKind.Number,
        "integer" => d.ValueKind == JsonValueKind.Number && d.TryGetDecimal(out var v) && v == decimal.Truncate(v),
        _ => false,
    };

    private static bool Equal(JsonElement a, JsonElement b) => JsonElement.DeepEquals(a, b);
}

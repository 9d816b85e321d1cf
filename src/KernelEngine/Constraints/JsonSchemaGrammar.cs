using System.Text;
using System.Text.Json;

namespace KernelEngine.Constraints;

/// <summary>
/// JSON Schema to GBNF (as llama.cpp's json-schema-to-grammar does): <c>type</c> (one or an array, <c>null</c>
/// included), <c>properties</c> with <c>required</c> first in order and the optional ones after in order,
/// <c>additionalProperties</c> (a schema or true: an object with no listed properties becomes a map of those values;
/// beside listed properties no extra ones are written), <c>enum</c>, <c>const</c>, <c>items</c> with
/// <c>minItems</c>/<c>maxItems</c>, strings with <c>minLength</c>/<c>maxLength</c> and the formats <c>date</c>,
/// <c>time</c>, <c>date-time</c>, <c>uuid</c>, integers and numbers (at most 15 digits before the point and 15 after),
/// booleans, <c>anyOf</c>/<c>oneOf</c>, <c>$ref</c> to <c>#/$defs/…</c> or <c>#/definitions/…</c> (recursion allowed).
/// Whitespace: between tokens at most one space, or a newline and up to 20 spaces or tabs, so a document ends within a
/// bounded number of tokens. Anything else (pattern, minimum, allOf, …) is an <see cref="InvalidRequestException"/>
/// naming the keyword and where it is.
/// </summary>
public static class JsonSchemaGrammar
{
    /// <summary>The GBNF for documents valid under <paramref name="schemaJson"/>.</summary>
    public static string ToGbnf(string schemaJson)
    {
        ArgumentNullException.ThrowIfNull(schemaJson);
        JsonDocument doc;
        try { doc = JsonDocument.Parse(schemaJson); }
        catch (JsonException e) { throw new InvalidRequestException($"JSON schema: not JSON ({e.Message})"); }
        using (doc) return new Compiler(doc.RootElement).Run();
    }

    /// <summary>The grammar for documents valid under <paramref name="schemaJson"/>.</summary>
    public static Grammar Compile(string schemaJson) => Grammar.Parse(ToGbnf(schemaJson));

    private const string Primitives = """
        space ::= | " " | "\n" [ \t]{0,20}
        boolean ::= ("true" | "false") space
        null ::= "null" space
        integral-part ::= [0] | [1-9] [0-9]{0,14}
        integer ::= "-"? integral-part space
        number ::= "-"? integral-part ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,3})? space
        char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
        string ::= "\"" char* "\"" space
        value ::= object | array | string | number | boolean | null
        object ::= "{" space ( string ":" space value ("," space string ":" space value)* )? "}" space
        array ::= "[" space ( value ("," space value)* )? "]" space
        date ::= [0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( [0] [1-9] | [1-2] [0-9] | "3" [0-1] )
        time ::= ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )
        uuid ::= [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12}

        """;

    private sealed class Compiler(JsonElement root)
    {
        private readonly StringBuilder _rules = new();
        private readonly Dictionary<string, string> _refs = new(StringComparer.Ordinal);
        private int _n;

        public string Run()
        {
            string top = Visit(root, "#");
            return $"root ::= {top}\n{Primitives}{_rules}";
        }

        private string Rule(string body)
        {
            string name = $"r{_n++}";
            _rules.Append(name).Append(" ::= ").Append(body).Append('\n');
            return name;
        }

        private static string Literal(string jsonText)
        {
            var sb = new StringBuilder("\"");
            foreach (char c in jsonText)
                sb.Append(c switch { '"' => "\\\"", '\\' => "\\\\", '\n' => "\\n", '\r' => "\\r", '\t' => "\\t", _ => c.ToString() });
            return sb.Append('"').ToString();
        }

        private static InvalidRequestException Unsupported(string keyword, string at) =>
            new($"JSON schema: '{keyword}' at {at} is not supported (supported: type, properties, required, additionalProperties, enum, const, items, minItems, maxItems, minLength, maxLength, format date/time/date-time/uuid, anyOf, oneOf, $ref, $defs)");

        private static readonly HashSet<string> Ignored = new(StringComparer.Ordinal)
        {
            "$schema", "$id", "title", "description", "default", "examples", "$comment", "$defs", "definitions", "readOnly", "writeOnly", "deprecated",
        };

        private string Visit(JsonElement s, string at)
        {
            if (s.ValueKind == JsonValueKind.True) return "value";
            if (s.ValueKind == JsonValueKind.False) throw new InvalidRequestException($"JSON schema: 'false' at {at} admits no document");
            if (s.ValueKind != JsonValueKind.Object) throw new InvalidRequestException($"JSON schema: {at} must be an object or a boolean");
            foreach (var p in s.EnumerateObject())
                if (!Ignored.Contains(p.Name) && p.Name is not ("type" or "properties" or "required" or "additionalProperties" or "enum" or "const" or "items"
                        or "minItems" or "maxItems" or "minLength" or "maxLength" or "format" or "anyOf" or "oneOf" or "$ref"))
                    throw Unsupported(p.Name, at);
            if (s.TryGetProperty("$ref", out var r)) return Ref(r.GetString() ?? "", at);
            if (s.TryGetProperty("const", out var c)) return $"{Literal(c.GetRawText())} space";
            if (s.TryGetProperty("enum", out var en))
            {
                if (en.ValueKind != JsonValueKind.Array || en.GetArrayLength() == 0) throw new InvalidRequestException($"JSON schema: 'enum' at {at} must be a non-empty array");
                return Rule(string.Join(" | ", en.EnumerateArray().Select(v => $"{Literal(JsonSerializer.Serialize(v))} space")));
            }
            foreach (var key in new[] { "anyOf", "oneOf" })
                if (s.TryGetProperty(key, out var alts))
                {
                    if (alts.ValueKind != JsonValueKind.Array || alts.GetArrayLength() == 0) throw new InvalidRequestException($"JSON schema: '{key}' at {at} must be a non-empty array");
                    return Rule(string.Join(" | ", alts.EnumerateArray().Select((a, i) => Visit(a, $"{at}/{key}/{i}"))));
                }
            if (!s.TryGetProperty("type", out var type))
                return s.TryGetProperty("properties", out _) ? Typed(s, "object", at) : s.TryGetProperty("items", out _) ? Typed(s, "array", at) : "value";
            if (type.ValueKind == JsonValueKind.Array)
                return Rule(string.Join(" | ", type.EnumerateArray().Select(t => Typed(s, t.GetString() ?? "", at))));
            return Typed(s, type.GetString() ?? "", at);
        }

        private string Ref(string reference, string at)
        {
            if (_refs.TryGetValue(reference, out var name)) return name;
            string[] parts = reference.Split('/');
            if (parts.Length != 3 || parts[0] != "#" || parts[1] is not ("$defs" or "definitions")
                || !root.TryGetProperty(parts[1], out var defs) || !defs.TryGetProperty(parts[2], out var target))
                throw new InvalidRequestException($"JSON schema: $ref '{reference}' at {at} does not name a definition under #/$defs or #/definitions");
            name = $"ref{_n++}";
            _refs[reference] = name;   // before visiting: recursive schemas refer to the rule by name
            string body = Visit(target, reference);
            _rules.Append(name).Append(" ::= ").Append(body).Append('\n');
            return name;
        }

        private static int? Int(JsonElement s, string key, string at)
        {
            if (!s.TryGetProperty(key, out var v)) return null;
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n) || n < 0) throw new InvalidRequestException($"JSON schema: '{key}' at {at} must be a whole number >= 0");
            if (n > 1000) throw new InvalidRequestException($"JSON schema: '{key}' {n} at {at} is above 1000");
            return n;
        }

        private static string Repeat(string item, int min, int? max) =>
            max is int m ? (m == min ? $"{item}{{{min}}}" : $"{item}{{{min},{m}}}") : min == 0 ? $"{item}*" : $"{item}{{{min},}}";

        private string Typed(JsonElement s, string type, string at)
        {
            switch (type)
            {
                case "null": return "null";
                case "boolean": return "boolean";
                case "integer": return "integer";
                case "number": return "number";
                case "string":
                {
                    if (s.TryGetProperty("format", out var f))
                        return (f.GetString()) switch
                        {
                            "date" => "\"\\\"\" date \"\\\"\" space",
                            "time" => "\"\\\"\" time \"\\\"\" space",
                            "date-time" => "\"\\\"\" date \"T\" time \"\\\"\" space",
                            "uuid" => "\"\\\"\" uuid \"\\\"\" space",
                            var other => throw new InvalidRequestException($"JSON schema: format '{other}' at {at} is not supported (date, time, date-time, uuid)"),
                        };
                    int min = Int(s, "minLength", at) ?? 0;
                    int? max = Int(s, "maxLength", at);
                    if (max < min) throw new InvalidRequestException($"JSON schema: maxLength < minLength at {at}");
                    return min == 0 && max == null ? "string" : $"\"\\\"\" {Repeat("char", min, max)} \"\\\"\" space";
                }
                case "array":
                {
                    string item = s.TryGetProperty("items", out var items) ? Visit(items, $"{at}/items") : "value";
                    int min = Int(s, "minItems", at) ?? 0;
                    int? max = Int(s, "maxItems", at);
                    if (max < min) throw new InvalidRequestException($"JSON schema: maxItems < minItems at {at}");
                    if (max == 0) return "\"[\" space \"]\" space";
                    string rest = Repeat($"(\",\" space {item})", Math.Max(0, min - 1), max - 1);
                    string body = $"{item} {rest}";
                    return min == 0 ? $"\"[\" space ( {body} )? \"]\" space" : $"\"[\" space {body} \"]\" space";
                }
                case "object": return Object(s, at);
                default: throw new InvalidRequestException($"JSON schema: type '{type}' at {at} is not a JSON Schema type");
            }
        }

        private string Object(JsonElement s, string at)
        {
            var props = new List<(string Name, string Rule)>();
            if (s.TryGetProperty("properties", out var properties))
                foreach (var p in properties.EnumerateObject())
                    props.Add((p.Name, Rule($"{Literal(JsonSerializer.Serialize(p.Name))} space \":\" space {Visit(p.Value, $"{at}/properties/{p.Name}")}")));
            var required = new HashSet<string>(StringComparer.Ordinal);
            if (s.TryGetProperty("required", out var req))
                foreach (var r in req.EnumerateArray())
                {
                    string name = r.GetString() ?? "";
                    if (!props.Any(p => p.Name == name)) throw new InvalidRequestException($"JSON schema: required property '{name}' at {at} is not among its properties");
                    required.Add(name);
                }
            if (props.Count == 0)
            {
                // no listed properties: a map whose values follow additionalProperties (any value when absent or true)
                string valueRule = s.TryGetProperty("additionalProperties", out var ap) && ap.ValueKind == JsonValueKind.Object ? Visit(ap, $"{at}/additionalProperties") : "value";
                if (s.TryGetProperty("additionalProperties", out var no) && no.ValueKind == JsonValueKind.False) return "\"{\" space \"}\" space";
                string kv = $"string \":\" space {valueRule}";
                return $"\"{{\" space ( {kv} (\",\" space {kv})* )? \"}}\" space";
            }
            var req_ = props.Where(p => required.Contains(p.Name)).Select(p => p.Rule).ToList();
            var opt = props.Where(p => !required.Contains(p.Name)).Select(p => p.Rule).ToList();
            // rest_i: any in-order subset of the optional properties from i on, each after a comma
            var rest = new string[opt.Count + 1];
            rest[opt.Count] = "";
            for (int i = opt.Count - 1; i >= 0; i--)
                rest[i] = Rule($"\",\" space {opt[i]} {rest[i + 1]} | {(rest[i + 1].Length == 0 ? "" : rest[i + 1])}".TrimEnd());
            string body;
            if (req_.Count > 0) body = string.Join(" \",\" space ", req_) + (opt.Count > 0 ? " " + rest[0] : "");
            else
            {
                // no required property: the first present one has no comma before it
                var first = new string[opt.Count + 1];
                first[opt.Count] = "";
                for (int i = opt.Count - 1; i >= 0; i--)
                    first[i] = Rule($"{opt[i]} {rest[i + 1]} | {first[i + 1]}".TrimEnd());
                body = first[0];
            }
            return $"\"{{\" space {body} \"}}\" space";
        }
    }
}

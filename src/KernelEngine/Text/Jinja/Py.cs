using System.Globalization;
using System.Text;

namespace KernelEngine.Text.Jinja;

/// <summary>Python semantics for template values: truthiness, str/repr, equality and ordering, arithmetic, json.dumps.</summary>
internal static class Py
{
    /// <summary>A Python TypeError/ValueError raised while evaluating; the interpreter adds the template position.</summary>
    public sealed class Error(string message) : Exception(message);

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        Undefined => "Undefined",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        object?[] => "tuple",
        PyDict => "dict",
        Namespace => "Namespace",
        LoopInfo => "LoopContext",
        Callable => "function",
        _ => v.GetType().Name,
    };

    public static bool Truthy(object? v) => v switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        List<object?> l => l.Count > 0,
        object?[] t => t.Length > 0,
        PyDict d => d.Count > 0,
        _ => true,
    };

    public static bool IsNumber(object? v) => v is long or double or bool;
    public static double ToDouble(object? v) => v switch { long l => l, double d => d, bool b => b ? 1 : 0, _ => throw new Error($"'{TypeName(v)}' is not a number") };

    /// <summary>Python's str().</summary>
    public static string Str(object? v) => v switch
    {
        null => "None",
        Undefined => "",
        string s => s,
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        _ => Repr(v),
    };

    /// <summary>Python's repr().</summary>
    public static string Repr(object? v)
    {
        switch (v)
        {
            case string s: return StringRepr(s);
            case List<object?> l: return "[" + string.Join(", ", l.Select(Repr)) + "]";
            case object?[] t: return t.Length == 1 ? "(" + Repr(t[0]) + ",)" : "(" + string.Join(", ", t.Select(Repr)) + ")";
            case PyDict d: return "{" + string.Join(", ", d.Select(kv => StringRepr(kv.Key) + ": " + Repr(kv.Value))) + "}";
            case Namespace n: return "<Namespace " + string.Join(", ", n.Attributes.Select(kv => kv.Key + "=" + Repr(kv.Value))) + ">";
            case Undefined: return "Undefined";
            case Callable: return "<function>";
            case LoopInfo: return "<LoopContext>";
            default: return Str(v);
        }
    }

    private static string StringRepr(string s)
    {
        char q = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder().Append(q);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == q) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append(q).ToString();
    }

    /// <summary>Python's float repr: the shortest round-trip digits, exponent form below 1e-4 and from 1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0) return 1 / d < 0 ? "-0.0" : "0.0";
        // shortest digits that round-trip
        string shortest = d.ToString("R", CultureInfo.InvariantCulture);
        // split shortest into digits and exponent
        bool neg = shortest.StartsWith('-');
        string body = neg ? shortest[1..] : shortest;
        int exp = 0;
        int e = body.IndexOfAny(['E', 'e']);
        if (e >= 0) { exp = int.Parse(body[(e + 1)..], CultureInfo.InvariantCulture); body = body[..e]; }
        int dot = body.IndexOf('.');
        string intPart = dot < 0 ? body : body[..dot], frac = dot < 0 ? "" : body[(dot + 1)..];
        string digits = (intPart + frac).TrimStart('0');
        int lead = (intPart + frac).Length - digits.Length;   // zeros stripped in front
        int pointPos = intPart.Length + exp - lead;            // decimal exponent: value = 0.digits × 10^pointPos
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        int sciExp = pointPos - 1;
        string result;
        if (sciExp < -4 || sciExp >= 16)
        {
            string mant = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            result = mant + "e" + (sciExp < 0 ? "-" : "+") + Math.Abs(sciExp).ToString("00", CultureInfo.InvariantCulture);
        }
        else if (pointPos <= 0) result = "0." + new string('0', -pointPos) + digits;
        else if (pointPos >= digits.Length) result = digits + new string('0', pointPos - digits.Length) + ".0";
        else result = digits[..pointPos] + "." + digits[pointPos..];
        return neg ? "-" + result : result;
    }

    public static new bool Equals(object? a, object? b)
    {
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (a == null || b == null) return a == null && b == null;
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? ToDouble(a) == ToDouble(b) : ToLong(a) == ToLong(b);
        switch (a)
        {
            case string sa: return b is string sb && sa == sb;
            case List<object?> la: return b is List<object?> lb && la.Count == lb.Count && la.Zip(lb).All(p => Equals(p.First, p.Second));
            case object?[] ta: return b is object?[] tb && ta.Length == tb.Length && ta.Zip(tb).All(p => Equals(p.First, p.Second));
            case PyDict da:
                return b is PyDict db && da.Count == db.Count && da.All(kv => db.TryGetValue(kv.Key, out var v) && Equals(kv.Value, v));
            default: return ReferenceEquals(a, b);
        }
    }

    private static long ToLong(object? v) => v switch { long l => l, bool b => b ? 1 : 0, _ => throw new Error($"'{TypeName(v)}' is not an integer") };

    /// <summary>Python's ordering (&lt;): numbers, strings (by code point), lists and tuples element by element.</summary>
    public static int Compare(object? a, object? b, string op)
    {
        if (IsNumber(a) && IsNumber(b)) return a is double || b is double ? ToDouble(a).CompareTo(ToDouble(b)) : ToLong(a).CompareTo(ToLong(b));
        if (a is string sa && b is string sb) return string.CompareOrdinal(sa, sb) switch { < 0 => -1, > 0 => 1, _ => 0 };
        if (Sequence(a) is { } xa && Sequence(b) is { } xb && a?.GetType() == b?.GetType())
        {
            for (int i = 0; i < Math.Min(xa.Count, xb.Count); i++)
                if (!Equals(xa[i], xb[i])) return Compare(xa[i], xb[i], op);
            return xa.Count.CompareTo(xb.Count);
        }
        throw new Error($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    public static IReadOnlyList<object?>? Sequence(object? v) => v switch { List<object?> l => l, object?[] t => t, _ => null };

    /// <summary>Iterating a value: lists, tuples, strings (characters), dicts (keys); Undefined iterates as empty.</summary>
    public static IReadOnlyList<object?> Iterate(object? v) => v switch
    {
        List<object?> l => l,
        object?[] t => t,
        string s => s.EnumerateRunes().Select(r => (object?)r.ToString()).ToList(),
        PyDict d => d.Keys.Select(k => (object?)k).ToList(),
        Undefined => [],
        _ => throw new Error($"'{TypeName(v)}' object is not iterable"),
    };

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal) : throw new Error($"'in <string>' requires string as left operand, not {TypeName(item)}"),
        PyDict d => item is string k && d.ContainsKey(k),
        Undefined => false,
        _ => Iterate(container).Any(x => Equals(x, item)),
    };

    public static object? Binary(string op, object? a, object? b)
    {
        switch (op)
        {
            case "+":
                if (IsNumber(a) && IsNumber(b)) return a is double || b is double ? (object)(ToDouble(a) + ToDouble(b)) : checked(ToLong(a) + ToLong(b));
                if (a is string sa && b is string sb) return sa + sb;
                if (a is List<object?> la && b is List<object?> lb) return new List<object?>([.. la, .. lb]);
                if (a is object?[] ta && b is object?[] tb) return (object?[])[.. ta, .. tb];
                break;
            case "-":
                if (IsNumber(a) && IsNumber(b)) return a is double || b is double ? (object)(ToDouble(a) - ToDouble(b)) : checked(ToLong(a) - ToLong(b));
                break;
            case "*":
                if (IsNumber(a) && IsNumber(b)) return a is double || b is double ? (object)(ToDouble(a) * ToDouble(b)) : checked(ToLong(a) * ToLong(b));
                if (a is string s1 && b is long n1) return Repeat(s1, n1);
                if (a is long n2 && b is string s2) return Repeat(s2, n2);
                if (a is List<object?> l1 && b is long n3) return Enumerable.Repeat(l1, (int)Math.Clamp(n3, 0, Limits.MaxItems / Math.Max(1, l1.Count))).SelectMany(x => x).ToList();
                break;
            case "/":
                if (IsNumber(a) && IsNumber(b))
                {
                    double d = ToDouble(b);
                    if (d == 0) throw new Error("division by zero");
                    return ToDouble(a) / d;
                }
                break;
            case "//":
                if (IsNumber(a) && IsNumber(b))
                {
                    if (a is double || b is double)
                    {
                        double d = ToDouble(b);
                        if (d == 0) throw new Error("float floor division by zero");
                        return Math.Floor(ToDouble(a) / d);
                    }
                    long y = ToLong(b);
                    if (y == 0) throw new Error("integer division or modulo by zero");
                    return FloorDiv(ToLong(a), y);
                }
                break;
            case "%":
                if (IsNumber(a) && IsNumber(b))
                {
                    if (a is double || b is double)
                    {
                        double x = ToDouble(a), y = ToDouble(b);
                        if (y == 0) throw new Error("float modulo");
                        double m = x % y;
                        return m != 0 && (m < 0) != (y < 0) ? m + y : m;
                    }
                    long yy = ToLong(b);
                    if (yy == 0) throw new Error("integer division or modulo by zero");
                    long xx = ToLong(a);
                    return xx - FloorDiv(xx, yy) * yy;
                }
                if (a is string fmt) return Format.Percent(fmt, b);
                break;
            case "**":
                if (IsNumber(a) && IsNumber(b))
                {
                    if (a is double || b is double || ToLong(b) < 0) return (object)Math.Pow(ToDouble(a), ToDouble(b));
                    long result = 1, bas = ToLong(a);
                    for (long e = ToLong(b); e > 0; e--) result = checked(result * bas);
                    return result;
                }
                break;
        }
        if (op == "+" && a is string or List<object?> or object?[])
            throw new Error($"can only concatenate {TypeName(a)} (not \"{TypeName(b)}\") to {TypeName(a)}");
        throw new Error($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static long FloorDiv(long x, long y)
    {
        long q = x / y;
        return (x % y != 0) && ((x < 0) != (y < 0)) ? q - 1 : q;
    }

    private static string Repeat(string s, long n)
    {
        if (n <= 0) return "";
        if (s.Length * n > Limits.MaxOutputChars) throw new Error("string too large");
        return new StringBuilder(s.Length * (int)n).Insert(0, s, (int)n).ToString();
    }

    /// <summary>json.dumps(v, ensure_ascii=False, indent, separators, sort_keys) as Hugging Face's tojson calls it.</summary>
    public static string Json(object? v, int? indent, bool sortKeys = false, string? itemSep = null, string? keySep = null)
    {
        var sb = new StringBuilder();
        itemSep ??= indent == null ? ", " : ",";
        keySep ??= ": ";
        WriteJson(sb, v, indent, 0, sortKeys, itemSep, keySep);
        return sb.ToString();
    }

    private static void WriteJson(StringBuilder sb, object? v, int? indent, int level, bool sortKeys, string itemSep, string keySep)
    {
        switch (v)
        {
            case null: sb.Append("null"); return;
            case Undefined u: throw new Error($"Object of type Undefined is not JSON serializable ({u.Hint})");
            case bool b: sb.Append(b ? "true" : "false"); return;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d: sb.Append(double.IsNaN(d) ? "NaN" : double.IsInfinity(d) ? (d > 0 ? "Infinity" : "-Infinity") : FloatRepr(d)); return;
            case string s: JsonString(sb, s); return;
            case PyDict dict:
            {
                if (dict.Count == 0) { sb.Append("{}"); return; }
                var items = sortKeys ? dict.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList() : dict.ToList();
                sb.Append('{');
                for (int i = 0; i < items.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    NewLine(sb, indent, level + 1);
                    JsonString(sb, items[i].Key);
                    sb.Append(keySep);
                    WriteJson(sb, items[i].Value, indent, level + 1, sortKeys, itemSep, keySep);
                }
                NewLine(sb, indent, level);
                sb.Append('}');
                return;
            }
            case Namespace: throw new Error("Object of type Namespace is not JSON serializable");
        }
        if (Sequence(v) is { } seq)
        {
            if (seq.Count == 0) { sb.Append("[]"); return; }
            sb.Append('[');
            for (int i = 0; i < seq.Count; i++)
            {
                if (i > 0) sb.Append(itemSep);
                NewLine(sb, indent, level + 1);
                WriteJson(sb, seq[i], indent, level + 1, sortKeys, itemSep, keySep);
            }
            NewLine(sb, indent, level);
            sb.Append(']');
            return;
        }
        throw new Error($"Object of type {TypeName(v)} is not JSON serializable");
    }

    private static void NewLine(StringBuilder sb, int? indent, int level)
    {
        if (indent is int n) sb.Append('\n').Append(' ', n * level);
    }

    private static void JsonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    /// <summary>A JSON document as template values (integers as int, other numbers as float, objects as ordered dicts).</summary>
    public static object? FromJson(System.Text.Json.JsonElement e) => e.ValueKind switch
    {
        System.Text.Json.JsonValueKind.Null or System.Text.Json.JsonValueKind.Undefined => null,
        System.Text.Json.JsonValueKind.True => true,
        System.Text.Json.JsonValueKind.False => false,
        System.Text.Json.JsonValueKind.String => e.GetString(),
        System.Text.Json.JsonValueKind.Number => e.TryGetInt64(out long l) && !e.GetRawText().Contains('.') && !e.GetRawText().Contains('e', StringComparison.OrdinalIgnoreCase) ? (object)l : e.GetDouble(),
        System.Text.Json.JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        _ => ToDict(e),
    };

    private static PyDict ToDict(System.Text.Json.JsonElement e)
    {
        var d = new PyDict();
        foreach (var p in e.EnumerateObject()) d[p.Name] = FromJson(p.Value);
        return d;
    }
}

/// <summary>Bounds of the sandbox: no template can run away with time or memory.</summary>
internal static class Limits
{
    public const int MaxOutputChars = 16 << 20;
    public const int MaxItems = 1_000_000;
    /// <summary>jinja2's sandbox MAX_RANGE.</summary>
    public const int MaxRange = 100_000;
    public const long MaxSteps = 20_000_000;
    public const int MaxDepth = 200;
}

using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace KernelEngine.Text.Jinja;

/// <summary>
/// jinja2's built-in filters, tests and globals (plus Hugging Face's <c>raise_exception</c>, <c>strftime_now</c> and its
/// <c>tojson</c>), and the attributes templates may reach: str/dict/list methods that do not mutate (the sandbox is
/// immutable, as transformers' ImmutableSandboxedEnvironment), namespace attributes and <c>loop</c>.
/// </summary>
internal sealed partial class Builtins
{
    private readonly Func<DateTime> _now;

    public Builtins(Func<DateTime> now)
    {
        _now = now;
        Globals = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["range"] = (Callable)Range,
            ["namespace"] = (Callable)((a, kw) =>
            {
                var ns = new Namespace();
                foreach (var x in a)
                    if (x is PyDict d) foreach (var (k, v) in d) ns.Attributes[k] = v;
                    else throw new Py.Error("namespace() takes a dict or keyword arguments");
                foreach (var (k, v) in kw) ns.Attributes[k] = v;
                return ns;
            }),
            ["dict"] = (Callable)((a, kw) =>
            {
                var d = new PyDict();
                if (a.Count > 0 && a[0] is PyDict src) foreach (var (k, v) in src) d[k] = v;
                foreach (var (k, v) in kw) d[k] = v;
                return d;
            }),
            ["raise_exception"] = (Callable)((a, _) => throw new TemplateException(a.Count > 0 ? Py.Str(a[0]) : "raise_exception() called", raisedByTemplate: true)),
            ["strftime_now"] = (Callable)((a, _) => Format.Strftime(_now(), a.Count > 0 ? Py.Str(a[0]) : "")),
            ["joiner"] = (Callable)((a, kw) =>
            {
                string sep = Py.Str(Arg(a, kw, 0, "sep", ", "));
                bool used = false;
                return (Callable)((_, _) => { if (used) return sep; used = true; return ""; });
            }),
        };
    }

    public Dictionary<string, object?> Globals { get; }

    private static object? Arg(List<object?> a, Dictionary<string, object?> kw, int index, string name, object? fallback = null) =>
        index < a.Count ? a[index] : kw.TryGetValue(name, out var v) ? v : fallback;

    private static object? Range(List<object?> a, Dictionary<string, object?> kw)
    {
        long start = 0, stop, step = 1;
        if (a.Count == 1) stop = Int(a[0]);
        else if (a.Count is 2 or 3) { start = Int(a[0]); stop = Int(a[1]); if (a.Count == 3) step = Int(a[2]); }
        else throw new Py.Error($"range expected 1 to 3 arguments, got {a.Count}");
        if (step == 0) throw new Py.Error("range() arg 3 must not be zero");
        long count = step > 0 ? Math.Max(0, (stop - start + step - 1) / step) : Math.Max(0, (start - stop - step - 1) / -step);
        if (count > Limits.MaxRange) throw new Py.Error($"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({Limits.MaxRange}).");
        var list = new List<object?>((int)count);
        for (long i = 0; i < count; i++) list.Add(start + i * step);
        return list;
    }

    private static long Int(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        _ => throw new Py.Error($"'{Py.TypeName(v)}' object cannot be interpreted as an integer"),
    };

    // ---- attributes and items ----

    private static readonly HashSet<string> Mutators = ["append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "update", "setdefault", "popitem", "__setitem__", "__delitem__"];

    public object? GetAttr(object? target, string name)
    {
        if (name.StartsWith('_')) throw new Py.Error($"access to attribute '{name}' of '{Py.TypeName(target)}' object is unsafe.");
        switch (target)
        {
            case PyDict d:
                if (DictMethod(d, name) is { } m) return m;
                if (Mutators.Contains(name)) throw Unsafe(name, target);
                return d.TryGetValue(name, out var v) ? v : new Undefined($"'dict object' has no attribute '{name}'");
            case string s:
                return (object?)StringMethod(s, name) ?? new Undefined($"'str object' has no attribute '{name}'");
            case List<object?> or object?[]:
                if (Mutators.Contains(name)) throw Unsafe(name, target);
                return (object?)ListMethod((IReadOnlyList<object?>)target, name) ?? new Undefined($"'{Py.TypeName(target)} object' has no attribute '{name}'");
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out var nv) ? nv : new Undefined($"'Namespace' object has no attribute '{name}'");
            case LoopInfo loop:
                return name == "__call__" ? loop.Recurse : loop.Get(name);
            default:
                return new Undefined($"'{Py.TypeName(target)} object' has no attribute '{name}'");
        }
    }

    private static Py.Error Unsafe(string name, object? target) => new($"access to attribute '{name}' of '{Py.TypeName(target)}' object is unsafe.");

    public object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case PyDict d:
                if (key is string k) return d.TryGetValue(k, out var v) ? v : DictMethod(d, k) ?? (object?)new Undefined($"'dict object' has no attribute '{k}'");
                return new Undefined($"'dict object' has no attribute {Py.Repr(key)}");
            case List<object?> or object?[] when key is long or bool:
            {
                var seq = (IReadOnlyList<object?>)target;
                long i = Int(key);
                if (i < 0) i += seq.Count;
                return i >= 0 && i < seq.Count ? seq[(int)i] : new Undefined($"'{Py.TypeName(target)} object' has no element {Int(key)}");
            }
            case string s when key is long or bool:
            {
                var runes = s.EnumerateRunes().ToArray();
                long i = Int(key);
                if (i < 0) i += runes.Length;
                return i >= 0 && i < runes.Length ? runes[i].ToString() : new Undefined($"'str object' has no element {Int(key)}");
            }
            case Namespace or LoopInfo when key is string name:
                return GetAttr(target, name);
            default:
                return key is string attr ? GetAttr(target, attr) : new Undefined($"'{Py.TypeName(target)} object' has no element {Py.Repr(key)}");
        }
    }

    /// <summary>Python slicing of lists, tuples and strings: x[start:stop:step] with negative and missing bounds.</summary>
    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        long st = step == null ? 1 : Int(step);
        if (st == 0) throw new Py.Error("slice step cannot be zero");
        IReadOnlyList<object?> seq = target switch
        {
            List<object?> l => l,
            object?[] t => t,
            string s => s.EnumerateRunes().Select(r => (object?)r.ToString()).ToList(),
            _ => throw new Py.Error($"'{Py.TypeName(target)}' object is not subscriptable"),
        };
        int n = seq.Count;
        long Norm(object? v, long dflt, long lo, long hi)
        {
            if (v == null) return dflt;
            long x = Int(v);
            if (x < 0) x += n;
            return Math.Clamp(x, lo, hi);
        }
        var picked = new List<object?>();
        if (st > 0)
        {
            long a = Norm(start, 0, 0, n), b = Norm(stop, n, 0, n);
            for (long i = a; i < b; i += st) picked.Add(seq[(int)i]);
        }
        else
        {
            long a = Norm(start, n - 1, -1, n - 1), b = Norm(stop, -1, -1, n - 1);
            for (long i = a; i > b; i += st) picked.Add(seq[(int)i]);
        }
        return target switch
        {
            string => string.Concat(picked.Select(x => (string)x!)),
            object?[] => picked.ToArray(),
            _ => picked,
        };
    }

    private static Callable? DictMethod(PyDict d, string name) => name switch
    {
        "items" => (_, _) => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList(),
        "keys" => (_, _) => d.Keys.Select(k => (object?)k).ToList(),
        "values" => (_, _) => d.Values.ToList(),
        "get" => (a, kw) => a.Count > 0 && a[0] is string k && d.TryGetValue(k, out var v) ? v : Arg(a, kw, 1, "default"),
        "copy" => (_, _) => { var c = new PyDict(); foreach (var (k, v) in d) c[k] = v; return c; },
        _ => null,
    };

    private static Callable? ListMethod(IReadOnlyList<object?> l, string name) => name switch
    {
        "index" => (a, _) =>
        {
            for (int i = 0; i < l.Count; i++) if (Py.Equals(l[i], a.FirstOrDefault())) return (long)i;
            throw new Py.Error($"{Py.Repr(a.FirstOrDefault())} is not in list");
        },
        "count" => (a, _) => (long)l.Count(x => Py.Equals(x, a.FirstOrDefault())),
        "copy" => (_, _) => l.ToList(),
        _ => null,
    };

    private static Callable? StringMethod(string s, string name) => name switch
    {
        "strip" => (a, _) => Strip(s, a.FirstOrDefault() as string, true, true),
        "lstrip" => (a, _) => Strip(s, a.FirstOrDefault() as string, true, false),
        "rstrip" => (a, _) => Strip(s, a.FirstOrDefault() as string, false, true),
        "upper" => (_, _) => s.ToUpperInvariant(),
        "lower" => (_, _) => s.ToLowerInvariant(),
        "title" => (_, _) => PyTitle(s),
        "capitalize" => (_, _) => Capitalize(s),
        "startswith" => (a, _) => AnyAffix(a.FirstOrDefault(), p => s.StartsWith(p, StringComparison.Ordinal)),
        "endswith" => (a, _) => AnyAffix(a.FirstOrDefault(), p => s.EndsWith(p, StringComparison.Ordinal)),
        "replace" => (a, kw) => Replace(s, Py.Str(Arg(a, kw, 0, "old")), Py.Str(Arg(a, kw, 1, "new")), Arg(a, kw, 2, "count") is long c ? c : -1),
        "split" => (a, kw) => Split(s, Arg(a, kw, 0, "sep") as string, Arg(a, kw, 1, "maxsplit") is long m ? m : -1),
        "rsplit" => (a, kw) => RSplit(s, Arg(a, kw, 0, "sep") as string, Arg(a, kw, 1, "maxsplit") is long m ? m : -1),
        "splitlines" => (_, _) => s.Split('\n').Select(x => (object?)x.TrimEnd('\r')).ToList() is var lines && s.EndsWith('\n') ? lines[..^1] : s.Split('\n').Select(x => (object?)x.TrimEnd('\r')).ToList(),
        "join" => (a, _) => string.Join(s, Py.Iterate(a.FirstOrDefault()).Select(x => x as string ?? throw new Py.Error($"sequence item: expected str instance, {Py.TypeName(x)} found"))),
        "find" => (a, _) => (long)s.IndexOf(Py.Str(a.FirstOrDefault()), StringComparison.Ordinal),
        "rfind" => (a, _) => (long)s.LastIndexOf(Py.Str(a.FirstOrDefault()), StringComparison.Ordinal),
        "index" => (a, _) => s.IndexOf(Py.Str(a.FirstOrDefault()), StringComparison.Ordinal) is int i and >= 0 ? (long)i : throw new Py.Error("substring not found"),
        "count" => (a, _) => (long)Regex.Matches(s, Regex.Escape(Py.Str(a.FirstOrDefault()))).Count,
        "isdigit" => (_, _) => s.Length > 0 && s.All(char.IsDigit),
        "isnumeric" => (_, _) => s.Length > 0 && s.All(char.IsDigit),
        "isalpha" => (_, _) => s.Length > 0 && s.All(char.IsLetter),
        "isalnum" => (_, _) => s.Length > 0 && s.All(char.IsLetterOrDigit),
        "isspace" => (_, _) => s.Length > 0 && s.All(char.IsWhiteSpace),
        "islower" => (_, _) => s.Any(char.IsLetter) && !s.Any(char.IsUpper),
        "isupper" => (_, _) => s.Any(char.IsLetter) && !s.Any(char.IsLower),
        "format" => (a, kw) => Format.StrFormat(s, a, kw),
        "center" => (a, _) => Center(s, (int)Int(a.FirstOrDefault() ?? 80L)),
        "ljust" => (a, _) => s.PadRight((int)Int(a.FirstOrDefault() ?? 0L), a.Count > 1 && a[1] is string f && f.Length == 1 ? f[0] : ' '),
        "rjust" => (a, _) => s.PadLeft((int)Int(a.FirstOrDefault() ?? 0L), a.Count > 1 && a[1] is string f && f.Length == 1 ? f[0] : ' '),
        "zfill" => (a, _) => s.PadLeft((int)Int(a.FirstOrDefault() ?? 0L), '0'),
        "removeprefix" => (a, _) => a.FirstOrDefault() is string p && s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s,
        "removesuffix" => (a, _) => a.FirstOrDefault() is string p && p.Length > 0 && s.EndsWith(p, StringComparison.Ordinal) ? s[..^p.Length] : s,
        _ => null,
    };

    private static bool AnyAffix(object? arg, Func<string, bool> test) => arg switch
    {
        string p => test(p),
        object?[] t => t.Any(x => x is string p && test(p)),
        _ => throw new Py.Error($"startswith/endswith arg must be str or a tuple of str, not {Py.TypeName(arg)}"),
    };

    private static string Strip(string s, string? chars, bool left, bool right)
    {
        if (chars == null) return left && right ? s.Trim() : left ? s.TrimStart() : s.TrimEnd();
        var set = chars.ToCharArray();
        return left && right ? s.Trim(set) : left ? s.TrimStart(set) : s.TrimEnd(set);
    }

    private static string Replace(string s, string old, string @new, long count)
    {
        if (count < 0) return old.Length == 0 ? string.Join(@new, s.Select(c => c.ToString()).Prepend("").Append("")) : s.Replace(old, @new, StringComparison.Ordinal);
        var sb = new StringBuilder();
        int pos = 0;
        for (long done = 0; done < count; done++)
        {
            int at = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (at < 0 || old.Length == 0) break;
            sb.Append(s, pos, at - pos).Append(@new);
            pos = at + old.Length;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    private static List<object?> Split(string s, string? sep, long max)
    {
        if (sep == null)
        {
            var parts = new List<object?>();
            int i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (max >= 0 && parts.Count == max) { parts.Add(s[i..].TrimEnd()); break; }
                int j = i;
                while (j < s.Length && !char.IsWhiteSpace(s[j])) j++;
                parts.Add(s[i..j]);
                i = j;
            }
            return parts;
        }
        if (sep.Length == 0) throw new Py.Error("empty separator");
        return (max < 0 ? s.Split(sep) : s.Split(sep, (int)Math.Min(max + 1, int.MaxValue))).Select(x => (object?)x).ToList();
    }

    private static List<object?> RSplit(string s, string? sep, long max)
    {
        if (max < 0 || sep == null) return Split(s, sep, max);
        var parts = new List<object?>();
        int end = s.Length;
        while (parts.Count < max)
        {
            int at = s.LastIndexOf(sep, end - 1 < 0 ? 0 : end - 1, StringComparison.Ordinal);
            if (at < 0 || end == 0) break;
            if (at + sep.Length > end) break;
            parts.Insert(0, s[(at + sep.Length)..end]);
            end = at;
        }
        parts.Insert(0, s[..end]);
        return parts;
    }

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>Python's str.title: a letter after a non-letter is upper-cased, every other letter lower-cased.</summary>
    private static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool prevCased = false;
        foreach (char c in s)
        {
            sb.Append(prevCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            prevCased = char.IsLetter(c);
        }
        return sb.ToString();
    }

    /// <summary>jinja2's title filter: words begin after whitespace, '-', '(', '{', '[' or '&lt;'.</summary>
    private static string JinjaTitle(string s) =>
        string.Concat(WordBeginning().Split(s).Where(x => x.Length > 0).Select(x => char.ToUpperInvariant(x[0]) + x[1..].ToLowerInvariant()));

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex WordBeginning();

    private static string Center(string s, int width)
    {
        if (s.Length >= width) return s;
        int total = width - s.Length, left = total / 2 + (total & width & 1);
        return new string(' ', left) + s + new string(' ', total - left);
    }

    // ---- filters ----

    public object? Filter(string name, object? v, List<object?> a, Dictionary<string, object?> kw, Node at)
    {
        switch (name)
        {
            case "default" or "d":
            {
                bool boolean = Py.Truthy(Arg(a, kw, 1, "boolean", false));
                return v is Undefined || boolean && !Py.Truthy(v) ? Arg(a, kw, 0, "default_value", "") : v;
            }
            case "tojson":
            {
                int? indent = Arg(a, kw, 0, "indent") is long i ? (int)i : null;
                string? itemSep = null, keySep = null;
                if (kw.TryGetValue("separators", out var seps) && Py.Sequence(seps) is { Count: 2 } sp) { itemSep = Py.Str(sp[0]); keySep = Py.Str(sp[1]); }
                return Py.Json(v, indent, Py.Truthy(kw.GetValueOrDefault("sort_keys")), itemSep, keySep);
            }
            case "safe" or "escape" or "e" or "forceescape" when name == "safe": return v;
        }
        if (v is Undefined u && name is not ("length" or "count" or "list" or "string" or "first" or "last" or "join" or "items" or "select" or "reject" or "selectattr" or "rejectattr" or "map" or "unique" or "sort" or "reverse" or "sum" or "min" or "max"))
            throw new TemplateException(u.Hint, at.Line, at.Col);
        switch (name)
        {
            case "trim": return Strip(Py.Str(v), Arg(a, kw, 0, "chars") as string, true, true);
            case "upper": return Py.Str(v).ToUpperInvariant();
            case "lower": return Py.Str(v).ToLowerInvariant();
            case "title": return JinjaTitle(Py.Str(v));
            case "capitalize": return Capitalize(Py.Str(v));
            case "string": return Py.Str(v);
            case "length" or "count":
                return v switch
                {
                    string s => (long)s.EnumerateRunes().Count(),
                    PyDict d => (long)d.Count,
                    Undefined => 0L,
                    Namespace n => (long)n.Attributes.Count,
                    _ => (long)(Py.Sequence(v) ?? throw new Py.Error($"object of type '{Py.TypeName(v)}' has no len()")).Count,
                };
            case "list": return Py.Iterate(v).ToList();
            case "first": return Py.Iterate(v) is { Count: > 0 } f ? f[0] : new Undefined("No first item, sequence was empty.");
            case "last": return Py.Iterate(v) is { Count: > 0 } l ? l[^1] : new Undefined("No last item, sequence was empty.");
            case "join":
            {
                string sep = Py.Str(Arg(a, kw, 0, "d", ""));
                var items = Py.Iterate(v);
                if (Arg(a, kw, 1, "attribute") is { } attr) items = items.Select(x => Attribute(x, attr)).ToList();
                return string.Join(sep, items.Select(Py.Str));
            }
            case "replace": return Replace(Py.Str(v), Py.Str(Arg(a, kw, 0, "old")), Py.Str(Arg(a, kw, 1, "new")), Arg(a, kw, 2, "count") is long c ? c : -1);
            case "items":
                return v switch
                {
                    PyDict d => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList(),
                    Undefined => new List<object?>(),
                    _ => throw new Py.Error($"items() needs a mapping, not {Py.TypeName(v)}"),
                };
            case "dictsort":
            {
                if (v is not PyDict d) throw new Py.Error("dictsort needs a mapping");
                bool caseSensitive = Py.Truthy(Arg(a, kw, 0, "case_sensitive", false));
                bool byValue = Py.Str(Arg(a, kw, 1, "by", "key")) == "value";
                bool reverse = Py.Truthy(Arg(a, kw, 2, "reverse", false));
                var pairs = d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList();
                return SortBy(pairs, x => Fold(((object?[])x!)[byValue ? 1 : 0], caseSensitive), reverse);
            }
            case "indent": return Indent(Py.Str(v), Arg(a, kw, 0, "width", 4L), Py.Truthy(Arg(a, kw, 1, "first", false)), Py.Truthy(Arg(a, kw, 2, "blank", false)));
            case "int":
                return ToInt(v, Arg(a, kw, 0, "default", 0L), Arg(a, kw, 1, "base", 10L) is long b ? (int)b : 10);
            case "float": return ToFloat(v, Arg(a, kw, 0, "default", 0.0));
            case "abs": return v switch { long al => (object)Math.Abs(al), double ad => Math.Abs(ad), bool ab => ab ? 1L : 0L, _ => throw new Py.Error($"bad operand type for abs(): '{Py.TypeName(v)}'") };
            case "round":
            {
                int precision = (int)Int(Arg(a, kw, 0, "precision", 0L));
                string method = Py.Str(Arg(a, kw, 1, "method", "common"));
                double x = Py.ToDouble(v), scale = Math.Pow(10, precision);
                double r = method switch
                {
                    "ceil" => Math.Ceiling(x * scale) / scale,
                    "floor" => Math.Floor(x * scale) / scale,
                    _ => Math.Round(x, Math.Clamp(precision, 0, 15), MidpointRounding.ToEven),
                };
                return r;
            }
            case "reverse":
                return v switch
                {
                    string s => new string(s.Reverse().ToArray()),
                    _ => Py.Iterate(v).Reverse().ToList(),
                };
            case "sort":
            {
                bool reverse = Py.Truthy(Arg(a, kw, 0, "reverse", false));
                bool caseSensitive = Py.Truthy(Arg(a, kw, 1, "case_sensitive", false));
                var attr = Arg(a, kw, 2, "attribute");
                return SortBy(Py.Iterate(v).ToList(), x => Fold(attr != null ? Attribute(x, attr) : x, caseSensitive), reverse);
            }
            case "unique":
            {
                bool caseSensitive = Py.Truthy(Arg(a, kw, 0, "case_sensitive", false));
                var attr = Arg(a, kw, 1, "attribute");
                var seen = new List<object?>();
                var result = new List<object?>();
                foreach (var x in Py.Iterate(v))
                {
                    var key = Fold(attr != null ? Attribute(x, attr) : x, caseSensitive);
                    if (seen.Any(s => Py.Equals(s, key))) continue;
                    seen.Add(key);
                    result.Add(x);
                }
                return result;
            }
            case "min" or "max":
            {
                bool caseSensitive = Py.Truthy(Arg(a, kw, 0, "case_sensitive", false));
                var attr = Arg(a, kw, 1, "attribute");
                var items = Py.Iterate(v);
                if (items.Count == 0) return new Undefined($"No aggregated item, sequence was empty.");
                var sorted = SortBy(items.ToList(), x => Fold(attr != null ? Attribute(x, attr) : x, caseSensitive), false);
                return name == "min" ? sorted[0] : sorted[^1];
            }
            case "sum":
            {
                var attr = Arg(a, kw, 0, "attribute");
                object? total = Arg(a, kw, 1, "start", 0L);
                foreach (var x in Py.Iterate(v)) total = Py.Binary("+", total, attr != null ? Attribute(x, attr) : x);
                return total;
            }
            case "map":
            {
                var items = Py.Iterate(v);
                if (kw.TryGetValue("attribute", out var attr))
                    return items.Select(x => Attribute(x, attr) is Undefined && kw.TryGetValue("default", out var dflt) ? dflt : Attribute(x, attr)).ToList();
                if (a.Count == 0) throw new Py.Error("map requires a filter argument");
                string filter = Py.Str(a[0]);
                var rest = a.Skip(1).ToList();
                return items.Select(x => Filter(filter, x, rest, kw, at)).ToList();
            }
            case "select" or "reject":
            {
                bool keep = name == "select";
                var items = Py.Iterate(v);
                if (a.Count == 0) return items.Where(x => Py.Truthy(x) == keep).ToList();
                string test = Py.Str(a[0]);
                var rest = a.Skip(1).ToList();
                return items.Where(x => Test(test, x, rest, at) == keep).ToList();
            }
            case "selectattr" or "rejectattr":
            {
                bool keep = name == "selectattr";
                if (a.Count == 0) throw new Py.Error($"{name} requires an attribute");
                var attr = a[0];
                var items = Py.Iterate(v);
                if (a.Count == 1) return items.Where(x => Py.Truthy(Attribute(x, attr)) == keep).ToList();
                string test = Py.Str(a[1]);
                var rest = a.Skip(2).ToList();
                return items.Where(x => Test(test, Attribute(x, attr), rest, at) == keep).ToList();
            }
            case "attr": return GetAttr(v, Py.Str(Arg(a, kw, 0, "name")));
            case "batch":
            {
                int size = (int)Int(Arg(a, kw, 0, "linecount"));
                if (size <= 0) throw new Py.Error("batch size must be positive");
                var fill = Arg(a, kw, 1, "fill_with");
                var items = Py.Iterate(v);
                var result = new List<object?>();
                for (int i = 0; i < items.Count; i += size)
                {
                    var chunk = items.Skip(i).Take(size).ToList();
                    if (chunk.Count < size && (a.Count > 1 || kw.ContainsKey("fill_with"))) while (chunk.Count < size) chunk.Add(fill);
                    result.Add(chunk);
                }
                return result;
            }
            case "center": return Center(Py.Str(v), (int)Int(Arg(a, kw, 0, "width", 80L)));
            case "escape" or "e" or "forceescape":
                return Py.Str(v).Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
            case "format": return Format.Percent(Py.Str(v), a.Count == 1 ? a[0] : a.ToArray());
            case "pprint": return Py.Repr(v);
            case "striptags": return Regex.Replace(Regex.Replace(Py.Str(v), "<[^>]*>", ""), @"\s+", " ").Trim();
            case "wordcount": return (long)Regex.Matches(Py.Str(v), @"\w+").Count;
            case "truncate":
            {
                string s = Py.Str(v);
                int length = (int)Int(Arg(a, kw, 0, "length", 255L));
                bool killwords = Py.Truthy(Arg(a, kw, 1, "killwords", false));
                string end = Py.Str(Arg(a, kw, 2, "end", "..."));
                int leeway = (int)Int(Arg(a, kw, 3, "leeway", 5L));
                if (s.Length <= length + leeway) return s;
                if (killwords) return s[..Math.Max(0, length - end.Length)] + end;
                string cut = s[..Math.Max(0, length - end.Length)];
                int space = cut.LastIndexOf(' ');
                return (space >= 0 ? cut[..space] : cut) + end;
            }
            case "slice":
            {
                int slices = (int)Int(Arg(a, kw, 0, "slices"));
                var items = Py.Iterate(v);
                int per = items.Count / slices, extra = items.Count % slices, offset = 0;
                var result = new List<object?>();
                for (int i = 0; i < slices; i++)
                {
                    int len = per + (i < extra ? 1 : 0);
                    var part = items.Skip(offset).Take(len).ToList();
                    offset += len;
                    if ((a.Count > 1 || kw.ContainsKey("fill_with")) && i >= extra && extra > 0) part.Add(Arg(a, kw, 1, "fill_with"));
                    result.Add(part);
                }
                return result;
            }
            default:
                throw new TemplateException($"No filter named '{name}'.", at.Line, at.Col);
        }
    }

    private static object? Attribute(object? item, object? attr)
    {
        // jinja2's attribute paths: "a.b" and integer indexes
        object? x = item;
        foreach (var part in Py.Str(attr).Split('.'))
        {
            x = x switch
            {
                PyDict d => d.TryGetValue(part, out var v) ? v : new Undefined($"'dict object' has no attribute '{part}'"),
                List<object?> or object?[] when int.TryParse(part, out int i) => i < ((IReadOnlyList<object?>)x).Count ? ((IReadOnlyList<object?>)x)[i] : new Undefined($"no element {i}"),
                Namespace n => n.Attributes.TryGetValue(part, out var nv) ? nv : new Undefined($"'Namespace' object has no attribute '{part}'"),
                _ => new Undefined($"'{Py.TypeName(x)} object' has no attribute '{part}'"),
            };
        }
        return x;
    }

    private static object? Fold(object? v, bool caseSensitive) => !caseSensitive && v is string s ? s.ToLowerInvariant() : v;

    private static List<object?> SortBy(List<object?> items, Func<object?, object?> key, bool reverse)
    {
        var keyed = items.Select((x, i) => (Key: key(x), Item: x, Index: i)).ToList();
        keyed.Sort((p, q) => { int c = Py.Compare(p.Key, q.Key, "<"); if (reverse) c = -c; return c != 0 ? c : p.Index.CompareTo(q.Index); });
        return keyed.Select(p => p.Item).ToList();
    }

    private static string Indent(string s, object? width, bool first, bool blank)
    {
        string indention = width as string ?? new string(' ', (int)Int(width));
        s += "\n";
        var lines = s.Split('\n').ToList();
        lines.RemoveAt(lines.Count - 1);   // splitlines drops the piece after the final newline
        string rv;
        if (blank) rv = string.Join("\n" + indention, lines);
        else
        {
            rv = lines[0];
            if (lines.Count > 1) rv += "\n" + string.Join("\n", lines.Skip(1).Select(l => l.Length > 0 ? indention + l : l));
        }
        return first ? indention + rv : rv;
    }

    private static object? ToInt(object? v, object? fallback, int numberBase)
    {
        switch (v)
        {
            case long or bool: return Int(v);
            case double d: return double.IsFinite(d) ? (long)Math.Truncate(d) : fallback;
            case string s:
                s = s.Trim().Replace("_", "");
                try
                {
                    if (numberBase == 10 && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l)) return l;
                    if (numberBase != 10) return System.Convert.ToInt64(s, numberBase);
                }
                catch (FormatException) { }
                return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double f) && double.IsFinite(f) ? (long)Math.Truncate(f) : fallback;
            default: return fallback;
        }
    }

    private static object? ToFloat(object? v, object? fallback) => v switch
    {
        long or bool or double => Py.ToDouble(v),
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        _ => fallback,
    };

    // ---- tests ----

    public bool Test(string name, object? v, List<object?> a, Node at)
    {
        object? arg = a.FirstOrDefault();
        switch (name)
        {
            case "defined": return v is not Undefined;
            case "undefined": return v is Undefined;
            case "none": return v == null;
            case "boolean": return v is bool;
            case "true": return v is true;
            case "false": return v is false;
            case "integer": return v is long;
            case "float": return v is double;
            case "number": return v is long or double or bool;
            case "string": return v is string;
            case "mapping": return v is PyDict;
            case "sequence": return v is string or List<object?> or object?[] or PyDict;
            case "iterable": return v is string or List<object?> or object?[] or PyDict or Undefined;
            case "callable": return v is Callable;
            case "sameas": return v == null ? arg == null : v is bool or long or string ? Py.Equals(v, arg) && v.GetType() == arg?.GetType() : ReferenceEquals(v, arg);
            case "escaped": return false;
            case "lower": return v is string sl && sl == sl.ToLowerInvariant();
            case "upper": return v is string su && su == su.ToUpperInvariant();
            case "odd": return Int(v) % 2 != 0;
            case "even": return Int(v) % 2 == 0;
            case "divisibleby": return Int(v) % Int(arg) == 0;
            case "eq" or "equalto" or "==": return Py.Equals(v, arg);
            case "ne" or "!=": return !Py.Equals(v, arg);
            case "lt" or "lessthan" or "<": return Py.Compare(v, arg, "<") < 0;
            case "le" or "<=": return Py.Compare(v, arg, "<=") <= 0;
            case "gt" or "greaterthan" or ">": return Py.Compare(v, arg, ">") > 0;
            case "ge" or ">=": return Py.Compare(v, arg, ">=") >= 0;
            case "in": return Py.Contains(arg, v);
            case "filter": return v is string f && IsFilter(f);
            case "test": return v is string t && IsTest(t);
            default: throw new TemplateException($"No test named '{name}'.", at.Line, at.Col);
        }
    }

    private static bool IsFilter(string name) => name is "default" or "d" or "tojson" or "safe" or "trim" or "upper" or "lower" or "title" or "capitalize"
        or "string" or "length" or "count" or "list" or "first" or "last" or "join" or "replace" or "items" or "dictsort" or "indent" or "int" or "float"
        or "abs" or "round" or "reverse" or "sort" or "unique" or "min" or "max" or "sum" or "map" or "select" or "reject" or "selectattr"
        or "rejectattr" or "attr" or "batch" or "center" or "escape" or "e" or "forceescape" or "format" or "pprint" or "striptags" or "wordcount"
        or "truncate" or "slice";

    private static bool IsTest(string name) => name is "defined" or "undefined" or "none" or "boolean" or "true" or "false" or "integer" or "float"
        or "number" or "string" or "mapping" or "sequence" or "iterable" or "callable" or "sameas" or "escaped" or "lower" or "upper" or "odd"
        or "even" or "divisibleby" or "eq" or "equalto" or "ne" or "lt" or "lessthan" or "le" or "gt" or "greaterthan" or "ge" or "in"
        or "filter" or "test";
}

using System.Globalization;
using System.Text;

namespace KernelEngine.Text.Jinja;

/// <summary>Python's string formatting as templates use it: <c>"%s" % x</c> / the format filter, <c>str.format</c>, strftime.</summary>
internal static class Format
{
    /// <summary>printf-style: %s %r %d %i %f %e %g %x %%, with flags, width and precision; a tuple supplies several values.</summary>
    public static string Percent(string fmt, object? values)
    {
        var args = values is object?[] t ? t : values is List<object?> ? [values] : [values];
        var sb = new StringBuilder();
        int next = 0;
        for (int i = 0; i < fmt.Length; i++)
        {
            char c = fmt[i];
            if (c != '%') { sb.Append(c); continue; }
            if (++i >= fmt.Length) throw new Py.Error("incomplete format");
            string? key = null;
            if (fmt[i] == '(')
            {
                int close = fmt.IndexOf(')', i);
                if (close < 0) throw new Py.Error("incomplete format key");
                key = fmt[(i + 1)..close];
                i = close + 1;
            }
            int specStart = i;
            while (i < fmt.Length && "-+ #0".Contains(fmt[i])) i++;
            while (i < fmt.Length && (char.IsAsciiDigit(fmt[i]) || fmt[i] == '.')) i++;
            if (i >= fmt.Length) throw new Py.Error("incomplete format");
            string spec = fmt[specStart..i];
            char conv = fmt[i];
            if (conv == '%') { sb.Append('%'); continue; }
            object? v = key != null
                ? (values is PyDict d && d.TryGetValue(key, out var dv) ? dv : throw new Py.Error($"'{key}'"))
                : next < args.Length ? args[next++] : throw new Py.Error("not enough arguments for format string");
            sb.Append(Pad(Convert(conv, spec, v), spec));
        }
        if (values is not PyDict && next < args.Length) throw new Py.Error("not all arguments converted during string formatting");
        return sb.ToString();
    }

    private static string Convert(char conv, string spec, object? v)
    {
        int dot = spec.IndexOf('.');
        int? precision = dot >= 0 ? int.Parse(spec[(dot + 1)..] is { Length: > 0 } p ? p : "0", CultureInfo.InvariantCulture) : null;
        return conv switch
        {
            's' => precision is int ps ? Py.Str(v)[..Math.Min(ps, Py.Str(v).Length)] : Py.Str(v),
            'r' => Py.Repr(v),
            'd' or 'i' or 'u' => ((long)Math.Truncate(Py.ToDouble(v))).ToString(CultureInfo.InvariantCulture),
            'f' or 'F' => Py.ToDouble(v).ToString("F" + (precision ?? 6), CultureInfo.InvariantCulture),
            'e' or 'E' => PyExp(Py.ToDouble(v), precision ?? 6, conv),
            'g' or 'G' => Py.ToDouble(v).ToString("G" + (precision ?? 6), CultureInfo.InvariantCulture),
            'x' => ((long)Py.ToDouble(v)).ToString("x", CultureInfo.InvariantCulture),
            'X' => ((long)Py.ToDouble(v)).ToString("X", CultureInfo.InvariantCulture),
            'c' => v is string s ? s : char.ConvertFromUtf32((int)Py.ToDouble(v)),
            _ => throw new Py.Error($"unsupported format character '{conv}'"),
        };
    }

    private static string PyExp(double d, int precision, char conv)
    {
        string s = d.ToString((conv == 'E' ? "E" : "e") + precision, CultureInfo.InvariantCulture);   // 1.5e+003
        int e = s.IndexOfAny(['e', 'E']);
        int exp = int.Parse(s[(e + 1)..], CultureInfo.InvariantCulture);
        return s[..(e + 1)] + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("00", CultureInfo.InvariantCulture);
    }

    private static string Pad(string s, string spec)
    {
        int dot = spec.IndexOf('.');
        string widthPart = new((dot >= 0 ? spec[..dot] : spec).Where(char.IsAsciiDigit).ToArray());
        bool left = spec.Contains('-'), zero = spec.StartsWith('0') || spec.Contains("0") && !left && widthPart.StartsWith('0');
        if (widthPart.TrimStart('0').Length == 0) return s;
        int width = int.Parse(widthPart, CultureInfo.InvariantCulture);
        if (s.Length >= width) return s;
        return left ? s.PadRight(width) : zero ? s.PadLeft(width, '0') : s.PadLeft(width);
    }

    /// <summary>str.format: {} {0} {name} and {{ }}; a format spec after ':' supports fill/align/width and .Nf.</summary>
    public static string StrFormat(string fmt, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < fmt.Length; i++)
        {
            char c = fmt[i];
            if (c == '{')
            {
                if (i + 1 < fmt.Length && fmt[i + 1] == '{') { sb.Append('{'); i++; continue; }
                int close = fmt.IndexOf('}', i);
                if (close < 0) throw new Py.Error("Single '{' encountered in format string");
                string field = fmt[(i + 1)..close];
                string? spec = null;
                int colon = field.IndexOf(':');
                if (colon >= 0) { spec = field[(colon + 1)..]; field = field[..colon]; }
                object? v = field.Length == 0 ? Arg(args, auto++)
                    : int.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out int n) ? Arg(args, n)
                    : kwargs.TryGetValue(field, out var kv) ? kv : throw new Py.Error($"'{field}'");
                sb.Append(spec == null ? Py.Str(v) : ApplySpec(v, spec));
                i = close;
            }
            else if (c == '}')
            {
                if (i + 1 < fmt.Length && fmt[i + 1] == '}') { sb.Append('}'); i++; continue; }
                throw new Py.Error("Single '}' encountered in format string");
            }
            else sb.Append(c);
        }
        return sb.ToString();
    }

    private static object? Arg(List<object?> args, int i) => i < args.Count ? args[i] : throw new Py.Error("Replacement index out of range for positional args tuple");

    private static string ApplySpec(object? v, string spec)
    {
        char fill = ' ', align = '\0';
        int p = 0;
        if (spec.Length >= 2 && spec[1] is '<' or '>' or '^') { fill = spec[0]; align = spec[1]; p = 2; }
        else if (spec.Length >= 1 && spec[0] is '<' or '>' or '^') { align = spec[0]; p = 1; }
        int w = 0;
        while (p < spec.Length && char.IsAsciiDigit(spec[p])) w = w * 10 + (spec[p++] - '0');
        string s;
        if (p < spec.Length && spec[p] == '.' && spec.EndsWith('f'))
            s = Py.ToDouble(v).ToString("F" + spec[(p + 1)..^1], CultureInfo.InvariantCulture);
        else if (spec.EndsWith('d')) s = ((long)Py.ToDouble(v)).ToString(CultureInfo.InvariantCulture);
        else s = Py.Str(v);
        if (s.Length >= w) return s;
        if (align == '\0') align = Py.IsNumber(v) ? '>' : '<';
        return align switch
        {
            '<' => s + new string(fill, w - s.Length),
            '>' => new string(fill, w - s.Length) + s,
            _ => new string(fill, (w - s.Length) / 2) + s + new string(fill, w - s.Length - (w - s.Length) / 2),
        };
    }

    private static readonly string[] Days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    private static readonly string[] Months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    /// <summary>Python's time.strftime in the C locale (glibc's %-d style unpadded fields included).</summary>
    public static string Strftime(DateTime t, string fmt)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < fmt.Length; i++)
        {
            if (fmt[i] != '%' || i + 1 >= fmt.Length) { sb.Append(fmt[i]); continue; }
            char c = fmt[++i];
            bool unpadded = c == '-' && i + 1 < fmt.Length;
            if (unpadded) c = fmt[++i];
            string two(int v) => unpadded ? v.ToString(CultureInfo.InvariantCulture) : v.ToString("00", CultureInfo.InvariantCulture);
            string day = Days[((int)t.DayOfWeek + 6) % 7];
            sb.Append(c switch
            {
                'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
                'y' => two(t.Year % 100),
                'm' => two(t.Month),
                'd' => two(t.Day),
                'e' => t.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2),
                'H' => two(t.Hour),
                'I' => two(t.Hour % 12 == 0 ? 12 : t.Hour % 12),
                'M' => two(t.Minute),
                'S' => two(t.Second),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'B' => Months[t.Month - 1],
                'b' or 'h' => Months[t.Month - 1][..3],
                'A' => day,
                'a' => day[..3],
                'j' => unpadded ? t.DayOfYear.ToString(CultureInfo.InvariantCulture) : t.DayOfYear.ToString("000", CultureInfo.InvariantCulture),
                'w' => ((int)t.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'F' => t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                'T' => t.ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                'Z' => "",
                'z' => "",
                '%' => "%",
                _ => "%" + c,
            });
        }
        return sb.ToString();
    }
}

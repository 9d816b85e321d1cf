using System.Globalization;
using System.Text;

namespace KernelEngine.Constraints;

/// <summary>
/// llama.cpp's GBNF: <c>name ::= alternatives</c>; alternatives separated by <c>|</c>; sequences of <c>"literals"</c>
/// (escapes \n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH), <c>[classes]</c> (ranges, <c>^</c> negation), <c>.</c> (any
/// character), rule names and <c>( groups )</c>, each with an optional <c>*</c>, <c>+</c>, <c>?</c> or <c>{m}</c>,
/// <c>{m,}</c>, <c>{m,n}</c>; <c>#</c> comments. A rule runs until the next <c>name ::=</c>.
/// </summary>
internal sealed class GbnfParser
{
    private readonly string _s;
    private int _i;
    private readonly List<Grammar.Rule> _rules = new();
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    private readonly HashSet<string> _defined = new(StringComparer.Ordinal);

    private GbnfParser(string s) { _s = s; }

    public static Grammar Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var p = new GbnfParser(text);
        p.SkipSpace(true);
        while (p._i < p._s.Length)
        {
            p.ParseRule();
            p.SkipSpace(true);
        }
        if (!p._ids.TryGetValue("root", out int root) || !p._defined.Contains("root")) throw new InvalidRequestException("grammar: no 'root' rule");
        foreach (var (name, id) in p._ids)
            if (!p._defined.Contains(name)) throw new InvalidRequestException($"grammar: rule '{name}' is used but never defined");
        var g = new Grammar(p._rules, root, text);
        GrammarChecks.RejectLeftRecursion(g);
        return g;
    }

    private InvalidRequestException Error(string what) =>
        new($"grammar: {what} at line {_s[.._i].Count(c => c == '\n') + 1}, column {_i - (_s.LastIndexOf('\n', Math.Max(0, _i - 1)) + 1) + 1}");

    private int Id(string name)
    {
        if (_ids.TryGetValue(name, out int id)) return id;
        _rules.Add(new Grammar.Rule(name));
        return _ids[name] = _rules.Count - 1;
    }

    /// <summary>A helper rule (groups, repetitions).</summary>
    private int NewRule(string hint)
    {
        string name = $"{hint}-{_rules.Count}";
        int id = Id(name);
        _defined.Add(name);
        return id;
    }

    private void SkipSpace(bool newlines)
    {
        while (_i < _s.Length)
        {
            char c = _s[_i];
            if (c == '#') { while (_i < _s.Length && _s[_i] != '\n') _i++; }
            else if (c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n')) _i++;
            else break;
        }
    }

    private static bool IsNameChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '-' || c == '_';

    private string Name()
    {
        int start = _i;
        while (_i < _s.Length && IsNameChar(_s[_i])) _i++;
        if (_i == start) throw Error($"expected a rule name, found '{(_i < _s.Length ? _s[_i] : "end")}'");
        return _s[start.._i];
    }

    /// <summary>True when a rule definition starts here (a name, then ::=).</summary>
    private bool AtRuleStart()
    {
        int j = _i;
        while (j < _s.Length && IsNameChar(_s[j])) j++;
        if (j == _i) return false;
        while (j < _s.Length && (_s[j] == ' ' || _s[j] == '\t')) j++;
        return string.CompareOrdinal(_s, j, "::=", 0, 3) == 0;
    }

    private void ParseRule()
    {
        string name = Name();
        SkipSpace(false);
        if (string.CompareOrdinal(_s, _i, "::=", 0, 3) != 0) throw Error($"expected '::=' after '{name}'");
        _i += 3;
        int id = Id(name);
        if (!_defined.Add(name)) throw Error($"rule '{name}' is defined twice");
        _rules[id].Alternatives.AddRange(Alternatives(nested: false));
    }

    private List<Grammar.Element[]> Alternatives(bool nested)
    {
        var alts = new List<Grammar.Element[]> { Sequence(nested) };
        while (_i < _s.Length && _s[_i] == '|')
        {
            _i++;
            alts.Add(Sequence(nested));
        }
        return alts;
    }

    private Grammar.Element[] Sequence(bool nested)
    {
        var seq = new List<Grammar.Element>();
        while (true)
        {
            SkipSpace(true);
            if (_i >= _s.Length) break;
            char c = _s[_i];
            if (c == '|' || c == ')') break;
            if (!nested && AtRuleStart()) break;
            int start = seq.Count;
            if (c == '"') seq.AddRange(Literal());
            else if (c == '[') seq.Add(CharClass());
            else if (c == '.') { _i++; seq.Add(new Grammar.Element { Ranges = [(0, 0x10FFFF)] }); }
            else if (c == '(')
            {
                _i++;
                int group = NewRule("group");
                var alts = Alternatives(nested: true);
                SkipSpace(true);
                if (_i >= _s.Length || _s[_i] != ')') throw Error("expected ')'");
                _i++;
                _rules[group].Alternatives.AddRange(alts);
                seq.Add(new Grammar.Element { RuleRef = group });
            }
            else if (IsNameChar(c)) seq.Add(new Grammar.Element { RuleRef = Id(Name()) });
            else throw Error($"unexpected '{c}'");
            Repetition(seq, start);
        }
        return seq.ToArray();
    }

    /// <summary>Applies a postfix operator to the elements added since <paramref name="start"/>.</summary>
    private void Repetition(List<Grammar.Element> seq, int start)
    {
        if (_i >= _s.Length) return;
        char c = _s[_i];
        int min, max;   // max -1: unbounded
        if (c == '*') { min = 0; max = -1; _i++; }
        else if (c == '+') { min = 1; max = -1; _i++; }
        else if (c == '?') { min = 0; max = 1; _i++; }
        else if (c == '{')
        {
            _i++;
            min = Number();
            max = min;
            if (_i < _s.Length && _s[_i] == ',')
            {
                _i++;
                SkipSpace(false);
                max = _i < _s.Length && char.IsAsciiDigit(_s[_i]) ? Number() : -1;
            }
            SkipSpace(false);
            if (_i >= _s.Length || _s[_i] != '}') throw Error("expected '}'");
            _i++;
            if (max >= 0 && max < min) throw Error($"repetition {{{min},{max}}} has max < min");
            if (min > 10_000 || max > 10_000) throw Error("repetition counts above 10000");
        }
        else return;
        var item = seq.GetRange(start, seq.Count - start).ToArray();
        seq.RemoveRange(start, seq.Count - start);
        for (int k = 0; k < min; k++) seq.AddRange(item);
        if (max == -1)
        {
            // star ::= item star | ε
            int star = NewRule("star");
            _rules[star].Alternatives.Add([.. item, new Grammar.Element { RuleRef = star }]);
            _rules[star].Alternatives.Add([]);
            seq.Add(new Grammar.Element { RuleRef = star });
        }
        else if (max > min)
        {
            // up to (max - min) more: opt_k ::= item opt_{k+1} | ε, built from the innermost out
            int next = -1;
            for (int k = 0; k < max - min; k++)
            {
                int opt = NewRule("opt");
                _rules[opt].Alternatives.Add(next < 0 ? item : [.. item, new Grammar.Element { RuleRef = next }]);
                _rules[opt].Alternatives.Add([]);
                next = opt;
            }
            seq.Add(new Grammar.Element { RuleRef = next });
        }
    }

    private int Number()
    {
        SkipSpace(false);
        int start = _i;
        while (_i < _s.Length && char.IsAsciiDigit(_s[_i])) _i++;
        if (_i == start || !int.TryParse(_s.AsSpan(start, _i - start), NumberStyles.None, CultureInfo.InvariantCulture, out int n)) throw Error("expected a number");
        return n;
    }

    private IEnumerable<Grammar.Element> Literal()
    {
        _i++;   // "
        var list = new List<Grammar.Element>();
        while (true)
        {
            if (_i >= _s.Length) throw Error("unterminated string literal");
            if (_s[_i] == '"') { _i++; break; }
            int cp = Char();
            list.Add(new Grammar.Element { Ranges = [(cp, cp)] });
        }
        return list;
    }

    private Grammar.Element CharClass()
    {
        _i++;   // [
        var e = new Grammar.Element();
        if (_i < _s.Length && _s[_i] == '^') { e.Negated = true; _i++; }
        var ranges = new List<(int, int)>();
        while (true)
        {
            if (_i >= _s.Length) throw Error("unterminated character class");
            if (_s[_i] == ']') { _i++; break; }
            int lo = Char(), hi = lo;
            if (_i + 1 < _s.Length && _s[_i] == '-' && _s[_i + 1] != ']') { _i++; hi = Char(); }
            if (hi < lo) throw Error($"range U+{lo:X4}-U+{hi:X4} is reversed");
            ranges.Add((lo, hi));
        }
        e.Ranges = ranges.ToArray();
        return e;
    }

    /// <summary>One code point of a literal or class, escapes decoded.</summary>
    private int Char()
    {
        char c = _s[_i];
        if (c != '\\')
        {
            if (char.IsHighSurrogate(c) && _i + 1 < _s.Length && char.IsLowSurrogate(_s[_i + 1])) { _i += 2; return char.ConvertToUtf32(c, _s[_i - 1]); }
            _i++;
            return c;
        }
        if (_i + 1 >= _s.Length) throw Error("dangling escape");
        char e = _s[_i + 1];
        _i += 2;
        switch (e)
        {
            case 'n': return '\n';
            case 'r': return '\r';
            case 't': return '\t';
            case '\\': return '\\';
            case '"': return '"';
            case '[': return '[';
            case ']': return ']';
            case '-': return '-';
            case '^': return '^';
            case '/': return '/';
            case 'x': return Hex(2);
            case 'u': return Hex(4);
            case 'U': return Hex(8);
            default: throw Error($"unknown escape '\\{e}'");
        }
    }

    private int Hex(int digits)
    {
        if (_i + digits > _s.Length || !int.TryParse(_s.AsSpan(_i, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int v) || v > 0x10FFFF)
            throw Error($"expected {digits} hex digits");
        _i += digits;
        return v;
    }
}

/// <summary>Structural checks a matcher relies on.</summary>
internal static class GrammarChecks
{
    /// <summary>A rule that can reach itself without consuming a character would make the matcher expand forever.</summary>
    public static void RejectLeftRecursion(Grammar g)
    {
        int n = g.Rules.Count;
        var nullable = new bool[n];
        for (bool changed = true; changed;)
        {
            changed = false;
            for (int r = 0; r < n; r++)
                if (!nullable[r] && g.Rules[r].Alternatives.Any(a => a.All(e => !e.IsTerminal && nullable[e.RuleRef])))
                    nullable[r] = changed = true;
        }
        // edges r -> s where s can start r (everything before it nullable)
        var state = new int[n];   // 0 unseen, 1 on the path, 2 done
        void Visit(int r)
        {
            state[r] = 1;
            foreach (var alt in g.Rules[r].Alternatives)
                foreach (var e in alt)
                {
                    if (e.IsTerminal) break;
                    if (state[e.RuleRef] == 1) throw new InvalidRequestException($"grammar: rule '{g.Rules[e.RuleRef].Name}' is left-recursive (it can start with itself without reading a character)");
                    if (state[e.RuleRef] == 0) Visit(e.RuleRef);
                    if (!nullable[e.RuleRef]) break;
                }
            state[r] = 2;
        }
        for (int r = 0; r < n; r++) if (state[r] == 0) Visit(r);
    }
}

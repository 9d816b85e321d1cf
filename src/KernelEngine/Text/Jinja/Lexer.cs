using System.Globalization;
using System.Text;

namespace KernelEngine.Text.Jinja;

internal enum TokenKind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof }

internal readonly record struct Token(TokenKind Kind, string Value, int Line, int Column);

/// <summary>
/// Splits a template into text and tag tokens the way jinja2 3.1 does with Hugging Face's settings: <c>trim_blocks</c>
/// (the first newline after a block or comment tag is dropped), <c>lstrip_blocks</c> (spaces and tabs from the start of a
/// line up to a block or comment tag are dropped), <c>-</c> / <c>+</c> whitespace control, line endings normalized to
/// \n and one trailing newline of the template dropped (keep_trailing_newline off), <c>{% raw %}</c> kept verbatim.
/// </summary>
internal sealed class Lexer
{
    private readonly string _src;
    private readonly List<Token> _tokens = [];
    private int _pos, _line = 1, _lineStart;

    private Lexer(string source)
    {
        source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (source.EndsWith('\n')) source = source[..^1];
        _src = source;
    }

    public static List<Token> Tokenize(string source)
    {
        var l = new Lexer(source);
        l.Run();
        return l._tokens;
    }

    private int Column(int pos) => pos - _lineStart + 1;

    private void Advance(int to)
    {
        for (int i = _pos; i < to; i++) if (_src[i] == '\n') { _line++; _lineStart = i + 1; }
        _pos = to;
    }

    private TemplateException Error(string message) => new(message, _line, Column(_pos));

    private void Run()
    {
        bool lineStarting = true;   // the previous match ended a line (or this is the template's start)
        bool stripNext = false;     // the previous tag ended with '-'
        while (_pos < _src.Length)
        {
            int open = FindTagStart(_pos);
            string text = _src[_pos..(open < 0 ? _src.Length : open)];
            if (stripNext) text = text.TrimStart();
            if (open < 0)
            {
                Emit(TokenKind.Text, text, _pos);
                Advance(_src.Length);
                break;
            }
            char kind = _src[open + 1];
            char sign = open + 2 < _src.Length && _src[open + 2] is '-' or '+' ? _src[open + 2] : '\0';
            if (sign == '-') text = text.TrimEnd();
            else if (sign != '+' && kind != '{')
            {
                // lstrip_blocks: spaces between the line's start and a block/comment tag
                int lineAt = text.LastIndexOf('\n') + 1;
                if ((lineAt > 0 || lineStarting) && lineAt < text.Length && text.AsSpan(lineAt).IsWhiteSpace()) text = text[..lineAt];
            }
            if (text.Length > 0) Emit(TokenKind.Text, text, _pos);
            Advance(open);
            int tagStart = _pos;
            Advance(open + 2 + (sign != '\0' ? 1 : 0));

            if (kind == '#')
            {
                int end = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
                if (end < 0) throw new TemplateException("unterminated comment", _line, Column(tagStart));
                bool strip = end > _pos && _src[end - 1] == '-';
                Advance(end + 2);
                (lineStarting, stripNext) = AfterTag(strip, trim: true);
                continue;
            }
            if (kind == '%' && TryRaw(tagStart, out lineStarting, out stripNext)) continue;

            Emit(kind == '{' ? TokenKind.VarBegin : TokenKind.BlockBegin, "", tagStart);
            bool stripAfter = Expression(kind == '{' ? '}' : '%', out int closeAt);
            Emit(kind == '{' ? TokenKind.VarEnd : TokenKind.BlockEnd, "", closeAt);
            (lineStarting, stripNext) = AfterTag(stripAfter, trim: kind == '%');
        }
        Emit(TokenKind.Eof, "", _pos);
    }

    /// <summary>After a tag: '-' strips what follows (next text's TrimStart); trim_blocks drops one newline.</summary>
    private (bool LineStarting, bool StripNext) AfterTag(bool strip, bool trim)
    {
        if (strip)
        {
            int p = _pos;
            while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
            bool endsLine = p > _pos && _src[p - 1] == '\n';
            Advance(p);
            return (endsLine, false);
        }
        if (trim && _pos < _src.Length && _src[_pos] == '\n') { Advance(_pos + 1); return (true, false); }
        return (false, false);
    }

    private int FindTagStart(int from)
    {
        for (int i = from; i + 1 < _src.Length; i++)
            if (_src[i] == '{' && _src[i + 1] is '{' or '%' or '#') return i;
        return -1;
    }

    /// <summary>{% raw %} ... {% endraw %}: the text between, verbatim.</summary>
    private bool TryRaw(int tagStart, out bool lineStarting, out bool stripNext)
    {
        lineStarting = stripNext = false;
        int p = _pos;
        while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
        if (string.CompareOrdinal(_src, p, "raw", 0, 3) != 0 || (p + 3 < _src.Length && char.IsLetterOrDigit(_src[p + 3]))) return false;
        p += 3;
        while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
        bool strip = p < _src.Length && _src[p] == '-';
        if (strip) p++;
        if (string.CompareOrdinal(_src, p, "%}", 0, 2) != 0) throw new TemplateException("expected '%}' after raw", _line, Column(tagStart));
        Advance(p + 2);
        (_, _) = AfterTag(strip, trim: true);
        int end = _pos;
        while (true)
        {
            end = _src.IndexOf("{%", end, StringComparison.Ordinal);
            if (end < 0) throw new TemplateException("missing {% endraw %}", _line, Column(tagStart));
            int q = end + 2;
            bool stripBefore = q < _src.Length && _src[q] == '-';
            if (q < _src.Length && _src[q] is '-' or '+') q++;
            while (q < _src.Length && char.IsWhiteSpace(_src[q])) q++;
            if (string.CompareOrdinal(_src, q, "endraw", 0, 6) == 0)
            {
                string text = _src[_pos..end];
                if (stripBefore) text = text.TrimEnd();
                Emit(TokenKind.Text, text, _pos);
                q += 6;
                while (q < _src.Length && char.IsWhiteSpace(_src[q])) q++;
                bool stripAfter = q < _src.Length && _src[q] == '-';
                if (stripAfter) q++;
                if (string.CompareOrdinal(_src, q, "%}", 0, 2) != 0) throw new TemplateException("expected '%}' after endraw", _line, Column(end));
                Advance(q + 2);
                (lineStarting, stripNext) = AfterTag(stripAfter, trim: true);
                return true;
            }
            end += 2;
        }
    }

    private static readonly string[] Operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"];

    /// <summary>Tokens of one tag up to its closing '}}' or '%}' (outside brackets); returns whether it closed with '-'.</summary>
    private bool Expression(char close, out int closeAt)
    {
        int depth = 0;
        while (true)
        {
            while (_pos < _src.Length && char.IsWhiteSpace(_src[_pos])) Advance(_pos + 1);
            if (_pos >= _src.Length) throw Error(close == '}' ? "unterminated '{{'" : "unterminated '{%'");
            char c = _src[_pos];
            closeAt = _pos;
            if (depth == 0)
            {
                if (c == '-' && _pos + 2 < _src.Length && _src[_pos + 1] == close && _src[_pos + 2] == '}') { Advance(_pos + 3); return true; }
                if (c == '+' && close == '%' && _pos + 2 < _src.Length && _src[_pos + 1] == '%' && _src[_pos + 2] == '}') { Advance(_pos + 3); return false; }
                if (c == close && _pos + 1 < _src.Length && _src[_pos + 1] == '}') { Advance(_pos + 2); return false; }
            }
            int start = _pos;
            if (char.IsLetter(c) || c == '_')
            {
                int p = _pos;
                while (p < _src.Length && (char.IsLetterOrDigit(_src[p]) || _src[p] == '_')) p++;
                Emit(TokenKind.Name, _src[_pos..p], start);
                Advance(p);
            }
            else if (char.IsAsciiDigit(c)) Number(start);
            else if (c is '\'' or '"') Emit(TokenKind.String, StringLiteral(), start);
            else
            {
                string? op = Operators.FirstOrDefault(o => string.CompareOrdinal(_src, _pos, o, 0, o.Length) == 0);
                if (op == null) throw Error($"unexpected character '{c}'");
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}") depth--;
                Emit(TokenKind.Operator, op, start);
                Advance(_pos + op.Length);
            }
        }
    }

    private void Number(int start)
    {
        int p = _pos;
        while (p < _src.Length && (char.IsAsciiDigit(_src[p]) || _src[p] == '_')) p++;
        bool isFloat = false;
        if (p + 1 < _src.Length && _src[p] == '.' && char.IsAsciiDigit(_src[p + 1]))
        {
            isFloat = true; p++;
            while (p < _src.Length && (char.IsAsciiDigit(_src[p]) || _src[p] == '_')) p++;
        }
        if (p < _src.Length && _src[p] is 'e' or 'E')
        {
            int q = p + 1;
            if (q < _src.Length && _src[q] is '+' or '-') q++;
            if (q < _src.Length && char.IsAsciiDigit(_src[q]))
            {
                isFloat = true; p = q;
                while (p < _src.Length && char.IsAsciiDigit(_src[p])) p++;
            }
        }
        Emit(isFloat ? TokenKind.Float : TokenKind.Integer, _src[_pos..p].Replace("_", ""), start);
        Advance(p);
    }

    /// <summary>A quoted string with Python's escapes (\n, \t, \\, \', \", \xNN, \uNNNN, \UNNNNNNNN).</summary>
    private string StringLiteral()
    {
        char quote = _src[_pos];
        var sb = new StringBuilder();
        int p = _pos + 1;
        while (true)
        {
            if (p >= _src.Length) throw Error("unterminated string");
            char c = _src[p];
            if (c == quote) break;
            if (c == '\\' && p + 1 < _src.Length)
            {
                char e = _src[p + 1];
                p += 2;
                switch (e)
                {
                    case 'n': sb.Append('\n'); break;
                    case 't': sb.Append('\t'); break;
                    case 'r': sb.Append('\r'); break;
                    case '0': sb.Append('\0'); break;
                    case 'a': sb.Append('\a'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'v': sb.Append('\v'); break;
                    case '\\': sb.Append('\\'); break;
                    case '\'': sb.Append('\''); break;
                    case '"': sb.Append('"'); break;
                    case '\n': break;
                    case 'x': sb.Append(Hex(ref p, 2)); break;
                    case 'u': sb.Append(Hex(ref p, 4)); break;
                    case 'U': sb.Append(Hex(ref p, 8)); break;
                    default: sb.Append('\\').Append(e); break;
                }
                continue;
            }
            sb.Append(c);
            p++;
        }
        Advance(p + 1);
        return sb.ToString();
    }

    private string Hex(ref int p, int digits)
    {
        if (p + digits > _src.Length || !int.TryParse(_src.AsSpan(p, digits), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int code))
            throw Error("bad escape in string");
        p += digits;
        return char.ConvertFromUtf32(code);
    }

    private void Emit(TokenKind kind, string value, int at)
    {
        // position of `at`: the line/column bookkeeping lags at most to _pos, so recount from the line start when needed
        int line = _line, col = at - _lineStart + 1;
        if (at < _lineStart)
        {
            line = 1; int ls = 0;
            for (int i = 0; i < at; i++) if (_src[i] == '\n') { line++; ls = i + 1; }
            col = at - ls + 1;
        }
        _tokens.Add(new Token(kind, value, line, col));
    }
}

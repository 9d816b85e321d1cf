using System.Globalization;

namespace KernelEngine.Text.Jinja;

/// <summary>
/// Recursive-descent parser of jinja2's grammar with its precedences (lowest first): <c>x if c else y</c>, <c>or</c>,
/// <c>and</c>, <c>not</c>, comparisons and <c>in</c>, <c>+ -</c>, <c>~</c>, <c>* / // %</c>, <c>**</c>, unary <c>- +</c>;
/// filters, tests and calls bind to the operand before them (<c>'a' + x | trim</c> is <c>'a' + (x | trim)</c>).
/// </summary>
internal sealed class Parser
{
    private readonly List<Token> _t;
    private int _i;

    private Parser(List<Token> tokens) => _t = tokens;

    public static List<Node> Parse(string source)
    {
        var p = new Parser(Lexer.Tokenize(source));
        var body = p.Statements(out string? end);
        if (end != null) throw p.Error($"unexpected '{end}'");
        return body;
    }

    private Token Cur => _t[_i];
    private Token Next() => _t[_i++];
    private TemplateException Error(string message, Token? at = null) { var t = at ?? Cur; return new TemplateException(message, t.Line, t.Column); }
    private bool IsOp(string op) => Cur.Kind == TokenKind.Operator && Cur.Value == op;
    private bool IsName(string name) => Cur.Kind == TokenKind.Name && Cur.Value == name;
    private bool SkipOp(string op) { if (!IsOp(op)) return false; _i++; return true; }
    private bool SkipName(string name) { if (!IsName(name)) return false; _i++; return true; }
    private void ExpectOp(string op) { if (!SkipOp(op)) throw Error($"expected '{op}', found {Describe(Cur)}"); }
    private void Expect(TokenKind kind, string what) { if (Cur.Kind != kind) throw Error($"expected {what}, found {Describe(Cur)}"); _i++; }
    private string ExpectName() { if (Cur.Kind != TokenKind.Name) throw Error($"expected a name, found {Describe(Cur)}"); return Next().Value; }
    private static string Describe(Token t) => t.Kind switch
    {
        TokenKind.Eof => "the end of the template",
        TokenKind.BlockEnd => "'%}'",
        TokenKind.VarEnd => "'}}'",
        TokenKind.String => $"string '{t.Value}'",
        _ => $"'{t.Value}'",
    };

    private static readonly HashSet<string> EndTags = ["endif", "elif", "else", "endfor", "endset", "endmacro", "endcall", "endfilter", "endgeneration"];

    /// <summary>Nodes up to an end tag (elif/else/endX, returned in <paramref name="end"/> with the '{%' and name consumed) or the end.</summary>
    private List<Node> Statements(out string? end)
    {
        var body = new List<Node>();
        while (true)
        {
            var t = Cur;
            switch (t.Kind)
            {
                case TokenKind.Eof:
                    end = null;
                    return body;
                case TokenKind.Text:
                    _i++;
                    body.Add(new TextNode(t.Value, t.Line, t.Column));
                    break;
                case TokenKind.VarBegin:
                    _i++;
                    var e = Tuple();
                    Expect(TokenKind.VarEnd, "'}}'");
                    body.Add(new OutputNode(e, t.Line, t.Column));
                    break;
                case TokenKind.BlockBegin:
                    _i++;
                    if (Cur.Kind == TokenKind.Name && EndTags.Contains(Cur.Value))
                    {
                        _endTag = t;
                        end = Next().Value;
                        return body;
                    }
                    body.Add(Statement(t));
                    break;
                default:
                    throw Error($"unexpected {Describe(t)}");
            }
        }
    }

    private Token _endTag;

    private List<Node> Body(string what, Token start, out string end, params string[] allowed)
    {
        var body = Statements(out var e);
        if (e == null) throw Error($"missing '{allowed[^1]}' for the '{what}' at line {start.Line}");
        if (!allowed.Contains(e)) throw Error($"unexpected '{e}' inside the '{what}' of line {start.Line}", _endTag);
        end = e;
        return body;
    }

    private void EndBlock() => Expect(TokenKind.BlockEnd, "'%}'");

    private Node Statement(Token start)
    {
        var kw = Cur;
        string name = ExpectName();
        switch (name)
        {
            case "if": return If(start);
            case "for": return For(start);
            case "set": return Set(start);
            case "macro": return Macro(start);
            case "call": return CallBlock(start);
            case "filter":
            {
                var filters = FilterChain(null);
                EndBlock();
                var body = Body("filter", start, out _, "endfilter");
                EndBlock();
                return new FilterBlockNode(filters, body, start.Line, start.Column);
            }
            case "break": EndBlock(); return new BreakNode(start.Line, start.Column);
            case "continue": EndBlock(); return new ContinueNode(start.Line, start.Column);
            case "do":
            {
                var e = Tuple();
                EndBlock();
                return new DoNode(e, start.Line, start.Column);
            }
            case "generation":
            {
                EndBlock();
                var body = Body("generation", start, out _, "endgeneration");
                EndBlock();
                return new GenerationNode(body, start.Line, start.Column);
            }
            default:
                throw Error($"unsupported tag '{name}'", kw);
        }
    }

    private Node If(Token start)
    {
        var branches = new List<(Expr, List<Node>)>();
        List<Node>? elseBody = null;
        var test = Tuple(withCondExpr: true);
        EndBlock();
        while (true)
        {
            var body = Body("if", start, out string end, "elif", "else", "endif");
            branches.Add((test, body));
            if (end == "elif") { test = Tuple(); EndBlock(); continue; }
            if (end == "else")
            {
                EndBlock();
                elseBody = Body("if", start, out _, "endif");
            }
            EndBlock();
            return new IfNode(branches, elseBody, start.Line, start.Column);
        }
    }

    private Node For(Token start)
    {
        var targets = new List<string>();
        bool paren = SkipOp("(");
        do targets.Add(ExpectName()); while (SkipOp(","));
        if (paren) ExpectOp(")");
        if (!SkipName("in")) throw Error("expected 'in' in for");
        var iterable = Tuple(withCondExpr: false);
        Expr? filter = null;
        if (SkipName("if")) filter = Expression();
        bool recursive = SkipName("recursive");
        EndBlock();
        var body = Body("for", start, out string end, "else", "endfor");
        List<Node>? elseBody = null;
        if (end == "else")
        {
            EndBlock();
            elseBody = Body("for", start, out _, "endfor");
        }
        EndBlock();
        return new ForNode(targets, iterable, filter, body, elseBody, recursive, start.Line, start.Column);
    }

    private Node Set(Token start)
    {
        var targets = new List<string> { ExpectName() };
        string? attribute = null;
        if (SkipOp(".")) attribute = ExpectName();
        else while (SkipOp(",")) targets.Add(ExpectName());
        if (SkipOp("="))
        {
            var value = Tuple();
            EndBlock();
            return new SetNode(targets, attribute, value, start.Line, start.Column);
        }
        if (attribute != null || targets.Count > 1) throw Error("expected '='");
        var filters = SkipOp("|") ? FilterChain(null) : [];
        EndBlock();
        var body = Body("set", start, out _, "endset");
        EndBlock();
        return new SetBlockNode(targets[0], body, filters, start.Line, start.Column);
    }

    private List<(string, Expr?)> Params()
    {
        var ps = new List<(string, Expr?)>();
        ExpectOp("(");
        while (!SkipOp(")"))
        {
            if (ps.Count > 0) ExpectOp(",");
            if (SkipOp(")")) break;
            string n = ExpectName();
            ps.Add((n, SkipOp("=") ? Expression() : null));
        }
        return ps;
    }

    private Node Macro(Token start)
    {
        string name = ExpectName();
        var ps = Params();
        EndBlock();
        var body = Body("macro", start, out _, "endmacro");
        EndBlock();
        return new MacroNode(name, ps, body, start.Line, start.Column);
    }

    private Node CallBlock(Token start)
    {
        var ps = IsOp("(") ? Params() : [];
        var call = Expression() as CallExpr ?? throw Error("expected a macro call after 'call'", start);
        EndBlock();
        var body = Body("call", start, out _, "endcall");
        EndBlock();
        return new CallBlockNode(call, ps, body, start.Line, start.Column);
    }

    private List<FilterExpr> FilterChain(Expr? value)
    {
        var list = new List<FilterExpr>();
        do
        {
            var f = Filter(value);
            list.Add(f);
        } while (SkipOp("|"));
        return list;
    }

    // ---- expressions ----

    /// <summary>An expression, or a tuple of them separated by commas (as jinja2's parse_tuple).</summary>
    private Expr Tuple(bool withCondExpr = true)
    {
        var first = Cur;
        var items = new List<Expr>();
        bool comma = false;
        while (true)
        {
            if (items.Count > 0)
            {
                if (!SkipOp(",")) break;
                comma = true;
            }
            if (Cur.Kind is TokenKind.VarEnd or TokenKind.BlockEnd || IsOp(")") || IsName("if") && !withCondExpr) break;
            items.Add(withCondExpr ? Expression() : Or());
        }
        if (items.Count == 1 && !comma) return items[0];
        if (items.Count == 0 && !comma) throw Error($"expected an expression, found {Describe(Cur)}");
        return new ListExpr(items, true, first.Line, first.Column);
    }

    private Expr Expression()
    {
        var e = Or();
        while (IsName("if"))
        {
            var t = Next();
            var test = Or();
            Expr? otherwise = SkipName("else") ? Expression() : null;
            e = new CondExpr(test, e, otherwise, t.Line, t.Column);
        }
        return e;
    }

    private Expr Or()
    {
        var e = And();
        while (IsName("or")) { var t = Next(); e = new BinaryExpr("or", e, And(), t.Line, t.Column); }
        return e;
    }

    private Expr And()
    {
        var e = Not();
        while (IsName("and")) { var t = Next(); e = new BinaryExpr("and", e, Not(), t.Line, t.Column); }
        return e;
    }

    private Expr Not()
    {
        if (IsName("not")) { var t = Next(); return new UnaryExpr("not", Not(), t.Line, t.Column); }
        return Compare();
    }

    private static readonly HashSet<string> CompareOps = ["==", "!=", "<", ">", "<=", ">="];

    private Expr Compare()
    {
        var left = Math1();
        Expr? result = null;
        while (true)
        {
            var t = Cur;
            string op;
            if (t.Kind == TokenKind.Operator && CompareOps.Contains(t.Value)) { _i++; op = t.Value; }
            else if (IsName("in")) { _i++; op = "in"; }
            else if (IsName("not") && _t[_i + 1].Kind == TokenKind.Name && _t[_i + 1].Value == "in") { _i += 2; op = "not in"; }
            else break;
            var right = Math1();
            var cmp = new BinaryExpr(op, left, right, t.Line, t.Column);
            result = result == null ? cmp : new BinaryExpr("and", result, cmp, t.Line, t.Column);   // a < b < c
            left = right;
        }
        return result ?? left;
    }

    private Expr Math1()
    {
        var e = Concat();
        while (IsOp("+") || IsOp("-")) { var t = Next(); e = new BinaryExpr(t.Value, e, Concat(), t.Line, t.Column); }
        return e;
    }

    private Expr Concat()
    {
        var e = Math2();
        while (IsOp("~")) { var t = Next(); e = new BinaryExpr("~", e, Math2(), t.Line, t.Column); }
        return e;
    }

    private Expr Math2()
    {
        var e = Pow();
        while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) { var t = Next(); e = new BinaryExpr(t.Value, e, Pow(), t.Line, t.Column); }
        return e;
    }

    private Expr Pow()
    {
        var e = Unary(true);
        while (IsOp("**")) { var t = Next(); e = new BinaryExpr("**", e, Unary(true), t.Line, t.Column); }
        return e;
    }

    private Expr Unary(bool withFilter)
    {
        Expr e;
        var t = Cur;
        if (IsOp("-") || IsOp("+")) { _i++; e = new UnaryExpr(t.Value, Unary(false), t.Line, t.Column); }
        else e = Postfix(Primary());
        return withFilter ? FilterTail(e) : e;
    }

    private Expr Primary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new Literal(true, t.Line, t.Column),
                    "false" or "False" => new Literal(false, t.Line, t.Column),
                    "none" or "None" => new Literal(null, t.Line, t.Column),
                    _ => new NameRef(t.Value, t.Line, t.Column),
                };
            case TokenKind.String:
            {
                string s = t.Value;
                while (Cur.Kind == TokenKind.String) s += Next().Value;   // adjacent literals concatenate
                return new Literal(s, t.Line, t.Column);
            }
            case TokenKind.Integer:
                return new Literal(long.TryParse(t.Value, NumberStyles.None, CultureInfo.InvariantCulture, out long l) ? (object)l : double.Parse(t.Value, CultureInfo.InvariantCulture), t.Line, t.Column);
            case TokenKind.Float:
                return new Literal(double.Parse(t.Value, CultureInfo.InvariantCulture), t.Line, t.Column);
            case TokenKind.Operator when t.Value == "(":
            {
                if (SkipOp(")")) return new ListExpr([], true, t.Line, t.Column);
                var e = Tuple();
                ExpectOp(")");
                return e;
            }
            case TokenKind.Operator when t.Value == "[":
            {
                var items = new List<Expr>();
                while (!SkipOp("]"))
                {
                    if (items.Count > 0) { ExpectOp(","); if (SkipOp("]")) break; }
                    items.Add(Expression());
                }
                return new ListExpr(items, false, t.Line, t.Column);
            }
            case TokenKind.Operator when t.Value == "{":
            {
                var items = new List<(Expr, Expr)>();
                while (!SkipOp("}"))
                {
                    if (items.Count > 0) { ExpectOp(","); if (SkipOp("}")) break; }
                    var k = Expression();
                    ExpectOp(":");
                    items.Add((k, Expression()));
                }
                return new DictExpr(items, t.Line, t.Column);
            }
            default:
                throw Error($"unexpected {Describe(t)}", t);
        }
    }

    private Expr Postfix(Expr e)
    {
        while (true)
        {
            var t = Cur;
            if (SkipOp("."))
            {
                if (Cur.Kind == TokenKind.Name) e = new GetAttr(e, Next().Value, t.Line, t.Column);
                else if (Cur.Kind == TokenKind.Integer) e = new GetItem(e, new Literal(long.Parse(Next().Value, CultureInfo.InvariantCulture), t.Line, t.Column), t.Line, t.Column);
                else throw Error("expected a name after '.'");
            }
            else if (SkipOp("[")) { e = new GetItem(e, Subscript(), t.Line, t.Column); ExpectOp("]"); }
            else if (IsOp("(")) e = new CallExpr(e, CallArgs(), t.Line, t.Column);
            else return e;
        }
    }

    private Expr Subscript()
    {
        var t = Cur;
        Expr? start = null, stop = null, step = null;
        if (!IsOp(":")) { start = Expression(); if (!IsOp(":")) return start; }
        ExpectOp(":");
        if (!IsOp("]") && !IsOp(":")) stop = Expression();
        if (SkipOp(":") && !IsOp("]")) step = Expression();
        return new SliceExpr(start, stop, step, t.Line, t.Column);
    }

    private Args CallArgs()
    {
        ExpectOp("(");
        var pos = new List<Expr>();
        var named = new List<(string, Expr)>();
        while (!SkipOp(")"))
        {
            if (pos.Count + named.Count > 0) { ExpectOp(","); if (SkipOp(")")) break; }
            if (Cur.Kind == TokenKind.Name && _t[_i + 1].Kind == TokenKind.Operator && _t[_i + 1].Value == "=")
            {
                string n = Next().Value; _i++;
                named.Add((n, Expression()));
            }
            else
            {
                if (named.Count > 0) throw Error("positional argument after a keyword argument");
                pos.Add(Expression());
            }
        }
        return new Args(pos, named);
    }

    private Expr FilterTail(Expr e)
    {
        while (true)
        {
            if (SkipOp("|")) e = Filter(e);
            else if (IsName("is")) e = Test(e);
            else if (IsOp("(")) { var t = Cur; e = new CallExpr(e, CallArgs(), t.Line, t.Column); }
            else return e;
        }
    }

    private FilterExpr Filter(Expr? value)
    {
        var t = Cur;
        string name = ExpectName();
        while (SkipOp(".")) name += "." + ExpectName();
        var args = IsOp("(") ? CallArgs() : new Args([], []);
        return new FilterExpr(value, name, args, t.Line, t.Column);
    }

    private static readonly HashSet<TokenKind> ArgStarts = [TokenKind.Name, TokenKind.String, TokenKind.Integer, TokenKind.Float];

    private Expr Test(Expr value)
    {
        var t = Next();   // 'is'
        bool negated = SkipName("not");
        string name = ExpectName();
        while (SkipOp(".")) name += "." + ExpectName();
        Args args;
        if (IsOp("(")) args = CallArgs();
        else if ((ArgStarts.Contains(Cur.Kind) || IsOp("[") || IsOp("{")) && !(IsName("else") || IsName("or") || IsName("and") || IsName("is")))
            args = new Args([Postfix(Primary())], []);
        else args = new Args([], []);
        return new TestExpr(value, name, args, negated, t.Line, t.Column);
    }
}

using System.Text;

namespace KernelEngine.Text.Jinja;

/// <summary>
/// Renders a parsed template. Scopes follow jinja2: a for loop's body and a macro call get their own scope (assignments
/// there do not leak out; each iteration starts afresh), <c>if</c> does not; <c>namespace()</c> objects carry state out
/// of loops. The environment is immutable like Hugging Face's ImmutableSandboxedEnvironment: lists and dicts cannot be
/// changed, no attribute outside the listed methods is reachable; output, steps, ranges and recursion are bounded.
/// </summary>
internal sealed class Interpreter
{
    private sealed class Scope(Scope? parent)
    {
        public readonly Dictionary<string, object?> Vars = new(StringComparer.Ordinal);
        public Scope? Parent { get; } = parent;

        public bool TryGet(string name, out object? value)
        {
            for (var s = this; s != null; s = s.Parent)
                if (s.Vars.TryGetValue(name, out value)) return true;
            value = null;
            return false;
        }
    }

    private enum Flow { Normal, Break, Continue }

    private readonly Builtins _builtins;
    private long _steps;
    private int _depth;

    public Interpreter(Builtins builtins) => _builtins = builtins;

    public string Render(List<Node> template, IReadOnlyDictionary<string, object?> variables)
    {
        var globals = new Scope(null);
        foreach (var (k, v) in _builtins.Globals) globals.Vars[k] = v;
        var top = new Scope(globals);
        foreach (var (k, v) in variables) top.Vars[k] = v;
        var sb = new StringBuilder();
        Exec(template, top, sb);
        return sb.ToString();
    }

    private Flow Exec(List<Node> nodes, Scope scope, StringBuilder output)
    {
        foreach (var n in nodes)
        {
            var f = Exec(n, scope, output);
            if (f != Flow.Normal) return f;
        }
        return Flow.Normal;
    }

    private void Write(StringBuilder output, string s, Node at)
    {
        if (output.Length + s.Length > Limits.MaxOutputChars) throw new TemplateException($"the template's output exceeds {Limits.MaxOutputChars} characters", at.Line, at.Col);
        output.Append(s);
    }

    private void Step(Node at)
    {
        if (++_steps > Limits.MaxSteps) throw new TemplateException($"the template ran more than {Limits.MaxSteps} steps", at.Line, at.Col);
    }

    private Flow Exec(Node node, Scope scope, StringBuilder output)
    {
        Step(node);
        try
        {
            switch (node)
            {
                case TextNode t: Write(output, t.Text, t); return Flow.Normal;
                case OutputNode o: Write(output, Py.Str(Eval(o.Value, scope)), o); return Flow.Normal;
                case IfNode i:
                    foreach (var (test, body) in i.Branches)
                        if (Py.Truthy(Eval(test, scope))) return Exec(body, scope, output);
                    return i.Else != null ? Exec(i.Else, scope, output) : Flow.Normal;
                case ForNode f: For(f, scope, output, Eval(f.Iterable, scope), 0); return Flow.Normal;
                case SetNode s: Set(s, scope); return Flow.Normal;
                case SetBlockNode sb:
                {
                    var inner = new StringBuilder();
                    Exec(sb.Body, scope, inner);
                    object? value = inner.ToString();
                    foreach (var filter in sb.Filters) value = ApplyFilter(filter, value, scope);
                    scope.Vars[sb.Target] = value;
                    return Flow.Normal;
                }
                case MacroNode m: scope.Vars[m.Name] = MakeMacro(m.Name, m.Params, m.Body, scope); return Flow.Normal;
                case CallBlockNode cb:
                {
                    var caller = MakeMacro("caller", cb.Params, cb.Body, scope);
                    var fn = Eval(cb.Call.Target, scope);
                    var (args, kwargs) = EvalArgs(cb.Call.Args, scope);
                    kwargs["caller"] = caller;
                    Write(output, Py.Str(Call(fn, args, kwargs, cb)), cb);
                    return Flow.Normal;
                }
                case FilterBlockNode fb:
                {
                    var inner = new StringBuilder();
                    Exec(fb.Body, scope, inner);
                    object? value = inner.ToString();
                    foreach (var filter in fb.Filters) value = ApplyFilter(filter, value, scope);
                    Write(output, Py.Str(value), fb);
                    return Flow.Normal;
                }
                case DoNode d: Eval(d.Value, scope); return Flow.Normal;
                case GenerationNode g: return Exec(g.Body, scope, output);
                case BreakNode: return Flow.Break;
                case ContinueNode: return Flow.Continue;
                default: throw new TemplateException($"cannot run a {node.GetType().Name}", node.Line, node.Col);
            }
        }
        catch (Exception e) when (e is Py.Error or InvalidOperationException or OverflowException or ArgumentException or FormatException)
        {
            throw new TemplateException(e.Message, node.Line, node.Col);
        }
    }

    private void For(ForNode f, Scope scope, StringBuilder output, object? iterable, int depth)
    {
        var all = Py.Iterate(iterable);
        List<object?> items = [];
        if (f.Filter == null) items.AddRange(all);
        else
            foreach (var item in all)
            {
                var probe = new Scope(scope);
                Bind(f.Targets, item, probe, f);
                if (Py.Truthy(Eval(f.Filter, probe))) items.Add(item);
            }
        if (items.Count == 0)
        {
            if (f.Else != null) Exec(f.Else, scope, output);
            return;
        }
        var loop = new LoopInfo
        {
            Items = items, Depth0 = depth,
            Recurse = f.Recursive ? (a, _) =>
            {
                var sb = new StringBuilder();
                Enter(f);
                try { For(f, scope, sb, a.Count > 0 ? a[0] : null, depth + 1); }
                finally { _depth--; }
                return sb.ToString();
            } : null,
        };
        for (int i = 0; i < items.Count; i++)
        {
            Step(f);
            loop.Index0 = i;
            var body = new Scope(scope);
            body.Vars["loop"] = loop;
            Bind(f.Targets, items[i], body, f);
            if (Exec(f.Body, body, output) == Flow.Break) break;
        }
    }

    private static void Bind(List<string> targets, object? item, Scope scope, Node at)
    {
        if (targets.Count == 1) { scope.Vars[targets[0]] = item; return; }
        var seq = Py.Sequence(item) ?? (item is string s ? Py.Iterate(s) : null)
            ?? throw new TemplateException($"cannot unpack a {Py.TypeName(item)} into {targets.Count} names", at.Line, at.Col);
        if (seq.Count != targets.Count) throw new TemplateException($"{(seq.Count > targets.Count ? "too many" : "not enough")} values to unpack (expected {targets.Count}, got {seq.Count})", at.Line, at.Col);
        for (int i = 0; i < targets.Count; i++) scope.Vars[targets[i]] = seq[i];
    }

    private void Set(SetNode s, Scope scope)
    {
        var value = Eval(s.Value, scope);
        if (s.Attribute != null)
        {
            if (!scope.TryGet(s.Targets[0], out var target) || target is not Namespace ns)
                throw new TemplateException($"cannot assign attribute on non-namespace object '{s.Targets[0]}'", s.Line, s.Col);
            ns.Attributes[s.Attribute] = value;
            return;
        }
        Bind(s.Targets, value, scope, s);
    }

    private void Enter(Node at)
    {
        if (++_depth > Limits.MaxDepth) { _depth--; throw new TemplateException($"recursion deeper than {Limits.MaxDepth}", at.Line, at.Col); }
    }

    private Callable MakeMacro(string name, List<(string Name, Expr? Default)> ps, List<Node> body, Scope definition) => (args, kwargs) =>
    {
        var scope = new Scope(definition);
        var extra = new List<object?>();
        for (int i = 0; i < args.Count; i++)
            if (i < ps.Count) scope.Vars[ps[i].Name] = args[i];
            else extra.Add(args[i]);
        var extraKw = new PyDict();
        foreach (var (k, v) in kwargs)
            if (ps.Any(p => p.Name == k) || k == "caller") scope.Vars[k] = v;
            else extraKw[k] = v;
        foreach (var (p, dflt) in ps)
            if (!scope.Vars.ContainsKey(p)) scope.Vars[p] = dflt != null ? Eval(dflt, scope) : new Undefined($"parameter '{p}' was not provided");
        scope.Vars["varargs"] = extra.ToArray();
        scope.Vars["kwargs"] = extraKw;
        var sb = new StringBuilder();
        Enter(body.Count > 0 ? body[0] : new TextNode("", 0, 0));
        try { Exec(body, scope, sb); }
        finally { _depth--; }
        return sb.ToString();
    };

    private (List<object?>, Dictionary<string, object?>) EvalArgs(Args a, Scope scope)
    {
        var args = a.Positional.Select(e => Eval(e, scope)).ToList();
        var kwargs = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (k, e) in a.Named) kwargs[k] = Eval(e, scope);
        return (args, kwargs);
    }

    private static object? Call(object? fn, List<object?> args, Dictionary<string, object?> kwargs, Node at) => fn switch
    {
        Callable c => c(args, kwargs),
        LoopInfo { Recurse: { } recurse } => recurse(args, kwargs),
        Undefined u => throw new TemplateException(u.Hint, at.Line, at.Col),
        _ => throw new TemplateException($"'{Py.TypeName(fn)}' object is not callable", at.Line, at.Col),
    };

    private object? ApplyFilter(FilterExpr f, object? value, Scope scope)
    {
        var (args, kwargs) = EvalArgs(f.Args, scope);
        return _builtins.Filter(f.Name, value, args, kwargs, f);
    }

    private object? Eval(Expr e, Scope scope)
    {
        Step(e);
        try
        {
            return EvalCore(e, scope);
        }
        catch (Exception ex) when (ex is Py.Error or InvalidOperationException or OverflowException or ArgumentException or FormatException)
        {
            throw new TemplateException(ex.Message, e.Line, e.Col);
        }
    }

    private object? EvalCore(Expr e, Scope scope)
    {
        switch (e)
        {
            case Literal l: return l.Value;
            case NameRef n: return scope.TryGet(n.Name, out var v) ? v : new Undefined($"'{n.Name}' is undefined");
            case ListExpr l:
            {
                var items = l.Items.Select(x => Eval(x, scope)).ToList();
                return l.IsTuple ? items.ToArray() : items;
            }
            case DictExpr d:
            {
                var dict = new PyDict();
                foreach (var (k, val) in d.Items)
                {
                    var key = Eval(k, scope);
                    dict[key as string ?? Py.Str(key)] = Eval(val, scope);
                }
                return dict;
            }
            case GetAttr g: return _builtins.GetAttr(Defined(Eval(g.Target, scope), g), g.Name);
            case GetItem g:
            {
                var target = Defined(Eval(g.Target, scope), g);
                if (g.Index is SliceExpr s)
                    return Builtins.Slice(target, Opt(s.Start, scope), Opt(s.Stop, scope), Opt(s.Step, scope));
                return _builtins.GetItem(target, Eval(g.Index, scope));
            }
            case CallExpr c:
            {
                var fn = Eval(c.Target, scope);
                var (args, kwargs) = EvalArgs(c.Args, scope);
                return Call(fn, args, kwargs, c);
            }
            case FilterExpr f: return ApplyFilter(f, f.Value == null ? null : Eval(f.Value, scope), scope);
            case TestExpr t:
            {
                var value = Eval(t.Value, scope);
                var (args, kwargs) = EvalArgs(t.Args, scope);
                bool r = _builtins.Test(t.Name, value, args, t);
                return t.Negated ? !r : r;
            }
            case UnaryExpr u:
            {
                var x = Eval(u.Operand, scope);
                return u.Op switch
                {
                    "not" => !Py.Truthy(x),
                    "-" => x switch { long l => (object)-l, double d => -d, bool b => b ? -1L : 0L, _ => throw new Py.Error($"bad operand type for unary -: '{Py.TypeName(x)}'") },
                    _ => Py.IsNumber(x) ? x is bool b2 ? (b2 ? 1L : 0L) : x : throw new Py.Error($"bad operand type for unary +: '{Py.TypeName(x)}'"),
                };
            }
            case BinaryExpr b:
            {
                if (b.Op == "and") { var l = Eval(b.Left, scope); return Py.Truthy(l) ? Eval(b.Right, scope) : l; }
                if (b.Op == "or") { var l = Eval(b.Left, scope); return Py.Truthy(l) ? l : Eval(b.Right, scope); }
                var left = Eval(b.Left, scope);
                var right = Eval(b.Right, scope);
                return b.Op switch
                {
                    "~" => Py.Str(left) + Py.Str(right),
                    "==" => Py.Equals(left, right),
                    "!=" => !Py.Equals(left, right),
                    "<" => Py.Compare(Defined(left, b), Defined(right, b), "<") < 0,
                    ">" => Py.Compare(Defined(left, b), Defined(right, b), ">") > 0,
                    "<=" => Py.Compare(Defined(left, b), Defined(right, b), "<=") <= 0,
                    ">=" => Py.Compare(Defined(left, b), Defined(right, b), ">=") >= 0,
                    "in" => Py.Contains(right, left),
                    "not in" => !Py.Contains(right, left),
                    _ => Py.Binary(b.Op, Defined(left, b), Defined(right, b)),
                };
            }
            case CondExpr c:
                return Py.Truthy(Eval(c.Test, scope)) ? Eval(c.Then, scope)
                    : c.Else != null ? Eval(c.Else, scope) : new Undefined("the conditional expression evaluated to false and had no else");
            default:
                throw new TemplateException($"cannot evaluate a {e.GetType().Name}", e.Line, e.Col);
        }
    }

    private object? Opt(Expr? e, Scope scope) => e == null ? null : Eval(e, scope);

    /// <summary>Using an undefined value (beyond printing, testing or iterating it) is jinja2's UndefinedError.</summary>
    private static object? Defined(object? v, Node at) => v is Undefined u ? throw new TemplateException(u.Hint, at.Line, at.Col) : v;
}

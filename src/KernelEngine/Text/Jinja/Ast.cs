namespace KernelEngine.Text.Jinja;

/// <summary>A template node: where it starts (for error messages).</summary>
internal abstract record Node(int Line, int Col);

// ---- expressions ----
internal abstract record Expr(int Line, int Col) : Node(Line, Col);
internal sealed record Literal(object? Value, int Line, int Col) : Expr(Line, Col);
internal sealed record NameRef(string Name, int Line, int Col) : Expr(Line, Col);
internal sealed record ListExpr(List<Expr> Items, bool IsTuple, int Line, int Col) : Expr(Line, Col);
internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items, int Line, int Col) : Expr(Line, Col);
internal sealed record GetAttr(Expr Target, string Name, int Line, int Col) : Expr(Line, Col);
internal sealed record GetItem(Expr Target, Expr Index, int Line, int Col) : Expr(Line, Col);
internal sealed record SliceExpr(Expr? Start, Expr? Stop, Expr? Step, int Line, int Col) : Expr(Line, Col);
internal sealed record Args(List<Expr> Positional, List<(string Name, Expr Value)> Named);
internal sealed record CallExpr(Expr Target, Args Args, int Line, int Col) : Expr(Line, Col);
internal sealed record FilterExpr(Expr? Value, string Name, Args Args, int Line, int Col) : Expr(Line, Col);
internal sealed record TestExpr(Expr Value, string Name, Args Args, bool Negated, int Line, int Col) : Expr(Line, Col);
internal sealed record UnaryExpr(string Op, Expr Operand, int Line, int Col) : Expr(Line, Col);
internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Line, int Col) : Expr(Line, Col);
internal sealed record CondExpr(Expr Test, Expr Then, Expr? Else, int Line, int Col) : Expr(Line, Col);

// ---- statements ----
internal sealed record TextNode(string Text, int Line, int Col) : Node(Line, Col);
internal sealed record OutputNode(Expr Value, int Line, int Col) : Node(Line, Col);
internal sealed record IfNode(List<(Expr Test, List<Node> Body)> Branches, List<Node>? Else, int Line, int Col) : Node(Line, Col);
internal sealed record ForNode(List<string> Targets, Expr Iterable, Expr? Filter, List<Node> Body, List<Node>? Else, bool Recursive, int Line, int Col) : Node(Line, Col);
/// <summary>{% set a = x %}, {% set a, b = x %}, {% set ns.attr = x %} (Attribute non-null).</summary>
internal sealed record SetNode(List<string> Targets, string? Attribute, Expr Value, int Line, int Col) : Node(Line, Col);
internal sealed record SetBlockNode(string Target, List<Node> Body, List<FilterExpr> Filters, int Line, int Col) : Node(Line, Col);
internal sealed record MacroNode(string Name, List<(string Name, Expr? Default)> Params, List<Node> Body, int Line, int Col) : Node(Line, Col);
internal sealed record CallBlockNode(CallExpr Call, List<(string Name, Expr? Default)> Params, List<Node> Body, int Line, int Col) : Node(Line, Col);
internal sealed record FilterBlockNode(List<FilterExpr> Filters, List<Node> Body, int Line, int Col) : Node(Line, Col);
internal sealed record DoNode(Expr Value, int Line, int Col) : Node(Line, Col);
internal sealed record BreakNode(int Line, int Col) : Node(Line, Col);
internal sealed record ContinueNode(int Line, int Col) : Node(Line, Col);
/// <summary>Hugging Face's {% generation %} marks assistant text for masks; rendering passes its body through.</summary>
internal sealed record GenerationNode(List<Node> Body, int Line, int Col) : Node(Line, Col);

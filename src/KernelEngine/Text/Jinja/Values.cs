namespace KernelEngine.Text.Jinja;

/// <summary>
/// Template values follow Python's data model: null is None, <see cref="Undefined"/> a missing name or key, bool, long
/// (int), double (float), string, <see cref="List{T}"/> of object (list), object[] (tuple), <see cref="PyDict"/> (dict,
/// insertion-ordered), <see cref="Namespace"/>, <see cref="Callable"/>; loops expose a <see cref="LoopInfo"/>.
/// </summary>
internal sealed class Undefined
{
    public Undefined(string hint) => Hint = hint;
    /// <summary>Why it is undefined ("'x' is undefined", "'dict object' has no attribute 'y'"), raised when it is used.</summary>
    public string Hint { get; }
}

/// <summary>A Python dict: string keys (as JSON and chat messages have them), insertion order kept.</summary>
internal sealed class PyDict : OrderedDictionary<string, object?>
{
    public PyDict() : base(StringComparer.Ordinal) { }
}

/// <summary>jinja2's namespace(): the one mutable object a template may assign attributes on (<c>{% set ns.x = 1 %}</c>).</summary>
internal sealed class Namespace
{
    public PyDict Attributes { get; } = new();
}

/// <summary>A function a template can call: globals, filters used as functions, string/dict methods, macros.</summary>
internal delegate object? Callable(List<object?> args, Dictionary<string, object?> kwargs);

/// <summary>The <c>loop</c> variable of a for loop.</summary>
internal sealed class LoopInfo
{
    public required IReadOnlyList<object?> Items { get; init; }
    public int Index0 { get; set; }
    public int Depth0 { get; init; }
    public Callable? Recurse { get; init; }

    public object? Get(string name) => name switch
    {
        "index" => (long)(Index0 + 1),
        "index0" => (long)Index0,
        "revindex" => (long)(Items.Count - Index0),
        "revindex0" => (long)(Items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == Items.Count - 1,
        "length" => (long)Items.Count,
        "depth" => (long)(Depth0 + 1),
        "depth0" => (long)Depth0,
        "previtem" => Index0 > 0 ? Items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Index0 + 1 < Items.Count ? Items[Index0 + 1] : new Undefined("there is no next item"),
        "cycle" => (Callable)((a, _) => a.Count == 0 ? throw new InvalidOperationException("no items for cycling given") : a[Index0 % a.Count]),
        "changed" => (Callable)((a, _) => throw new InvalidOperationException("loop.changed is not supported")),
        _ => new Undefined($"'LoopContext' object has no attribute '{name}'"),
    };
}

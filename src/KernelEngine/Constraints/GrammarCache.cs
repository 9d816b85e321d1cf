using System.Collections.Concurrent;

namespace KernelEngine.Constraints;

/// <summary>Compiled grammars by their text (GBNF, or a JSON Schema): a grammar given with every request is parsed once.</summary>
internal static class GrammarCache
{
    private const int MaxEntries = 256;
    private static readonly ConcurrentDictionary<string, Grammar> Grammars = new(StringComparer.Ordinal);

    /// <summary>The grammar of a generation's settings, or null when it has none.</summary>
    public static Grammar? Of(GenerationSettings s)
    {
        if (s.Grammar != null && s.JsonSchema != null) throw new InvalidRequestException("give a grammar or a JSON schema, not both");
        if (s.Grammar is { } gbnf) return Get("gbnf:" + gbnf, () => Grammar.Parse(gbnf));
        if (s.JsonSchema is { } schema) return Get("schema:" + schema, () => JsonSchemaGrammar.Compile(schema));
        return null;
    }

    private static Grammar Get(string key, Func<Grammar> compile)
    {
        if (Grammars.TryGetValue(key, out var g)) return g;
        g = compile();
        if (Grammars.Count >= MaxEntries) Grammars.Clear();
        return Grammars.GetOrAdd(key, g);
    }
}

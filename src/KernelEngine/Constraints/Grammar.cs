namespace KernelEngine.Constraints;

/// <summary>
/// A context-free grammar over Unicode code points, as llama.cpp's GBNF describes one: rules of alternatives, each a
/// sequence of terminals (a set of code-point ranges, possibly negated) and references to rules. Repetition and
/// groups are compiled into helper rules. Parse one with <see cref="Parse"/>; <see cref="JsonSchemaGrammar"/> writes one
/// from a JSON Schema.
/// </summary>
public sealed class Grammar
{
    internal Grammar(IReadOnlyList<Rule> rules, int root, string source)
    {
        Rules = rules; Root = root; Source = source;
    }

    internal IReadOnlyList<Rule> Rules { get; }
    internal int Root { get; }
    /// <summary>The GBNF text the grammar was parsed from.</summary>
    public string Source { get; }

    /// <summary>Parses GBNF (llama.cpp's grammar format; the start rule is <c>root</c>). A grammar it cannot read is a
    /// <see cref="InvalidRequestException"/> that says what and where.</summary>
    public static Grammar Parse(string gbnf) => GbnfParser.Parse(gbnf);

    internal sealed class Rule(string name)
    {
        public string Name { get; } = name;
        public List<Element[]> Alternatives { get; } = new();
    }

    /// <summary>A terminal (code-point ranges, <see cref="Negated"/> for "any but") or a reference to rule <see cref="RuleRef"/>.</summary>
    internal sealed class Element
    {
        public int RuleRef = -1;
        public (int Lo, int Hi)[] Ranges = [];
        public bool Negated;
        public bool IsTerminal => RuleRef < 0;

        public bool Matches(int cp)
        {
            bool inRange = false;
            foreach (var (lo, hi) in Ranges)
                if (cp >= lo && cp <= hi) { inRange = true; break; }
            return inRange != Negated;
        }
    }
}

using System.Runtime.CompilerServices;
using System.Text;
using KernelEngine.Text;

namespace KernelEngine.Constraints;

/// <summary>The vocabulary as a trie of code points (built once per tokenizer): a grammar mask walks it, so tokens that
/// share a prefix share the work of matching it. Control tokens and pieces that are not whole UTF-8 characters (byte
/// fallback halves of a multi-byte character) are left out: a grammar never allows them.</summary>
internal sealed class TokenTrie
{
    internal sealed class Node
    {
        public readonly List<(int Cp, Node Child)> Children = new();
        public readonly List<int> Tokens = new();

        public Node Child(int cp)
        {
            foreach (var (c, n) in Children) if (c == cp) return n;
            var node = new Node();
            Children.Add((cp, node));
            return node;
        }
    }

    private static readonly ConditionalWeakTable<Tokenizer, TokenTrie> Cache = new();

    public Node Root { get; } = new();

    public static TokenTrie Of(Tokenizer tokenizer) => Cache.GetValue(tokenizer, t => new TokenTrie(t));

    private TokenTrie(Tokenizer tok)
    {
        for (int id = 0; id < tok.VocabSize; id++)
        {
            if (CodePoints(tok.TokenBytes(id)) is not { Length: > 0 } cps) continue;
            var n = Root;
            foreach (int cp in cps) n = n.Child(cp);
            n.Tokens.Add(id);
        }
    }

    private static readonly UTF8Encoding Strict = new(false, throwOnInvalidBytes: true);

    /// <summary>The code points of a token's bytes, or null when they are not whole UTF-8 characters.</summary>
    public static int[]? CodePoints(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty) return null;
        string s;
        try { s = Strict.GetString(bytes); }
        catch (DecoderFallbackException) { return null; }
        var cps = new List<int>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            int cp = char.ConvertToUtf32(s, i);
            if (cp > 0xFFFF) i++;
            cps.Add(cp);
        }
        return cps.ToArray();
    }
}

using System.Runtime.CompilerServices;
using KernelEngine.Text;

namespace KernelEngine.Constraints;

/// <summary>The vocabulary as a trie of bytes (built once per tokenizer): a grammar mask walks it, so tokens that share a
/// prefix share the work of matching it. Control tokens (no bytes) are left out: a grammar never allows them; pieces
/// that end inside a UTF-8 character are in (the grammar matcher keeps the partial character pending).</summary>
internal sealed class TokenTrie
{
    internal sealed class Node
    {
        public readonly List<(byte Byte, Node Child)> Children = new();
        public readonly List<int> Tokens = new();

        public Node Child(byte b)
        {
            foreach (var (c, n) in Children) if (c == b) return n;
            var node = new Node();
            Children.Add((b, node));
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
            var bytes = tok.TokenBytes(id);
            if (bytes.IsEmpty) continue;
            var n = Root;
            foreach (byte b in bytes) n = n.Child(b);
            n.Tokens.Add(id);
        }
    }
}

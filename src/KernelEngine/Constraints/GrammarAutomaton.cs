using System.Runtime.CompilerServices;
using KernelEngine.Text;

namespace KernelEngine.Constraints;

/// <summary>
/// A grammar's states over one vocabulary, shared by every generation that uses the grammar (thread-safe). A state is
/// where a text can stand in the grammar (llama.cpp's stacks): the set of positions at a terminal, each with the rest
/// of its rule chain as an interned parent frame, and whether the text so far is a whole sentence. States are interned,
/// so a step from a state by a character is computed once, and a state's token mask — a walk of the vocabulary's trie
/// letting through exactly the tokens whose text the grammar can continue with — once for all generations: a schema's
/// documents keep coming back to the same few states (the inside of a string, a list's separator).
/// </summary>
internal sealed class GrammarAutomaton
{
    /// <summary>A position: element <see cref="Pos"/> of an alternative, then <see cref="Parent"/>'s (null: the root's end).
    /// Interned, so equal positions are the same object.</summary>
    internal sealed class Frame(Grammar.Element[] alt, int pos, Frame? parent, int id)
    {
        public readonly Grammar.Element[] Alt = alt;
        public readonly int Pos = pos;
        public readonly Frame? Parent = parent;
        public readonly int Id = id;
    }

    /// <summary>A set of leaf positions and whether the root may end here; interned.</summary>
    internal sealed class State(Frame[] leaves, bool accepting)
    {
        public readonly Frame[] Leaves = leaves;
        public readonly bool Accepting = accepting;
        public readonly Dictionary<int, State> Steps = new();
        public ulong[]? Mask;   // bit per token: allowed next
        public bool Dead => Leaves.Length == 0 && !Accepting;
    }

    private readonly record struct FrameKey(Grammar.Element[] Alt, int Pos, Frame? Parent)
    {
        public bool Equals(FrameKey o) => ReferenceEquals(Alt, o.Alt) && Pos == o.Pos && ReferenceEquals(Parent, o.Parent);
        public override int GetHashCode() => HashCode.Combine(RuntimeHelpers.GetHashCode(Alt), Pos, Parent?.Id ?? -1);
    }

    private sealed class StateKey(int[] ids, bool accepting) : IEquatable<StateKey>
    {
        private readonly int[] _ids = ids;
        private readonly bool _accepting = accepting;
        public bool Equals(StateKey? o) => o != null && o._accepting == _accepting && o._ids.AsSpan().SequenceEqual(_ids);
        public override bool Equals(object? obj) => Equals(obj as StateKey);
        public override int GetHashCode()
        {
            var h = new HashCode();
            h.Add(_accepting);
            foreach (int i in _ids) h.Add(i);
            return h.ToHashCode();
        }
    }

    /// <summary>Masks kept (4 KiB each for a 32k vocabulary): a grammar whose documents wander through more states
    /// than this computes the rest each time.</summary>
    private const int MaxCachedMasks = 8192;
    private static readonly ConditionalWeakTable<Grammar, ConditionalWeakTable<Tokenizer, GrammarAutomaton>> Shared = new();
    private readonly Grammar _g;
    private readonly TokenTrie _trie;
    private readonly Tokenizer _tok;
    private readonly Dictionary<FrameKey, Frame> _frames = new();
    private readonly Dictionary<StateKey, State> _states = new();
    private readonly Lock _gate = new();
    private int _cachedMasks;

    /// <summary>The automaton of <paramref name="grammar"/> over <paramref name="tokenizer"/>'s vocabulary (made once).</summary>
    public static GrammarAutomaton Of(Grammar grammar, Tokenizer tokenizer) =>
        Shared.GetValue(grammar, _ => new()).GetValue(tokenizer, t => new GrammarAutomaton(grammar, t));

    private GrammarAutomaton(Grammar grammar, Tokenizer tokenizer)
    {
        _g = grammar; _tok = tokenizer;
        _trie = TokenTrie.Of(tokenizer);
        var leaves = new List<Frame>();
        bool accepting = false;
        var seen = new HashSet<Frame>(ReferenceEqualityComparer.Instance);
        foreach (var alt in _g.Rules[_g.Root].Alternatives) Expand(Intern(alt, 0, null), leaves, seen, ref accepting);
        Start = InternState(leaves, accepting);
        if (Start.Dead) throw new InvalidRequestException("grammar: the root rule matches nothing");
        End = InternState(new List<Frame>(), true);
    }

    /// <summary>Where every text starts.</summary>
    public State Start { get; }
    /// <summary>After an end token.</summary>
    public State End { get; }
    public Tokenizer Tokenizer => _tok;

    private Frame Intern(Grammar.Element[] alt, int pos, Frame? parent)
    {
        var key = new FrameKey(alt, pos, parent);
        if (!_frames.TryGetValue(key, out var f)) _frames[key] = f = new Frame(alt, pos, parent, _frames.Count);
        return f;
    }

    private State InternState(List<Frame> leaves, bool accepting)
    {
        leaves.Sort((a, b) => a.Id.CompareTo(b.Id));
        var key = new StateKey(leaves.Select(f => f.Id).ToArray(), accepting);
        if (!_states.TryGetValue(key, out var s)) _states[key] = s = new State(leaves.ToArray(), accepting);
        return s;
    }

    /// <summary>Follows rule references and finished alternatives until every path stands at a terminal (a leaf) or at
    /// the root's end (accepting).</summary>
    private void Expand(Frame f, List<Frame> leaves, HashSet<Frame> seen, ref bool accepting)
    {
        while (true)
        {
            if (f.Pos == f.Alt.Length)
            {
                if (f.Parent == null) { accepting = true; return; }
                f = f.Parent;
                continue;
            }
            var e = f.Alt[f.Pos];
            if (e.IsTerminal)
            {
                if (seen.Add(f)) leaves.Add(f);
                return;
            }
            if (!seen.Add(f)) return;   // this rule reference was expanded already on this step
            var next = Intern(f.Alt, f.Pos + 1, f.Parent);
            foreach (var alt in _g.Rules[e.RuleRef].Alternatives) Expand(Intern(alt, 0, next), leaves, seen, ref accepting);
            return;
        }
    }

    /// <summary>The state after reading code point <paramref name="cp"/> (computed once per state and character).</summary>
    private State Step(State s, int cp)
    {
        if (s.Steps.TryGetValue(cp, out var next)) return next;
        var leaves = new List<Frame>();
        bool accepting = false;
        HashSet<Frame>? seen = null;
        foreach (var f in s.Leaves)
        {
            if (!f.Alt[f.Pos].Matches(cp)) continue;
            seen ??= new HashSet<Frame>(ReferenceEqualityComparer.Instance);
            Expand(Intern(f.Alt, f.Pos + 1, f.Parent), leaves, seen, ref accepting);
        }
        return s.Steps[cp] = InternState(leaves, accepting);
    }

    /// <summary>The tokens allowed after state s, a bit per token of a vocabulary of <paramref name="vocab"/> (computed
    /// once per state): tokens whose text the grammar can continue with, and end tokens when s is a whole sentence;
    /// never control tokens or pieces that are not whole UTF-8 characters.</summary>
    public ulong[] Mask(State s, int vocab, Utf8Partial pending = default)
    {
        lock (_gate)
        {
            if (pending.IsEmpty && s.Mask is { } cached && cached.Length == (vocab + 63) / 64) return cached;
            var bits = new ulong[(vocab + 63) / 64];
            Walk(_trie.Root, s, pending, bits, vocab);
            if (s.Accepting && pending.IsEmpty)
                foreach (int e in _tok.EosIds) if ((uint)e < (uint)vocab) bits[e >> 6] |= 1UL << e;
            if (pending.IsEmpty && _cachedMasks < MaxCachedMasks) { s.Mask = bits; _cachedMasks++; }
            return bits;
        }
    }

    /// <summary>Marks the tokens under <paramref name="node"/> that the grammar allows from s with a character pending.</summary>
    private void Walk(TokenTrie.Node node, State s, Utf8Partial pending, ulong[] bits, int vocab)
    {
        foreach (var (b, child) in node.Children)
        {
            if (!pending.Push(b, out var partial, out int cp)) continue;
            var next = s;
            if (cp >= 0)
            {
                next = Step(s, cp);
                if (next.Dead) continue;
            }
            else if (!Viable(s, partial)) continue;
            foreach (int id in child.Tokens) if (id < vocab) bits[id >> 6] |= 1UL << id;
            if (child.Children.Count > 0 && (cp < 0 || next.Leaves.Length > 0)) Walk(child, next, partial, bits, vocab);
        }
    }

    /// <summary>Whether some character that <paramref name="partial"/> can still become is allowed from s.</summary>
    private static bool Viable(State s, Utf8Partial partial)
    {
        var (lo, hi) = partial.Range;
        foreach (var f in s.Leaves)
        {
            var e = f.Alt[f.Pos];
            if (e.Negated) return true;   // a negated class leaves almost every character: assume one of these
            foreach (var (a, z) in e.Ranges)
                if (a <= hi && z >= lo) return true;
        }
        return false;
    }

    private int[]? _ruleMin;
    private readonly Dictionary<Frame, int> _frameCost = new(ReferenceEqualityComparer.Instance);

    /// <summary>The fewest characters that make the text after state s a whole sentence (0 when it is one): what a
    /// generation must still write, at most one token a character, to end inside the grammar.</summary>
    public int Distance(State s)
    {
        if (s.Accepting) return 0;
        lock (_gate)
        {
            _ruleMin ??= RuleMinimums();
            int best = int.MaxValue;
            foreach (var f in s.Leaves) best = Math.Min(best, Cost(f));
            return best;
        }
    }

    /// <summary>Shortest sentence of each rule, in characters (a fixed point; unreachable ends stay at int.MaxValue / 4).</summary>
    private int[] RuleMinimums()
    {
        const int Inf = int.MaxValue / 4;
        var min = Enumerable.Repeat(Inf, _g.Rules.Count).ToArray();
        for (bool changed = true; changed;)
        {
            changed = false;
            for (int r = 0; r < min.Length; r++)
                foreach (var alt in _g.Rules[r].Alternatives)
                {
                    long sum = 0;
                    foreach (var e in alt) sum += e.IsTerminal ? 1 : min[e.RuleRef];
                    if (sum < min[r]) { min[r] = (int)Math.Min(sum, Inf); changed = true; }
                }
        }
        return min;
    }

    private int Cost(Frame f)
    {
        if (_frameCost.TryGetValue(f, out int c)) return c;
        long sum = 0;
        for (int i = f.Pos; i < f.Alt.Length; i++) sum += f.Alt[i].IsTerminal ? 1 : _ruleMin![f.Alt[i].RuleRef];
        if (f.Parent != null) sum += Cost(f.Parent);
        return _frameCost[f] = (int)Math.Min(sum, int.MaxValue / 4);
    }

    /// <summary>The state (and the character left pending) after token <paramref name="id"/> from s; null when the
    /// grammar does not allow it.</summary>
    public (State State, Utf8Partial Pending)? Advance(State s, int id, Utf8Partial pending = default)
    {
        if (_tok.IsEos(id)) return s.Accepting && pending.IsEmpty ? (End, default) : null;
        var bytes = _tok.TokenBytes(id);
        if (bytes.IsEmpty) return null;
        lock (_gate)
        {
            foreach (byte b in bytes)
            {
                if (!pending.Push(b, out var after, out int cp)) return null;   // (not "out pending": Push reads its receiver)
                pending = after;
                if (cp < 0) continue;
                if (s.Leaves.Length == 0) return null;
                s = Step(s, cp);
                if (s.Dead) return null;
            }
        }
        return !pending.IsEmpty && !Viable(s, pending) ? null : (s, pending);
    }
}

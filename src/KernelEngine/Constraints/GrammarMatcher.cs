using System.Runtime.CompilerServices;
using KernelEngine.Text;

namespace KernelEngine.Constraints;

/// <summary>
/// Where a generation stands in a grammar (llama.cpp's stacks): the set of positions at a terminal that the text so
/// far can be in, each with the rest of its rule chain as an interned parent frame, and whether the text so far is a
/// whole sentence of the grammar. <see cref="Mask"/> walks the vocabulary's trie from there and lets through exactly
/// the tokens whose text the grammar can continue with (and an end token once the sentence is whole); <see cref="Accept"/>
/// moves on by a chosen token. States are interned, so a step from a state by a character is computed once, and the
/// mask of a state that recurs (the inside of a string, a list's separator) is computed once per generation.
/// </summary>
internal sealed class GrammarMatcher
{
    /// <summary>A position: element <see cref="Pos"/> of an alternative, then <see cref="Parent"/>'s (null: the root's end).
    /// Interned, so equal positions are the same object.</summary>
    private sealed class Frame(Grammar.Element[] alt, int pos, Frame? parent, int id)
    {
        public readonly Grammar.Element[] Alt = alt;
        public readonly int Pos = pos;
        public readonly Frame? Parent = parent;
        public readonly int Id = id;
    }

    /// <summary>A set of leaf positions and whether the root may end here; interned.</summary>
    private sealed class State(Frame[] leaves, bool accepting)
    {
        public readonly Frame[] Leaves = leaves;
        public readonly bool Accepting = accepting;
        public readonly Dictionary<int, State> Steps = new();
        public bool[]? Mask;
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

    private const int MaxCachedMasks = 256;
    private readonly Grammar _g;
    private readonly TokenTrie _trie;
    private readonly Tokenizer _tok;
    private readonly Dictionary<FrameKey, Frame> _frames = new();
    private readonly Dictionary<StateKey, State> _states = new();
    private int _cachedMasks;
    private State _state;

    public GrammarMatcher(Grammar grammar, Tokenizer tokenizer)
    {
        _g = grammar; _tok = tokenizer;
        _trie = TokenTrie.Of(tokenizer);
        var leaves = new List<Frame>();
        bool accepting = false;
        var seen = new HashSet<Frame>(ReferenceEqualityComparer.Instance);
        foreach (var alt in _g.Rules[_g.Root].Alternatives) Expand(Intern(alt, 0, null), leaves, seen, ref accepting);
        _state = InternState(leaves, accepting);
        if (_state.Dead) throw new InvalidRequestException("grammar: the root rule matches nothing");
    }

    /// <summary>The text so far is a whole sentence of the grammar (an end token may come).</summary>
    public bool IsComplete => _state.Accepting;
    /// <summary>The grammar allows more text.</summary>
    public bool CanContinue => _state.Leaves.Length > 0;

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

    /// <summary>Sets every token the grammar does not allow next to −∞: tokens whose text it cannot continue with,
    /// control tokens, pieces that are not whole UTF-8 characters; end tokens unless the text is a whole sentence.</summary>
    public void Mask(Span<float> logits)
    {
        var allowed = _state.Mask;
        if (allowed == null || allowed.Length != logits.Length)
        {
            allowed = new bool[logits.Length];
            Walk(_trie.Root, _state, allowed);
            if (_state.Accepting)
                foreach (int e in _tok.EosIds) if ((uint)e < (uint)allowed.Length) allowed[e] = true;
            if (_cachedMasks < MaxCachedMasks) { _state.Mask = allowed; _cachedMasks++; }
        }
        bool any = false;
        for (int i = 0; i < logits.Length; i++)
        {
            if (!allowed[i]) logits[i] = float.NegativeInfinity;
            else any = true;
        }
        if (!any) throw new InvalidRequestException("grammar: no token of the vocabulary can continue the text (the grammar needs a character the vocabulary cannot spell)");
    }

    private void Walk(TokenTrie.Node node, State s, bool[] allowed)
    {
        foreach (var (cp, child) in node.Children)
        {
            var next = Step(s, cp);
            if (next.Dead) continue;
            foreach (int id in child.Tokens) if (id < allowed.Length) allowed[id] = true;
            if (next.Leaves.Length > 0 && child.Children.Count > 0) Walk(child, next, allowed);
        }
    }

    /// <summary>Moves on by token <paramref name="id"/> (which <see cref="Mask"/> allowed).</summary>
    public void Accept(int id)
    {
        if (_tok.IsEos(id))
        {
            if (!IsComplete) throw new InvalidOperationException("grammar: an end token before the text is complete");
            _state = InternState(new List<Frame>(), true);
            return;
        }
        var cps = TokenTrie.CodePoints(_tok.TokenBytes(id)) ?? throw new InvalidOperationException($"grammar: token {id} is not whole UTF-8 characters");
        var s = _state;
        foreach (int cp in cps)
        {
            if (s.Leaves.Length == 0) throw new InvalidOperationException($"grammar: token {id} runs past the end of the grammar");
            s = Step(s, cp);
        }
        if (s.Dead) throw new InvalidOperationException($"grammar: token {id} does not continue the text");
        _state = s;
    }
}

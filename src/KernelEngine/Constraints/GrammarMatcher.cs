using System.Runtime.CompilerServices;
using KernelEngine.Text;

namespace KernelEngine.Constraints;

/// <summary>
/// Where one generation stands in its grammar (a state of the grammar's shared <see cref="GrammarAutomaton"/>):
/// <see cref="Mask"/> sets every token it does not allow next to −∞, <see cref="Accept"/> moves on by the chosen one.
/// </summary>
internal sealed class GrammarMatcher(Grammar grammar, Tokenizer tokenizer)
{
    private readonly GrammarAutomaton _a = GrammarAutomaton.Of(grammar, tokenizer);
    private GrammarAutomaton.State? _state;
    private Utf8Partial _pending;   // a character a token ended inside of
    private GrammarAutomaton.State State => _state ??= _a.Start;

    /// <summary>The text so far is a whole sentence of the grammar (an end token may come).</summary>
    public bool IsComplete => State.Accepting && _pending.IsEmpty;

    /// <summary>A matcher at the same place (speculative decoding follows a draft with one).</summary>
    public GrammarMatcher Clone() => new(grammar, tokenizer) { _state = State, _pending = _pending };

    /// <summary>The grammar allows more text (false once a whole sentence can take nothing more).</summary>
    public bool CanContinue => State.Leaves.Length > 0 || !_pending.IsEmpty;

    /// <summary>Whether token <paramref name="id"/> may come next.</summary>
    public bool Allows(int id) => _a.Advance(State, id, _pending) != null;

    /// <summary>Characters still needed to end, the pending one counted.</summary>
    private int Distance(GrammarAutomaton.State s, Utf8Partial pending) => pending.IsEmpty ? _a.Distance(s) : _a.Distance(s) + 1;

    /// <summary>Sets every token the grammar does not allow next to −∞. With <paramref name="tokensLeft"/> (this one
    /// included) close to what the text still needs to end, only tokens after which it can still end in time are
    /// allowed (an end token counted), so a document the budget would cut is closed by the shortest way instead.</summary>
    public void Mask(Span<float> logits, int tokensLeft = int.MaxValue)
    {
        var bits = _a.Mask(State, logits.Length, _pending);
        if (tokensLeft <= Distance(State, _pending) + ClosingMargin && Closing(bits, tokensLeft) is { } closing) bits = closing;
        bool any = false;
        for (int w = 0; w < bits.Length; w++)
        {
            ulong word = bits[w];
            int start = w * 64, end = Math.Min(logits.Length, start + 64);
            if (word == 0) { logits[start..end].Fill(float.NegativeInfinity); continue; }   // most words, most steps
            any = true;
            if (word == ulong.MaxValue) continue;
            for (ulong off = ~word; off != 0; off &= off - 1)
            {
                int i = start + System.Numerics.BitOperations.TrailingZeroCount(off);
                if (i < end) logits[i] = float.NegativeInfinity;
            }
        }
        if (!any) throw new InvalidRequestException("grammar: no token of the vocabulary can continue the text (the grammar needs a character the vocabulary cannot spell)");
    }

    /// <summary>How far ahead of the budget the closing check starts (a token may add to what the text needs).</summary>
    private const int ClosingMargin = 16;

    /// <summary>Of the allowed tokens, those after which the text can still end within the budget (its distance in
    /// characters, at most one token each, plus the end token); when none can, those that bring the end closest (a
    /// budget too tight for one token a character, which longer tokens may still meet). Null when nothing is allowed.</summary>
    private ulong[]? Closing(ulong[] bits, int tokensLeft)
    {
        var keep = new ulong[bits.Length];
        var closest = new ulong[bits.Length];
        int best = int.MaxValue;
        bool any = false;
        for (int w = 0; w < bits.Length; w++)
            for (ulong word = bits[w]; word != 0; word &= word - 1)
            {
                int id = w * 64 + System.Numerics.BitOperations.TrailingZeroCount(word);
                int after = tokenizer.IsEos(id) ? (IsComplete ? -1 : int.MaxValue)
                    : _a.Advance(State, id, _pending) is { } next ? Distance(next.State, next.Pending) : int.MaxValue;
                if (after == int.MaxValue) continue;
                if (after + 1 <= tokensLeft - 1 || after < 0) { keep[w] |= 1UL << id; any = true; }
                if (after < best) { best = after; Array.Clear(closest); }
                if (after == best) closest[w] |= 1UL << id;
            }
        return any ? keep : best < int.MaxValue ? closest : null;
    }

    /// <summary>Moves on by token <paramref name="id"/> (which <see cref="Mask"/> allowed).</summary>
    public void Accept(int id) =>
        (_state, _pending) = _a.Advance(State, id, _pending) ?? throw new InvalidOperationException($"grammar: token {id} does not continue the text");
}

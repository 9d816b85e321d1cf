using System.Text;
using KernelEngine.Text;

namespace KernelEngine.Decoding;

/// <summary>
/// What every generation loop does with a proposed token, in one place (<see cref="Generator"/> for a session, the
/// batched engine for each of its sequences): reject non-finite logits, stop at an end token (not emitted, counted),
/// stream its text, and stop after a token whose text completes a stop string (across token boundaries; kept).
/// </summary>
internal sealed class TokenEmitter(Tokenizer tokenizer, GenerationSettings settings, bool atStartOfText)
{
    private readonly TextStream _text = new(tokenizer, atStartOfText);
    private readonly StringBuilder _tail = new();
    private readonly int _maxStop = settings.StopStrings.Count == 0 ? 0 : settings.StopStrings.Max(s => s.Length);

    /// <summary>Tokens accepted so far (end tokens included).</summary>
    public int Generated { get; private set; }

    /// <summary>Takes token t, which sits at <paramref name="position"/>: <paramref name="emitted"/> is what the caller yields
    /// (null for an end token); <paramref name="stop"/> says why the generation ends after it, if it does.</summary>
    public void Accept(in StepToken t, int position, out GeneratedToken? emitted, out StopReason? stop)
    {
        if (!double.IsFinite(t.EntropyBits) || double.IsNaN(t.LogProb))
            throw new ModelOutputException($"the model produced non-finite logits at position {position} (corrupt weights or an out-of-range config value)");
        Generated++;
        if (settings.StopAtEos && tokenizer.IsEos(t.Id)) { emitted = null; stop = StopReason.Eos; return; }
        string piece = _text.Push(t.Id);
        bool hitStop = _maxStop > 0 && StopStringEnds(piece);
        emitted = new GeneratedToken(t.Id, piece, position, t.LogProb, t.EntropyBits, t.Logits);
        stop = hitStop ? StopReason.StopString : null;
    }

    /// <summary>Appends a token's text to the tail kept for stop strings; true when a stop string now ends in it (it may
    /// have started in earlier tokens).</summary>
    private bool StopStringEnds(string piece)
    {
        if (piece.Length == 0) return false;
        _tail.Append(piece);
        if (_tail.Length > 2 * _maxStop + piece.Length) _tail.Remove(0, _tail.Length - (_maxStop + piece.Length));
        string recent = _tail.ToString();
        foreach (var s in settings.StopStrings)
            if (s.Length > 0 && recent.Contains(s, StringComparison.Ordinal)) return true;
        return false;
    }
}

using System.Text;

namespace KernelEngine.Chat;

/// <summary>
/// Streams an answer's text without its stop strings (as OpenAI and ORT GenAI return it): text that could still be the
/// start of a stop string is held back until the next piece shows it is not; once one appears, it and everything after
/// it are dropped.
/// </summary>
internal sealed class StopTextFilter(IReadOnlyList<string> stops)
{
    private readonly string[] _stops = stops.Where(s => s.Length > 0).ToArray();
    private readonly int _maxStop = stops.Count == 0 ? 0 : stops.Max(s => s.Length);
    private readonly StringBuilder _text = new();
    private int _emitted;

    /// <summary>Where the first stop string begins, once one has appeared.</summary>
    public int? StopAt { get; private set; }

    /// <summary>The text so far, cut before the stop string.</summary>
    public string Text => StopAt is int at ? _text.ToString(0, at) : _text.ToString();

    /// <summary>Adds generated text; returns what is now safe to show.</summary>
    public string Push(string piece)
    {
        if (StopAt != null || piece.Length == 0) return "";
        int before = _text.Length;
        _text.Append(piece);
        if (_stops.Length == 0) return Emit(_text.Length);
        // a stop string ending inside the new piece starts at most _maxStop - 1 characters before it
        int windowStart = Math.Max(0, before - _maxStop + 1);
        string window = _text.ToString(windowStart, _text.Length - windowStart);
        int first = -1;
        foreach (var s in _stops)
        {
            int i = window.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (first < 0 || i < first)) first = i;
        }
        if (first >= 0)
        {
            StopAt = Math.Max(windowStart + first, _emitted);
            return Emit(StopAt.Value);
        }
        // hold back the longest tail that is a proper prefix of a stop string
        int hold = 0;
        foreach (var s in _stops)
            for (int k = Math.Min(s.Length - 1, window.Length); k > hold; k--)
                if (window.AsSpan(window.Length - k).SequenceEqual(s.AsSpan(0, k))) { hold = k; break; }
        return Emit(_text.Length - hold);
    }

    /// <summary>At the end: the held-back tail (no stop string followed it).</summary>
    public string Flush() => StopAt is int at ? Emit(at) : Emit(_text.Length);

    private string Emit(int upTo)
    {
        if (upTo <= _emitted) return "";
        string s = _text.ToString(_emitted, upTo - _emitted);
        _emitted = upTo;
        return s;
    }
}

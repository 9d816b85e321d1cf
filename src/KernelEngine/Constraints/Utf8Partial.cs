namespace KernelEngine.Constraints;

/// <summary>
/// The bytes of a UTF-8 character read so far when a token ends inside one (byte-fallback pieces, byte-level BPE
/// tokens that split a character): the grammar steps on whole characters, so a token may leave part of one pending.
/// </summary>
internal readonly record struct Utf8Partial(int Value, int Have, int Need)
{
    public bool IsEmpty => Need == 0;

    /// <summary>Adds a byte: false when it cannot continue valid UTF-8; <paramref name="cp"/> ≥ 0 when a character is
    /// complete (then <paramref name="next"/> is empty).</summary>
    public bool Push(byte b, out Utf8Partial next, out int cp)
    {
        cp = -1;
        next = default;
        if (Need == 0)
        {
            if (b < 0x80) { cp = b; return true; }
            if ((b & 0xE0) == 0xC0 && b >= 0xC2) { next = new Utf8Partial(b & 0x1F, 1, 2); return true; }
            if ((b & 0xF0) == 0xE0) { next = new Utf8Partial(b & 0x0F, 1, 3); return true; }
            if ((b & 0xF8) == 0xF0 && b <= 0xF4) { next = new Utf8Partial(b & 0x07, 1, 4); return true; }
            return false;
        }
        if ((b & 0xC0) != 0x80) return false;
        int value = Value << 6 | (b & 0x3F), have = Have + 1;
        if (have < Need)
        {
            next = new Utf8Partial(value, have, Need);
            var (lo, hi) = next.Range;
            return hi >= lo && !(lo >= 0xD800 && hi <= 0xDFFF);   // some valid character left (not only surrogates)
        }
        bool valid = Need switch
        {
            2 => value >= 0x80,
            3 => value >= 0x800 && value is < 0xD800 or > 0xDFFF,
            _ => value is >= 0x10000 and <= 0x10FFFF,
        };
        if (!valid) return false;
        cp = value;
        return true;
    }

    /// <summary>The characters this partial sequence can still become.</summary>
    public (int Lo, int Hi) Range
    {
        get
        {
            int rest = 6 * (Need - Have);
            int lo = Value << rest, hi = lo | ((1 << rest) - 1);
            int min = Need switch { 2 => 0x80, 3 => 0x800, _ => 0x10000 };
            return (Math.Max(lo, min), Math.Min(hi, 0x10FFFF));
        }
    }
}

using System.Globalization;
using System.Numerics;

namespace KernelEngine.Decoding;

/// <summary>
/// A sum of doubles kept exactly (every finite double is a whole multiple of 2^-1074) and rounded once when read, so
/// the result does not depend on the order of the terms or on how they were split: scoring shards merge to the digit
/// of an unsharded run.
/// </summary>
public sealed class ExactSum
{
    private const int Scale = 1074;
    private BigInteger _scaled;      // Σ x · 2^1074
    private bool _nonFinite;

    /// <summary>Adds one term (a NaN or an infinity makes the sum NaN).</summary>
    public void Add(double x)
    {
        if (!double.IsFinite(x)) { _nonFinite = true; return; }
        if (x == 0) return;
        long bits = BitConverter.DoubleToInt64Bits(x);
        int exponent = (int)((bits >> 52) & 0x7FF);
        long mantissa = bits & 0xFFFFFFFFFFFFFL;
        if (exponent == 0) exponent = 1; else mantissa |= 1L << 52;
        var term = (BigInteger)mantissa << (exponent - 1075 + Scale);   // x = mantissa · 2^(exponent − 1075)
        _scaled += bits < 0 ? -term : term;
    }

    /// <summary>Adds another sum's terms.</summary>
    public void Add(ExactSum other)
    {
        _scaled += other._scaled;
        _nonFinite |= other._nonFinite;
    }

    /// <summary>The sum, rounded once.</summary>
    public double Value
    {
        get
        {
            if (_nonFinite) return double.NaN;
            long length = _scaled.IsZero ? 0 : (long)BigInteger.Abs(_scaled).GetBitLength();
            int shift = (int)Math.Max(0, length - 63);
            return Math.ScaleB((double)(_scaled >> shift), shift - Scale);
        }
    }

    /// <summary>The exact sum as text (what a partial result carries); <see cref="Parse"/> reads it back.</summary>
    public override string ToString() => _nonFinite ? "nan" : _scaled.ToString(CultureInfo.InvariantCulture);

    /// <summary>Reads <see cref="ToString"/>'s form.</summary>
    public static ExactSum Parse(string s)
    {
        if (s == "nan") return new ExactSum { _nonFinite = true };
        if (!BigInteger.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v))
            throw new InvalidRequestException($"'{(s.Length > 40 ? s[..40] + "..." : s)}' is not an exact sum");
        return new ExactSum { _scaled = v };
    }
}

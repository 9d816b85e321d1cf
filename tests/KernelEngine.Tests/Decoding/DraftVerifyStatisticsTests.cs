using KernelEngine.Decoding;
using KernelEngine.Kernels.DraftVerify;
using NUnit.Framework;

namespace KernelEngine.Tests.Decoding;

/// <summary>
/// The verification kernel's output follows the target distribution exactly (chi-square, p &gt; 0.001), for single
/// drafts and for multi-draft recursive rejection sampling; single-draft acceptance equals Σ min(p, q).
/// </summary>
public sealed class DraftVerifyStatisticsTests
{
    private const int Vocab = 10;
    private const int Draws = 200_000;
    private const double ChiSquareCritical001Df9 = 27.877; // chi-square quantile at 1 - 0.001 with 9 degrees of freedom

    private static float[] Dist(Rng r, int zeros = 0)
    {
        var d = new float[Vocab];
        for (int i = 0; i < Vocab; i++) d[i] = i < zeros ? 0 : (float)(r.NextDouble() + 0.05);
        float s = d.Sum();
        for (int i = 0; i < Vocab; i++) d[i] /= s;
        return d;
    }

    private static double ChiSquare(long[] counts, float[] p)
    {
        double chi = 0;
        long n = counts.Sum();
        for (int i = 0; i < Vocab; i++)
        {
            double e = n * (double)p[i];
            if (e == 0) { Assert.That(counts[i], Is.EqualTo(0), $"token {i} has p = 0"); continue; }
            chi += (counts[i] - e) * (counts[i] - e) / e;
        }
        return chi;
    }

    [TestCase(1UL, 0)]
    [TestCase(2UL, 3)]
    public void SingleDraft_OutputIsDistributedAsTarget_AndAcceptanceIsSumMin(ulong seed, int zerosInQ)
    {
        var r = new Rng(seed);
        var p = Dist(r); var q = Dist(r, zerosInQ);
        var counts = new long[Vocab];
        long accepted = 0;
        var pRows = new float[2 * Vocab]; p.CopyTo(pRows, 0); p.CopyTo(pRows, Vocab); // bonus row unused for k = 1 acceptance test
        var scratch = new float[Vocab];
        var u = new double[2];
        for (int n = 0; n < Draws; n++)
        {
            int d = DraftVerifyCpu.Sample(q, r.NextDouble());
            u[0] = r.NextDouble(); u[1] = r.NextDouble();
            var v = DraftVerifyCpu.Verify(pRows, q, [d], u, Vocab, greedy: false, scratch);
            int token = v.Accepted == 1 ? d : v.Token;
            counts[token]++;
            accepted += v.Accepted;
        }
        double chi = ChiSquare(counts, p);
        Assert.That(chi, Is.LessThan(ChiSquareCritical001Df9), $"chi-square {chi:F2}");
        double expectedRate = p.Zip(q, Math.Min).Sum();
        double rate = accepted / (double)Draws, sigma = Math.Sqrt(expectedRate * (1 - expectedRate) / Draws);
        Assert.That(rate, Is.EqualTo(expectedRate).Within(5 * sigma), $"acceptance {rate:F4} vs Σ min(p, q) = {expectedRate:F4}");
    }

    [TestCase(3UL, 2)]
    [TestCase(4UL, 4)]
    public void MultiDraft_RecursiveRejectionWithoutReplacement_IsDistributedAsTarget(ulong seed, int candidates)
    {
        var r = new Rng(seed);
        var p = Dist(r); var q = Dist(r);
        var counts = new long[Vocab];
        var pw = new float[Vocab]; var qw = new float[Vocab]; var qs = new float[Vocab];
        var cand = new int[candidates];
        var u = new double[candidates + 1];
        int anyAccepted = 0;
        for (int n = 0; n < Draws; n++)
        {
            q.CopyTo(qs, 0);
            for (int c = 0; c < candidates; c++)
            {
                cand[c] = DraftVerifyCpu.Sample(qs, r.NextDouble());
                qs[cand[c]] = 0;   // without replacement
            }
            for (int i = 0; i < u.Length; i++) u[i] = r.NextDouble();
            p.CopyTo(pw, 0); q.CopyTo(qw, 0);
            var v = DraftVerifyCpu.RecursiveReject(pw, qw, cand, withoutReplacement: true, u, greedy: false);
            counts[v.Token]++;
            if (v.Branch >= 0) { anyAccepted++; Assert.That(v.Token, Is.EqualTo(cand[v.Branch])); }
        }
        double chi = ChiSquare(counts, p);
        Assert.That(chi, Is.LessThan(ChiSquareCritical001Df9), $"chi-square {chi:F2}");
        // More candidates accept more often than one would: Σ min(p, q) is the single-draft rate.
        Assert.That(anyAccepted / (double)Draws, Is.GreaterThan(p.Zip(q, Math.Min).Sum()));
    }

    [Test]
    public void MultiDraft_WithReplacement_IsDistributedAsTarget()
    {
        var r = new Rng(5);
        var p = Dist(r); var q = Dist(r);
        var counts = new long[Vocab];
        var pw = new float[Vocab]; var qw = new float[Vocab];
        var cand = new int[3]; var u = new double[4];
        for (int n = 0; n < Draws; n++)
        {
            for (int c = 0; c < 3; c++) cand[c] = DraftVerifyCpu.Sample(q, r.NextDouble());
            for (int i = 0; i < u.Length; i++) u[i] = r.NextDouble();
            p.CopyTo(pw, 0); q.CopyTo(qw, 0);
            counts[DraftVerifyCpu.RecursiveReject(pw, qw, cand, withoutReplacement: false, u, greedy: false).Token]++;
        }
        Assert.That(ChiSquare(counts, p), Is.LessThan(ChiSquareCritical001Df9));
    }

    [Test]
    public void Greedy_AcceptsTheArgmaxPrefix()
    {
        var p = new float[3 * Vocab];
        p[0 * Vocab + 4] = 1; p[1 * Vocab + 7] = 1; p[2 * Vocab + 2] = 1;
        Assert.That(DraftVerifyCpu.Verify(p, default, [4, 7], new double[3], Vocab, true, new float[Vocab]), Is.EqualTo(new Verdict(2, 2)));
        Assert.That(DraftVerifyCpu.Verify(p, default, [4, 1], new double[3], Vocab, true, new float[Vocab]), Is.EqualTo(new Verdict(1, 7)));
        Assert.That(DraftVerifyCpu.Verify(p, default, [3, 7], new double[3], Vocab, true, new float[Vocab]), Is.EqualTo(new Verdict(0, 4)));
    }
}

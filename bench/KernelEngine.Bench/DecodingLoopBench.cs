using System.Diagnostics;
using KernelEngine.Decoding;

namespace KernelEngine.Bench;

/// <summary>Decode tok/s of each decoding loop against plain greedy decoding of the same target, in one run.</summary>
public static class DecodingLoopBench
{
    public static void Run(string targetDir, string? draftDir, int tokens, TextWriter w)
    {
        using var target = Model.Load(targetDir);
        using var draft = draftDir != null ? Model.Load(draftDir) : null;
        int[] prompt = target.Tokenizer.Encode("Once upon a time, there was a little girl named Lily. She loved to play outside.", addBos: true);
        var greedy = new GenerationSettings { MaxTokens = tokens, Sampling = SamplingSettings.Greedy, StopAtEos = false };
        (double Tps, DecodingStats? Stats) Time(Func<Session, Session?, (IEnumerable<GeneratedToken>, Func<DecodingStats?>)> make)
        {
            double best = 0; DecodingStats? stats = null;
            for (int rep = 0; rep < 3; rep++)
            {
                using var ts = target.CreateSession();
                using var ds = draft?.CreateSession();
                var (stream, st) = make(ts, ds);
                var sw = Stopwatch.StartNew();
                int n = stream.Count();
                best = Math.Max(best, n / sw.Elapsed.TotalSeconds);
                stats = st();
            }
            return (best, stats);
        }
        var plain = Time((t, _) => (t.Generate(prompt, greedy), () => null));
        w.WriteLine("| loop | decode tok/s | speedup | tokens / target pass | acceptance |");
        w.WriteLine("|---|---|---|---|---|");
        w.WriteLine($"| plain greedy | {plain.Tps:F0} | 1.00 | 1.00 | |");
        void Row(string name, (double Tps, DecodingStats? Stats) r) =>
            w.WriteLine($"| {name} | {r.Tps:F0} | {r.Tps / plain.Tps:F2} | {r.Stats!.TokensPerTargetPass:F2} | {r.Stats.AcceptanceRate:P0} |");
        if (draft != null)
        {
            foreach (int g in new[] { 2, 4, 6 })
                Row($"speculative gamma {g}", Time((t, d) => { var s = new SpeculativeDecoder(t, d, new SpeculativeSettings { Gamma = g }); return (s.Generate(prompt, greedy), () => s.Stats); }));
            Row("speculative adaptive", Time((t, d) => { var s = new SpeculativeDecoder(t, d, new SpeculativeSettings { Gamma = 4, AdaptiveGamma = true }); return (s.Generate(prompt, greedy), () => s.Stats); }));
            Row("multi-draft 3 x gamma 3", Time((t, d) => { var s = new SpeculativeDecoder(t, d, new SpeculativeSettings { Gamma = 3, Drafts = 3 }); return (s.Generate(prompt, greedy), () => s.Stats); }));
            var ead = Time((t, d) => { var s = new EntropyAdaptiveDecoder(t, d!, new EntropyAdaptiveSettings { ThresholdBits = 1.0 }); return (s.Generate(prompt, greedy), () => s.Stats); });
            w.WriteLine($"| entropy-adaptive (1 bit) | {ead.Tps:F0} | {ead.Tps / plain.Tps:F2} | large model {ead.Stats!.LargeModelFraction:P0} of tokens | {ead.Stats.Switches} switches |");
        }
        Row("prompt lookup n=3", Time((t, _) => { var s = new SpeculativeDecoder(t, null, new SpeculativeSettings { Gamma = 4, LookupNgram = 3 }); return (s.Generate(prompt, greedy), () => s.Stats); }));
    }
}

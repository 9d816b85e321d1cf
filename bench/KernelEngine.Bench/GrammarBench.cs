using System.Diagnostics;
using KernelEngine.Constraints;
using KernelEngine.Decoding;

namespace KernelEngine.Bench;

/// <summary>
/// Constrained decoding's cost (<c>bench grammar</c>): the median time of one token mask once the grammar has been used
/// (a first document warms its states up), and decode tok/s of schema-constrained generations against the same
/// sampling unconstrained, on one model. The mask is timed alone around <c>GrammarMatcher.Mask</c>; tok/s over whole
/// generations (feed, mask, sample, accept).
/// </summary>
public static class GrammarBench
{
    public static void Run(Model model, string schema, int documents, int maxTokens, TextWriter output)
    {
        var grammar = JsonSchemaGrammar.Compile(schema);
        int vocab = model.Config.VocabSize;
        using var session = model.CreateSession();
        var prompt = session.EncodePrompt("Hello");
        var logits = new float[vocab];
        var maskTimes = new List<double>();
        long constrainedTokens = 0, freeTokens = 0;
        double constrainedSeconds = 0, freeSeconds = 0;
        for (int doc = -1; doc < documents; doc++)   // doc -1: warm-up, not counted
        {
            var sampler = new Sampler(new SamplingSettings { Temperature = 1f, TopK = 0, TopP = 1f, MinP = 0f, Seed = (ulong)(doc + 100) }, vocab);
            var matcher = new GrammarMatcher(grammar, model.Tokenizer);
            var history = new List<int>(prompt);
            session.Reset();
            var sw = Stopwatch.StartNew();
            session.Feed(prompt).CopyTo(logits);
            int n = 0;
            for (; n < maxTokens; n++)
            {
                long t0 = Stopwatch.GetTimestamp();
                matcher.Mask(logits);
                double us = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
                if (doc >= 0) maskTimes.Add(us);
                int next = sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history));
                matcher.Accept(next);
                history.Add(next);
                if (model.Tokenizer.IsEos(next)) break;
                session.Feed([next]).CopyTo(logits);
            }
            if (doc < 0) continue;
            constrainedSeconds += sw.Elapsed.TotalSeconds;
            constrainedTokens += n + 1;
            // the same number of tokens unconstrained, same sampling
            session.Reset();
            sw.Restart();
            session.Feed(prompt).CopyTo(logits);
            for (int i = 0; i <= n; i++)
            {
                int next = sampler.Sample(logits, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history));
                session.Feed([next]).CopyTo(logits);
            }
            freeSeconds += sw.Elapsed.TotalSeconds;
            freeTokens += n + 1;
        }
        maskTimes.Sort();
        double Median() => maskTimes.Count == 0 ? double.NaN : maskTimes[maskTimes.Count / 2];
        double P(double q) => maskTimes.Count == 0 ? double.NaN : maskTimes[Math.Min(maskTimes.Count - 1, (int)(q * maskTimes.Count))];
        output.WriteLine($"| vocabulary | documents | tokens | mask median µs | mask p90 µs | mask p99 µs | constrained tok/s | unconstrained tok/s | ratio |");
        output.WriteLine($"|---|---|---|---|---|---|---|---|---|");
        double c = constrainedTokens / constrainedSeconds, f = freeTokens / freeSeconds;
        output.WriteLine($"| {vocab} | {documents} | {constrainedTokens} | {Median():F1} | {P(0.9):F1} | {P(0.99):F1} | {c:F1} | {f:F1} | {c / f:F2} |");
    }
}

using System.Diagnostics;
using KernelEngine.Benchmarking;
using KernelEngine.Constraints;
using KernelEngine.Formats;
using LLama;
using LLama.Common;
using LLama.Native;

namespace KernelEngine.Bench;

/// <summary>
/// llama.cpp's grammar sampler on the same model and the same grammar (<c>bench grammar ... --llama</c>): the schema's
/// GBNF (our compiler's output, which llama.cpp parses too) in a sampler chain of grammar, temperature 1 and a seeded
/// draw, against the same chain without the grammar. Reported: the median time of one sampling call (grammar included)
/// and decode tok/s, as <see cref="GrammarBench"/> reports ours.
/// </summary>
public static class LlamaCppGrammarBench
{
    public static void Run(string preset, Kernels.WeightType type, string schema, int documents, int maxTokens, TextWriter output)
    {
        string dir = Presets.Materialize(preset, type);
        string gguf = Path.Combine(Path.GetTempPath(), "kernelengine-presets", $"{preset}-{type.ToString().ToLowerInvariant()}-grammar.gguf");
        if (!File.Exists(gguf)) GgufExporter.Export(dir, gguf, type);
        using var ours = Model.Load(dir);
        var prompt = ours.EncodePrompt("Hello");
        string gbnf = JsonSchemaGrammar.ToGbnf(schema);
        var p = new ModelParams(gguf) { ContextSize = 1024, Threads = Environment.ProcessorCount, BatchThreads = Environment.ProcessorCount, GpuLayerCount = 0 };
        using var weights = LLamaWeights.LoadFromFile(p);
        using var ctx = weights.CreateContext(p);
        foreach (bool constrained in new[] { true, false })
        {
            var sampleUs = new List<double>();
            long tokens = 0;
            double seconds = 0;
            for (int doc = -1; doc < documents; doc++)
            {
                using var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
                if (constrained) chain.AddGrammar(weights.NativeHandle, gbnf, "root");
                chain.AddTemperature(1f);
                chain.AddDistributionSampler((uint)(doc + 100));
                ctx.NativeHandle.MemoryClear(true);
                var sw = Stopwatch.StartNew();
                Decode(ctx, prompt, 0);
                int n = 0;
                for (; n < maxTokens; n++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    var token = chain.Sample(ctx.NativeHandle, -1);   // applies the grammar and accepts the token into it
                    if (doc >= 0) sampleUs.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
                    if (ours.Tokenizer.IsEos((int)token)) break;
                    Decode(ctx, [(int)token], prompt.Length + n);
                }
                if (doc < 0) continue;
                seconds += sw.Elapsed.TotalSeconds;
                tokens += n + 1;
            }
            sampleUs.Sort();
            output.WriteLine($"llama.cpp {(constrained ? "with the grammar" : "without"),-16}: {tokens} tokens, sampling call median {sampleUs[sampleUs.Count / 2]:F1} µs "
                + $"(p90 {sampleUs[(int)(0.9 * sampleUs.Count)]:F1}), {tokens / seconds:F1} tok/s");
        }
    }

    private static void Decode(LLamaContext ctx, int[] tokens, int start)
    {
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Length; i++) batch.Add((LLamaToken)tokens[i], start + i, LLamaSeqId.Zero, i == tokens.Length - 1);
        if (ctx.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("llama.cpp decode failed");
    }
}

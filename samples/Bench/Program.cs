// An app with the runtime's default settings (tiered compilation on) timing what `ke generate` times:
// dotnet Bench.dll MODEL_DIR PROMPT_TOKENS GENERATED_TOKENS  →  one line "decode D prefill P" (tok/s).
using KernelEngine;
using KernelEngine.Decoding;

if (args.Length < 3) { Console.Error.WriteLine("usage: Bench MODEL_DIR PROMPT_TOKENS GENERATED_TOKENS"); return 2; }
using var model = Model.Load(args[0]);
int promptTokens = int.Parse(args[1]), generate = int.Parse(args[2]);
var rng = new Random(7);
int[] prompt = [.. model.Tokenizer.BosId is int b ? new[] { b } : [], .. Enumerable.Range(0, promptTokens).Select(_ => rng.Next(3, model.Config.VocabSize))];
using var session = model.CreateSession();
foreach (var _ in session.Generate(prompt, new GenerationSettings { MaxTokens = generate, Sampling = SamplingSettings.Greedy, StopAtEos = false })) { }
var s = session.LastStats!;
Console.WriteLine($"decode {s.DecodeTokensPerSecond:F1} prefill {s.PrefillTokensPerSecond:F1}");
return 0;

// An app with the runtime's default settings (tiered compilation on) timing what `ke generate` times, on the same
// prompt text: dotnet Bench.dll MODEL_DIR PROMPT_TEXT GENERATED_TOKENS  →  one line "decode D prefill P tokens N" (tok/s).
using KernelEngine;
using KernelEngine.Decoding;

if (args.Length < 3) { Console.Error.WriteLine("usage: Bench MODEL_DIR PROMPT_TEXT GENERATED_TOKENS"); return 2; }
using var model = Model.Load(args[0]);
int generate = int.Parse(args[2]);
var settings = new GenerationSettings { MaxTokens = generate, Sampling = SamplingSettings.Greedy, StopAtEos = false };
using var session = model.CreateSession();
int[] prompt = session.EncodePrompt(args[1], settings.AddBos);
foreach (var _ in session.Generate(prompt, settings)) { }
var s = session.LastStats!;
Console.WriteLine($"decode {s.DecodeTokensPerSecond:F1} prefill {s.PrefillTokensPerSecond:F1} tokens {s.PromptTokens}");
return 0;

// An app with the runtime's default settings (tiered compilation on) timing what `ke generate` times, on the same
// prompt text: dotnet Bench.dll MODEL_DIR PROMPT_TEXT GENERATED_TOKENS  →  one line "decode D prefill P tokens N load S" (tok/s, seconds).
using KernelEngine;
using KernelEngine.Decoding;

if (args.Length < 3) { Console.Error.WriteLine("usage: Bench MODEL_DIR PROMPT_TEXT GENERATED_TOKENS"); return 2; }
var loadWatch = System.Diagnostics.Stopwatch.StartNew();
using var model = Model.Load(args[0]);
double loadSeconds = loadWatch.Elapsed.TotalSeconds;
int generate = int.Parse(args[2]);
var settings = new GenerationSettings { MaxTokens = generate, Sampling = SamplingSettings.Greedy, StopAtEos = false };
using var session = model.CreateSession();
int[] prompt = session.EncodePrompt(args[1], settings.AddBos);
foreach (var _ in session.Generate(prompt, settings)) { }
var s = session.LastStats!;
Console.WriteLine($"decode {s.DecodeTokensPerSecond:F1} prefill {s.PrefillTokensPerSecond:F1} tokens {s.PromptTokens} load {loadSeconds:F3}");
return 0;

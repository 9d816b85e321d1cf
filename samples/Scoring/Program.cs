// Scores a text file: dotnet run -- MODEL_DIR TEXT_FILE  → tokens, bits per byte, perplexity.
using KernelEngine;
using KernelEngine.Decoding;

if (args.Length < 2) { Console.Error.WriteLine("usage: Scoring MODEL_DIR TEXT_FILE"); return 2; }
using var model = Model.Load(args[0]);
var result = Scorer.Score(model, Scorer.ReadText(args[1]));
Console.WriteLine($"{result.TokenCount} tokens, {result.BitsPerByte:F4} bits/byte, perplexity {Math.Exp(result.MeanNll):F3}");
return 0;

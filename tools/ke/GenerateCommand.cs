using System.CommandLine;
using System.Text;
using KernelEngine.Decoding;

namespace KernelEngine.Cli;

internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = CliCommon.Model(); var json = CliCommon.Json(); var device = CliCommon.Device();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text (empty = BOS alone)", DefaultValueFactory = _ => "" };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens to generate", DefaultValueFactory = _ => 256 };
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0.8f };
        var topK = new Option<int>("--top-k") { Description = "0 = off", DefaultValueFactory = _ => 40 };
        var topP = new Option<float>("--top-p") { Description = "1 = off", DefaultValueFactory = _ => 0.95f };
        var minP = new Option<float>("--min-p") { Description = "0 = off", DefaultValueFactory = _ => 0.05f };
        var repeat = new Option<float>("--repeat-penalty") { Description = "1 = off", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 42UL };
        var stop = new Option<string[]>("--stop") { Description = "Stop string (repeatable)", AllowMultipleArgumentsPerToken = false };
        var ctx = new Option<int?>("--context") { Description = "Context length (default: the model's)" };
        var f16kv = new Option<bool>("--f16-kv") { Description = "Keep the KV cache in F16" };
        var cmd = new Command("generate", "Generate text; streams to stdout, then a stats line (or one JSON object with --json)")
        {
            model, prompt, maxTokens, temperature, topK, topP, minP, repeat, seed, stop, device, ctx, f16kv, json,
        };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var sampling = new SamplingSettings
            {
                Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), TopP = p.GetValue(topP), MinP = p.GetValue(minP),
                RepetitionPenalty = p.GetValue(repeat), Seed = p.GetValue(seed),
            };
            sampling.Validate();
            var settings = new GenerationSettings { MaxTokens = p.GetValue(maxTokens), Sampling = sampling, StopStrings = p.GetValue(stop) ?? [] };
            using var m = Model.Load(p.GetValue(model)!, new ModelOptions { Device = p.GetValue(device)!, ContextLength = p.GetValue(ctx), F16KvCache = p.GetValue(f16kv) });
            using var session = m.CreateSession();
            string promptText = p.GetValue(prompt)!;
            var promptIds = session.EncodePrompt(promptText, settings.AddBos);
            bool asJson = p.GetValue(json);
            var ids = new List<int>();
            var text = new StringBuilder();
            foreach (var t in session.Generate(promptIds, settings, atStartOfText: promptText.Length == 0))
            {
                ids.Add(t.Id);
                text.Append(t.Text);
                if (!asJson) { Console.Out.Write(t.Text); Console.Out.Flush(); }
            }
            var s = session.LastStats!;
            var stats = new
            {
                prompt_tokens = s.PromptTokens, generated_tokens = s.GeneratedTokens,
                prefill_seconds = s.PrefillSeconds, decode_seconds = s.DecodeSeconds,
                prefill_tokens_per_second = s.PrefillTokensPerSecond, decode_tokens_per_second = s.DecodeTokensPerSecond,
                stop_reason = s.StopReason.ToString().ToLowerInvariant(), device = m.Device.Id,
            };
            if (asJson) CliCommon.PrintJson(new { prompt_ids = promptIds, token_ids = ids, text = text.ToString(), stats });
            else
            {
                Console.Out.WriteLine();
                Console.Error.WriteLine($"[prompt {s.PromptTokens} tokens, generated {s.GeneratedTokens}, prefill {s.PrefillTokensPerSecond:F1} tok/s, decode {s.DecodeTokensPerSecond:F1} tok/s, stop: {stats.stop_reason}, device {m.Device.Id}]");
            }
            return 0;
        }));
        return cmd;
    }
}

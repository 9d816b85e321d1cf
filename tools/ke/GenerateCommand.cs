using System.CommandLine;
using System.Text;
using KernelEngine.Decoding;
using KernelEngine.Formats;

namespace KernelEngine.Cli;

internal static class GenerateCommand
{
    public static Command Create()
    {
        var model = CliCommon.Model(); var json = CliCommon.Json(); var device = CliCommon.Device(); var threads = CliCommon.Threads();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text (empty = BOS alone)", DefaultValueFactory = _ => "" };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Tokens to generate", DefaultValueFactory = _ => 256 }.InRange(0, int.MaxValue);
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0.8f }.InRange(0f, 1000f);
        var topK = new Option<int>("--top-k") { Description = "0 = off", DefaultValueFactory = _ => 40 }.InRange(0, int.MaxValue);
        var topP = new Option<float>("--top-p") { Description = "1 = off", DefaultValueFactory = _ => 0.95f }.InRange(1e-6f, 1f);
        var minP = new Option<float>("--min-p") { Description = "0 = off", DefaultValueFactory = _ => 0.05f }.InRange(0f, 0.999999f);
        var repeat = new Option<float>("--repeat-penalty") { Description = "1 = off", DefaultValueFactory = _ => 1f }.InRange(1e-6f, 1e6f);
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 42UL };
        var stop = new Option<string[]>("--stop") { Description = "Stop string (repeatable)", AllowMultipleArgumentsPerToken = false };
        var grammar = new Option<string?>("--grammar") { Description = "GBNF grammar file (llama.cpp's format): the output follows it" };
        var jsonSchema = new Option<string?>("--json-schema") { Description = "JSON Schema file: the output is a document of it" };
        var ctx = new Option<int?>("--context") { Description = "Context length (default: the model's)" }.InRange(1, int.MaxValue);
        var f16kv = new Option<bool>("--f16-kv") { Description = "Keep the KV cache in F16 (as --kv-type f16)" };
        var kvType = CliCommon.KvType();
        var mmap = new Option<bool>("--mmap") { Description = "CPU: read F32/F16/BF16 weights in place from the mapped files (faster load; default copies them into huge pages)" };
        var shift = new Option<bool>("--context-shift") { Description = "At a full context keep going: drop the oldest half after --keep tokens (llama.cpp's context shift)" };
        var keep = new Option<int>("--keep") { Description = "Tokens at the start a context shift never drops", DefaultValueFactory = _ => 0 }.InRange(0, int.MaxValue);
        var draft = new Option<string?>("--draft") { Description = "Speculative decoding with this draft model folder (same tokenizer)" };
        var gamma = new Option<int>("--gamma") { Description = "Draft tokens per step", DefaultValueFactory = _ => 4 }.InRange(1, 64);
        var drafts = new Option<int>("--drafts") { Description = "Draft branches per step (multi-draft)", DefaultValueFactory = _ => 1 }.InRange(1, 16);
        var adaptive = new Option<bool>("--adaptive-gamma") { Description = "Grow gamma on full acceptance, shrink on early rejection" };
        var lookup = new Option<int>("--lookup") { Description = "Prompt-lookup decoding with n-grams up to N (no draft model)" }.InRange(0, 64);
        var small = new Option<string?>("--small") { Description = "Entropy-adaptive decoding: the small model folder (--model is the large one)" };
        var threshold = new Option<double>("--entropy-threshold") { Description = "EAD: small model while its rolling entropy (bits) is below this", DefaultValueFactory = _ => 1.5 }.InRange(0.0, 1e6);
        var window = new Option<int>("--entropy-window") { Description = "EAD: rolling window in tokens", DefaultValueFactory = _ => 4 }.InRange(1, 1 << 20);
        var minStay = new Option<int>("--min-stay") { Description = "EAD: tokens before another switch", DefaultValueFactory = _ => 4 }.InRange(1, 1 << 20);
        var cmd = new Command("generate", "Generate text; streams to stdout, then a stats line (or one JSON object with --json)")
        {
            model, prompt, maxTokens, temperature, topK, topP, minP, repeat, seed, stop, grammar, jsonSchema, device, ctx, f16kv, kvType, mmap, shift, keep,
            draft, gamma, drafts, adaptive, lookup, small, threshold, window, minStay, threads, json,
        };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var sampling = new SamplingSettings
            {
                Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), TopP = p.GetValue(topP), MinP = p.GetValue(minP),
                RepetitionPenalty = p.GetValue(repeat), Seed = p.GetValue(seed),
            };
            sampling.Validate();
            var settings = new GenerationSettings
            {
                MaxTokens = p.GetValue(maxTokens), Sampling = sampling, StopStrings = p.GetValue(stop) ?? [], ContextShift = p.GetValue(shift), KeepTokens = p.GetValue(keep),
                Grammar = p.GetValue(grammar) is string gf ? ReadFile(gf, "--grammar") : null,
                JsonSchema = p.GetValue(jsonSchema) is string sf ? ReadFile(sf, "--json-schema") : null,
            };
            settings.Validate();
            var modelOptions = new ModelOptions { Device = p.GetValue(device)!, Threads = p.GetValue(threads), ContextLength = p.GetValue(ctx), KvCacheType = p.GetValue(f16kv) ? "f16" : p.GetValue(kvType), CopyWeights = !p.GetValue(mmap) };
            using var m = CliProgress.Load(p.GetValue(model)!, modelOptions);
            using var session = m.CreateSession();
            string? draftDir = p.GetValue(draft), smallDir = p.GetValue(small);
            if (draftDir != null && smallDir != null) throw new InvalidRequestException("--draft and --small are different loops: give one");
            using var second = (draftDir ?? smallDir) is string secondDir ? CliProgress.Load(secondDir, modelOptions) : null;
            using var secondSession = second?.CreateSession();
            SpeculativeDecoder? spec = null;
            EntropyAdaptiveDecoder? ead = null;
            if (draftDir != null || p.GetValue(lookup) > 0)
                spec = new SpeculativeDecoder(session, secondSession, new SpeculativeSettings
                {
                    Gamma = p.GetValue(gamma), Drafts = p.GetValue(drafts), AdaptiveGamma = p.GetValue(adaptive), LookupNgram = p.GetValue(lookup),
                    MaxGamma = Math.Max(12, p.GetValue(gamma)),
                });
            else if (smallDir != null)
                ead = new EntropyAdaptiveDecoder(session, secondSession!, new EntropyAdaptiveSettings
                {
                    ThresholdBits = p.GetValue(threshold), Window = p.GetValue(window), MinStay = p.GetValue(minStay),
                });
            string promptText = p.GetValue(prompt)!;
            var promptIds = session.EncodePrompt(promptText, settings.AddBos);
            bool asJson = p.GetValue(json);
            var ids = new List<int>();
            var text = new StringBuilder();
            bool atStart = promptText.Length == 0;
            if (!asJson) { Console.Out.Write(promptText); Console.Out.Flush(); }
            var stream = spec?.Generate(promptIds, settings, atStart) ?? ead?.Generate(promptIds, settings, atStart) ?? session.Generate(promptIds, settings, atStart);
            foreach (var t in stream)
            {
                ids.Add(t.Id);
                text.Append(t.Text);
                if (!asJson) { Console.Out.Write(t.Text); Console.Out.Flush(); }
            }
            var s = session.LastStats!;
            var loop = s.Loop;
            var stats = new
            {
                prompt_tokens = s.PromptTokens, generated_tokens = s.GeneratedTokens,
                prefill_seconds = s.PrefillSeconds, decode_seconds = s.DecodeSeconds,
                prefill_tokens_per_second = s.PrefillTokensPerSecond,
                decode_tokens_per_second = s.DecodeTokensPerSecond,
                stop_reason = s.StopReason.ToString().ToLowerInvariant(), device = m.Device.Id,
                loop = spec != null ? (draftDir != null ? (p.GetValue(drafts) > 1 ? "multi-draft" : "speculative") : "prompt-lookup") : ead != null ? "entropy-adaptive" : "plain",
                tokens_per_target_pass = loop?.TokensPerTargetPass, acceptance_rate = loop?.AcceptanceRate,
                acceptance_by_position = loop?.AcceptanceByPosition, target_passes = loop?.TargetPasses, draft_passes = loop?.DraftPasses,
                target_seconds = loop?.TargetSeconds, draft_seconds = loop?.DraftSeconds,
                large_model_fraction = ead != null ? loop?.LargeModelFraction : null, switches = ead != null ? loop?.Switches : null,
            };
            if (asJson) CliCommon.PrintJson(new { prompt_ids = promptIds, token_ids = ids, text = text.ToString(), stats });
            else
            {
                Console.Out.WriteLine();
                Console.Error.WriteLine($"[prompt {stats.prompt_tokens} tokens, generated {ids.Count}, prefill {stats.prefill_tokens_per_second:F1} tok/s, decode {stats.decode_tokens_per_second:F1} tok/s, stop: {stats.stop_reason}, device {m.Device.Id}]");
                if (loop != null)
                    Console.Error.WriteLine($"[{stats.loop}: {loop.TokensPerTargetPass:F2} tokens per target pass, acceptance {loop.AcceptanceRate:P1}, target {loop.TargetSeconds:F3} s, draft/small {loop.DraftSeconds:F3} s"
                        + (ead != null ? $", large model {loop.LargeModelFraction:P0} of tokens, {loop.Switches} switches]" : "]"));
            }
            return 0;
        }));
        return cmd;
    }

    private static string ReadFile(string path, string option) =>
        File.Exists(path) ? File.ReadAllText(path) : throw new InvalidRequestException($"{option} {path}: file not found");
}

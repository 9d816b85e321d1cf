using System.CommandLine;
using System.Text;
using System.Text.Json;
using KernelEngine.Chat;
using KernelEngine.Decoding;

namespace KernelEngine.Cli;

/// <summary>
/// ke chat: an interactive terminal chat with an instruct model (streams answers; multi-line input with a trailing '\'
/// or between lines of """; /reset, /system TEXT, /save FILE, /exit; Ctrl+C stops the current answer (at the prompt it is ignored); tok/s after each
/// answer on stderr), or with --input conversation.json one answer as text or one JSON object (--json).
/// </summary>
internal static class ChatCommand
{
    public static Command Create()
    {
        var model = CliCommon.Model(); var json = CliCommon.Json(); var device = CliCommon.Device(); var kvType = CliCommon.KvType(); var threads = CliCommon.Threads();
        var system = new Option<string?>("--system", "-s") { Description = "System prompt" };
        var template = new Option<string?>("--template") { Description = "Chat template file (.jinja) instead of the model's own" };
        var input = new Option<string?>("--input", "-i") { Description = "Answer this conversation and exit: {\"messages\": [...], \"tools\": [...]}" };
        var maxTokens = new Option<int>("--max-tokens", "-n") { Description = "Most tokens per answer", DefaultValueFactory = _ => 512 }.InRange(1, int.MaxValue);
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0.8f }.InRange(0f, 1000f);
        var topK = new Option<int>("--top-k") { Description = "0 = off", DefaultValueFactory = _ => 40 }.InRange(0, int.MaxValue);
        var topP = new Option<float>("--top-p") { Description = "1 = off", DefaultValueFactory = _ => 0.95f }.InRange(1e-6f, 1f);
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 42UL };
        var stop = new Option<string[]>("--stop") { Description = "Stop string (repeatable; left out of the answer)", AllowMultipleArgumentsPerToken = false };
        var ctx = new Option<int?>("--context") { Description = "Context length (default: the model's)" }.InRange(1, int.MaxValue);
        var cmd = new Command("chat", "Chat with an instruct model in the terminal, or answer one conversation (--input FILE [--json])")
        {
            model, system, template, input, maxTokens, temperature, topK, topP, seed, stop, device, threads, ctx, kvType, json,
        };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            var settings = new GenerationSettings
            {
                MaxTokens = p.GetValue(maxTokens), StopStrings = p.GetValue(stop) ?? [],
                Sampling = new SamplingSettings { Temperature = p.GetValue(temperature), TopK = p.GetValue(topK), TopP = p.GetValue(topP), Seed = p.GetValue(seed) },
            };
            settings.Validate();
            string? templateSource = p.GetValue(template) is { } tf ? File.ReadAllText(tf) : null;
            using var m = CliProgress.Load(p.GetValue(model)!, new ModelOptions { Device = p.GetValue(device)!, Threads = p.GetValue(threads), ContextLength = p.GetValue(ctx), KvCacheType = p.GetValue(kvType) });
            if (p.GetValue(input) is { } file) return Once(m, file, templateSource, p.GetValue(system), settings, p.GetValue(json));
            using var chat = m.CreateChat(new ChatSettings { Template = templateSource, SystemPrompt = p.GetValue(system) });
            return Interactive(chat, settings);
        }));
        return cmd;
    }

    private static int Once(Model m, string file, string? template, string? system, GenerationSettings settings, bool asJson)
    {
        JsonElement root;
        try { using var doc = JsonDocument.Parse(File.ReadAllBytes(file)); root = doc.RootElement.Clone(); }
        catch (JsonException e) { throw new InvalidRequestException($"{file}: not valid JSON ({e.Message})"); }
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("messages", out var msgs) || msgs.ValueKind != JsonValueKind.Array)
            throw new InvalidRequestException($"{file}: expected {{\"messages\": [{{\"role\": ..., \"content\": ...}}, ...]}}");
        var messages = new List<ChatMessage>();
        if (system != null) messages.Add(ChatMessage.System(system));
        int i = 0;
        foreach (var e in msgs.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                throw new InvalidRequestException($"{file}: messages[{i}] needs a string \"role\"");
            string? content = e.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
            List<ToolCall>? calls = null;
            if (e.TryGetProperty("tool_calls", out var tc) && tc.ValueKind == JsonValueKind.Array)
                calls = tc.EnumerateArray().Select((x, k) =>
                {
                    var f = x.TryGetProperty("function", out var fn) ? fn : x;
                    string name = f.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : throw new InvalidRequestException($"{file}: messages[{i}].tool_calls[{k}] needs a function name");
                    string args = f.TryGetProperty("arguments", out var a) ? (a.ValueKind == JsonValueKind.String ? a.GetString()! : a.GetRawText()) : "{}";
                    return new ToolCall(x.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString()! : $"call{k}", name, args);
                }).ToList();
            messages.Add(new ChatMessage(role.GetString()!, content)
            {
                ToolCalls = calls,
                ToolCallId = e.TryGetProperty("tool_call_id", out var tid) && tid.ValueKind == JsonValueKind.String ? tid.GetString() : null,
                Name = e.TryGetProperty("name", out var nm) && nm.ValueKind == JsonValueKind.String ? nm.GetString() : null,
            });
            i++;
        }
        var tools = new List<ChatTool>();
        if (root.TryGetProperty("tools", out var ts) && ts.ValueKind == JsonValueKind.Array)
            foreach (var t in ts.EnumerateArray())
            {
                var f = t.TryGetProperty("function", out var fn) ? fn : t;
                if (!f.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String) throw new InvalidRequestException($"{file}: every tool needs a function name");
                tools.Add(new ChatTool(n.GetString()!, f.TryGetProperty("description", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null,
                    f.TryGetProperty("parameters", out var ps) ? ps.Clone() : null));
            }
        using var chat = m.CreateChat(new ChatSettings { Template = template, Tools = tools });
        chat.Load(messages);
        var stdout = Console.Out;
        foreach (var text in chat.RespondAsync(settings).ToBlockingEnumerable())
            if (!asJson) { stdout.Write(text); stdout.Flush(); }
        var r = chat.LastReply!;
        if (asJson)
        {
            var result = new Dictionary<string, object?>
            {
                ["text"] = r.Text,
                ["finish_reason"] = r.FinishReason switch { ChatFinishReason.Length => "length", ChatFinishReason.ToolCalls => "tool_calls", ChatFinishReason.Cancelled => "cancelled", _ => "stop" },
                ["usage"] = new Dictionary<string, int> { ["prompt_tokens"] = r.Usage.PromptTokens, ["completion_tokens"] = r.Usage.CompletionTokens, ["total_tokens"] = r.Usage.TotalTokens },
            };
            if (r.ToolCalls.Count > 0)
                result["tool_calls"] = r.ToolCalls.Select(c => new Dictionary<string, object?>
                {
                    ["id"] = c.Id, ["type"] = "function", ["function"] = new Dictionary<string, object?> { ["name"] = c.Name, ["arguments"] = c.ArgumentsJson },
                }).ToList();
            CliCommon.PrintJson(result);
        }
        else stdout.WriteLine();
        return 0;
    }

    private static int Interactive(ChatSession chat, GenerationSettings settings)
    {
        // test hook: a pause after each streamed piece, so that a test can press Ctrl+C mid-answer on a fast model
        int delayMs = int.TryParse(Environment.GetEnvironmentVariable("KE_CHAT_TEST_DELAY_MS"), out int d) ? d : 0;
        CancellationTokenSource? answering = null;
        var gate = new object();
        Console.CancelKeyPress += (_, e) =>
        {
            lock (gate)
            {
                e.Cancel = true;   // Ctrl+C stops an answer; at the prompt it only reminds how to leave
                if (answering != null) answering.Cancel();
                else Console.Error.WriteLine("[Ctrl+C stops an answer; /exit or Ctrl+D leaves]");
            }
        };
        var err = Console.Error;
        err.WriteLine("ke chat: type a message and Enter ('\\' at the end of a line or \"\"\" for more lines); /reset, /system TEXT, /save FILE, /exit; Ctrl+C stops an answer");
        while (true)
        {
            Console.Out.Write("> ");
            Console.Out.Flush();
            string? message = ReadMessage();
            if (message == null) break;
            if (message.Length == 0) continue;
            if (message.StartsWith('/'))
            {
                if (!Command(chat, message)) break;
                continue;
            }
            using var cts = new CancellationTokenSource();
            lock (gate) answering = cts;
            bool stopped = false;
            try
            {
                foreach (var text in chat.SendAsync(message, settings, cts.Token).ToBlockingEnumerable())
                {
                    Console.Out.Write(text);
                    Console.Out.Flush();
                    if (delayMs > 0) Thread.Sleep(delayMs);
                }
            }
            catch (OperationCanceledException) { stopped = true; }
            finally { lock (gate) answering = null; }
            Console.Out.WriteLine();
            var stats = chat.Session.LastStats;
            if (stopped) err.WriteLine("[stopped]");
            if (stats != null)
                err.WriteLine($"[{stats.GeneratedTokens} tokens, {stats.DecodeTokensPerSecond:F1} tok/s; prompt {stats.PromptTokens} ({stats.ReusedPromptTokens} cached), {stats.PrefillTokensPerSecond:F0} tok/s]");
        }
        return 0;
    }

    /// <summary>One message: a line, lines joined while they end with '\', or the lines between two lines of """.</summary>
    private static string? ReadMessage()
    {
        string? line = Console.In.ReadLine();
        if (line == null) return null;
        if (line.Trim() == "\"\"\"")
        {
            var block = new StringBuilder();
            while (Console.In.ReadLine() is { } l && l.Trim() != "\"\"\"") block.Append(block.Length > 0 ? "\n" : "").Append(l);
            return block.ToString();
        }
        var sb = new StringBuilder();
        while (line != null && line.EndsWith('\\'))
        {
            sb.Append(line, 0, line.Length - 1).Append('\n');
            line = Console.In.ReadLine();
        }
        return sb.Append(line).ToString().Trim();
    }

    /// <summary>Runs a /command; false ends the chat.</summary>
    private static bool Command(ChatSession chat, string line)
    {
        int space = line.IndexOf(' ');
        string name = space < 0 ? line : line[..space], arg = space < 0 ? "" : line[(space + 1)..].Trim();
        switch (name)
        {
            case "/exit" or "/quit":
                return false;
            case "/reset":
                chat.Reset();
                Console.Error.WriteLine("[conversation reset]");
                return true;
            case "/system":
                chat.SetSystemPrompt(arg.Length == 0 ? null : arg);
                Console.Error.WriteLine(arg.Length == 0 ? "[system prompt removed]" : "[system prompt set]");
                return true;
            case "/save":
                if (arg.Length == 0) { Console.Error.WriteLine("usage: /save FILE"); return true; }
                var messages = chat.Messages.Select(m => new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList();
                File.WriteAllText(arg, JsonSerializer.Serialize(new { messages }, CliCommon.JsonOptions));
                Console.Error.WriteLine($"[saved {messages.Count} messages to {arg}]");
                return true;
            default:
                Console.Error.WriteLine($"unknown command {name} (/reset, /system TEXT, /save FILE, /exit)");
                return true;
        }
    }
}

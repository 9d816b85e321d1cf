using System.Runtime.CompilerServices;
using System.Text.Json;
using KernelEngine.Decoding;
using KernelEngine.Text;

namespace KernelEngine.Chat;

/// <summary>
/// A conversation with an instruct model: the messages, rendered with the model's chat template (or
/// <see cref="ChatSettings.Template"/>) into a prompt whose tokens are fed to one <see cref="Session"/>. Each turn feeds
/// only the tokens after the prefix already in the cache (<see cref="ChatUsage.ReusedPromptTokens"/>), streams the answer,
/// stops at any of the model's end tokens, leaves stop strings out of the text and parses tool calls when tools are offered.
/// One turn at a time (like <see cref="Session"/>); the answers are added to <see cref="Messages"/>.
/// <code>
/// using var chat = model.CreateChat(new ChatSettings { SystemPrompt = "Be brief." });
/// await foreach (var text in chat.SendAsync("Hello!")) Console.Write(text);
/// Console.WriteLine(chat.LastReply!.Usage);
/// </code>
/// </summary>
public sealed class ChatSession : IDisposable
{
    private readonly Model _model;
    private readonly Session _session;
    private readonly ChatPrompt _prompt;
    private readonly List<ChatMessage> _messages = [];
    private int _turn;

    internal ChatSession(Model model, ChatSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        _model = model;
        Settings = settings;
        _prompt = new ChatPrompt(model, settings);
        _session = model.CreateSession();
        Reset();
    }

    /// <summary>How prompts are built (template, system prompt, tools, variables).</summary>
    public ChatSettings Settings { get; private set; }
    /// <summary>The conversation so far, answers included.</summary>
    public IReadOnlyList<ChatMessage> Messages => _messages;
    /// <summary>The session holding the conversation's KV cache.</summary>
    public Session Session => _session;
    /// <summary>The template in use.</summary>
    public ChatTemplate Template => _prompt.Template;
    /// <summary>The last answer (null before the first).</summary>
    public ChatReply? LastReply { get; private set; }

    /// <summary>Starts over: no messages but the system prompt (the cache is reused where the next prompt matches it).</summary>
    public void Reset()
    {
        _messages.Clear();
        if (!string.IsNullOrEmpty(Settings.SystemPrompt)) _messages.Add(ChatMessage.System(Settings.SystemPrompt));
        LastReply = null;
    }

    /// <summary>Replaces the system prompt (and keeps the rest of the conversation).</summary>
    public void SetSystemPrompt(string? text)
    {
        Settings = Settings with { SystemPrompt = text };
        _prompt.Settings = Settings;
        if (_messages.Count > 0 && _messages[0].Role == "system") _messages.RemoveAt(0);
        if (!string.IsNullOrEmpty(text)) _messages.Insert(0, ChatMessage.System(text));
    }

    /// <summary>Adds a message without answering (a tool result, an earlier turn).</summary>
    public void Add(ChatMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        _messages.Add(message);
    }

    /// <summary>The prompt text for the current messages (what the model is fed).</summary>
    public string RenderPrompt(bool addGenerationPrompt = true, IReadOnlyList<ChatTool>? tools = null) =>
        _prompt.Render(_messages, addGenerationPrompt, tools ?? Settings.Tools);

    /// <summary>Adds a user message and streams the answer's text (stop strings left out); <see cref="LastReply"/> has the rest.</summary>
    public IAsyncEnumerable<string> SendAsync(string userMessage, GenerationSettings? settings = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userMessage);
        _messages.Add(ChatMessage.User(userMessage));
        return Generator.Async(() => Turn(settings ?? new GenerationSettings(), null, cancellationToken, retractOnError: true), cancellationToken);
    }

    /// <summary>Adds a user message and returns the whole answer.</summary>
    public ChatReply Send(string userMessage, GenerationSettings? settings = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userMessage);
        _messages.Add(ChatMessage.User(userMessage));
        foreach (var _ in Turn(settings ?? new GenerationSettings(), null, cancellationToken, retractOnError: true)) { }
        return LastReply!;
    }

    /// <summary>Answers the conversation as it stands (after <see cref="Add"/>, or a conversation replaced with
    /// <see cref="Load"/>), streaming the text.</summary>
    public IAsyncEnumerable<string> RespondAsync(GenerationSettings? settings = null, IReadOnlyList<ChatTool>? tools = null, CancellationToken cancellationToken = default) =>
        Generator.Async(() => Turn(settings ?? new GenerationSettings(), tools, cancellationToken), cancellationToken);

    /// <summary>Replaces the conversation (e.g. the messages of an IChatClient call); the cache keeps what still matches.</summary>
    public void Load(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        _messages.Clear();
        _messages.AddRange(messages);
    }

    /// <param name="retractOnError">a request that fails before generating (the template raises, the prompt does not fit)
    /// takes back the user message that was just added, so that the conversation stays as it was</param>
    private IEnumerable<string> Turn(GenerationSettings settings, IReadOnlyList<ChatTool>? tools, CancellationToken ct, bool retractOnError = false)
    {
        tools ??= Settings.Tools;
        IEnumerable<GeneratedToken> tokens;
        try
        {
            int[] ids = _prompt.Encode(_messages, tools);
            tokens = _session.Generate(ids, settings, atStartOfText: false, ct);   // validates eagerly
        }
        catch when (retractOnError && _messages.Count > 0)
        {
            _messages.RemoveAt(_messages.Count - 1);
            throw;
        }
        var filter = new StopTextFilter(settings.StopStrings);
        foreach (var t in tokens)
        {
            string shown = filter.Push(t.Text);
            if (shown.Length > 0) yield return shown;
        }
        string tail = filter.Flush();
        if (tail.Length > 0) yield return tail;
        var stats = _session.LastStats!;
        string raw = filter.Text;
        var calls = new List<ToolCall>();
        string content = raw;
        if (tools.Count > 0)
        {
            var parsed = ToolCallParser.Parse(raw);
            content = parsed.Content;
            for (int i = 0; i < parsed.Calls.Count; i++)
                calls.Add(new ToolCall(parsed.Calls[i].Id ?? $"c{_turn % 10000:D4}{i % 10000:D4}", parsed.Calls[i].Name, parsed.Calls[i].ArgumentsJson));
        }
        _turn++;
        var reason = calls.Count > 0 ? ChatFinishReason.ToolCalls : ChatPrompt.FinishReason(stats.StopReason);
        LastReply = new ChatReply(content, reason, new ChatUsage(stats.PromptTokens, stats.GeneratedTokens, stats.ReusedPromptTokens), calls, stats) { RawText = raw };
        _messages.Add(new ChatMessage("assistant", content) { ToolCalls = calls.Count > 0 ? calls : null });
    }

    /// <summary>Frees the conversation's KV cache.</summary>
    public void Dispose() => _session.Dispose();
}

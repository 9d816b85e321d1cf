using System.Runtime.CompilerServices;
using System.Text.Json;
using KernelEngine.Decoding;
using AI = Microsoft.Extensions.AI;

namespace KernelEngine.Chat;

/// <summary>
/// Microsoft.Extensions.AI's <see cref="AI.IChatClient"/> over a model: each call renders the messages with the model's
/// chat template into one <see cref="ChatSession"/> whose KV cache is reused where the new prompt matches the previous
/// one. <see cref="AI.ChatOptions"/>: Temperature, TopP, TopK, MaxOutputTokens, StopSequences, Seed, Tools (rendered into
/// the template; the answer's tool calls come back as <see cref="AI.FunctionCallContent"/>, and
/// <see cref="AI.FunctionResultContent"/> goes back as a "tool" message, so FunctionInvokingChatClient completes round
/// trips). Calls on one client run one at a time; create a client per concurrent conversation.
/// <code>
/// IChatClient client = model.AsChatClient();
/// var response = await client.GetResponseAsync("Hello!");
/// services.AddChatClient(client);   // Microsoft.Extensions.AI's DI registration
/// </code>
/// </summary>
public sealed class KernelEngineChatClient : AI.IChatClient
{
    private readonly Model _model;
    private readonly ChatSession _chat;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly AI.ChatClientMetadata _metadata;
    private int _disposed;

    /// <summary>A client over <paramref name="model"/>; <paramref name="settings"/> set the template, system prompt and variables.</summary>
    public KernelEngineChatClient(Model model, ChatSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _chat = model.CreateChat(settings);
        _metadata = new AI.ChatClientMetadata("KernelEngine", null, ModelId);
    }

    /// <summary>The model's name: its folder or file name.</summary>
    public string ModelId => Path.GetFileNameWithoutExtension(_model.Folder.TrimEnd('/', '\\'));

    /// <summary>Test hook: each call takes the next entry (if any) as the first tokens it generates (GenerationSettings.PinnedTokens).</summary>
    internal Queue<int[]> PinnedReplies { get; } = new();

    /// <summary>The sampling a call without options gets (default: the library's sampling defaults).</summary>
    public GenerationSettings Defaults { get; init; } = new();

    /// <summary>Answers the messages (see the class summary for the options used).</summary>
    public async Task<AI.ChatResponse> GetResponseAsync(IEnumerable<AI.ChatMessage> messages, AI.ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var (conversation, settings, tools) = Prepare(messages, options);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _chat.Load(conversation);
            await foreach (var _ in _chat.RespondAsync(settings, tools, cancellationToken).ConfigureAwait(false)) { }
            var reply = _chat.LastReply!;
            var message = new AI.ChatMessage(AI.ChatRole.Assistant, Contents(reply));
            return new AI.ChatResponse(message)
            {
                FinishReason = Finish(reply.FinishReason), Usage = Usage(reply), ModelId = ModelId,
                ResponseId = Guid.NewGuid().ToString("N"), CreatedAt = DateTimeOffset.UtcNow,
            };
        }
        finally { _gate.Release(); }
    }

    /// <summary>Streams the answer; the last update carries the finish reason, usage and any tool calls.</summary>
    public async IAsyncEnumerable<AI.ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AI.ChatMessage> messages, AI.ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (conversation, settings, tools) = Prepare(messages, options);
        string responseId = Guid.NewGuid().ToString("N"), messageId = Guid.NewGuid().ToString("N");
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _chat.Load(conversation);
            // With tools offered, the text is held to the end: a tool call's markup must not reach the user as text.
            await foreach (var text in _chat.RespondAsync(settings, tools, cancellationToken).ConfigureAwait(false))
                if (tools.Count == 0)
                    yield return new AI.ChatResponseUpdate(AI.ChatRole.Assistant, text) { ResponseId = responseId, MessageId = messageId, ModelId = ModelId };
            var reply = _chat.LastReply!;
            var final = new AI.ChatResponseUpdate(AI.ChatRole.Assistant, tools.Count == 0 ? [] : Contents(reply))
            {
                ResponseId = responseId, MessageId = messageId, ModelId = ModelId, FinishReason = Finish(reply.FinishReason), CreatedAt = DateTimeOffset.UtcNow,
            };
            final.Contents.Add(new AI.UsageContent(Usage(reply)));
            yield return final;
        }
        finally { _gate.Release(); }
    }

    private (List<ChatMessage> Conversation, GenerationSettings Settings, List<ChatTool> Tools) Prepare(IEnumerable<AI.ChatMessage> messages, AI.ChatOptions? options)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ArgumentNullException.ThrowIfNull(messages);
        var conversation = new List<ChatMessage>();
        var callNames = new Dictionary<string, string>();
        foreach (var m in messages)
        {
            string role = m.Role == AI.ChatRole.System ? "system" : m.Role == AI.ChatRole.Assistant ? "assistant" : m.Role == AI.ChatRole.Tool ? "tool" : m.Role == AI.ChatRole.User ? "user" : m.Role.Value;
            var calls = m.Contents.OfType<AI.FunctionCallContent>().Select(c =>
            {
                callNames[c.CallId] = c.Name;
                return new ToolCall(c.CallId, c.Name, JsonSerializer.Serialize(c.Arguments ?? new Dictionary<string, object?>()));
            }).ToList();
            var results = m.Contents.OfType<AI.FunctionResultContent>().ToList();
            foreach (var r in results)
                conversation.Add(new ChatMessage("tool", r.Result as string ?? JsonSerializer.Serialize(r.Result))
                {
                    ToolCallId = r.CallId, Name = callNames.GetValueOrDefault(r.CallId),
                });
            if (results.Count > 0 && string.IsNullOrEmpty(m.Text) && calls.Count == 0) continue;
            conversation.Add(new ChatMessage(role, m.Text) { ToolCalls = calls.Count > 0 ? calls : null });
        }
        var s = Defaults;
        var sampling = s.Sampling;
        if (options != null)
        {
            if (options.Temperature is float t) sampling = sampling with { Temperature = t };
            if (options.TopP is float p) sampling = sampling with { TopP = p };
            if (options.TopK is int k) sampling = sampling with { TopK = k };
            if (options.Seed is long seed) sampling = sampling with { Seed = unchecked((ulong)seed) };
            if (options.MaxOutputTokens is int max) s = s with { MaxTokens = max };
            if (options.StopSequences is { Count: > 0 } stops) s = s with { StopStrings = [.. s.StopStrings, .. stops] };
            // ChatResponseFormat.ForJsonSchema(...) / .Json: the answer is constrained to the schema (any JSON object for .Json)
            if (options.ResponseFormat is AI.ChatResponseFormatJson json)
                s = s with { JsonSchema = json.Schema is JsonElement schema ? schema.GetRawText() : """{"type":"object"}""" };
        }
        s = s with { Sampling = sampling, PinnedTokens = PinnedReplies.TryDequeue(out var pinned) ? pinned : null };
        var tools = (options?.Tools ?? []).OfType<AI.AIFunctionDeclaration>()
            .Select(f => new ChatTool(f.Name, f.Description, f.JsonSchema)).ToList();
        return (conversation, s, tools);
    }

    private static List<AI.AIContent> Contents(ChatReply reply)
    {
        var contents = new List<AI.AIContent>();
        if (reply.Text.Length > 0) contents.Add(new AI.TextContent(reply.Text));
        foreach (var c in reply.ToolCalls)
        {
            var args = new Dictionary<string, object?>();
            if (c.Arguments.ValueKind == JsonValueKind.Object)
                foreach (var p in c.Arguments.EnumerateObject()) args[p.Name] = p.Value.Clone();
            contents.Add(new AI.FunctionCallContent(c.Id, c.Name, args));
        }
        return contents;
    }

    private static AI.ChatFinishReason Finish(ChatFinishReason r) => r switch
    {
        ChatFinishReason.Length => AI.ChatFinishReason.Length,
        ChatFinishReason.ToolCalls => AI.ChatFinishReason.ToolCalls,
        _ => AI.ChatFinishReason.Stop,
    };

    private static AI.UsageDetails Usage(ChatReply r) => new()
    {
        InputTokenCount = r.Usage.PromptTokens, OutputTokenCount = r.Usage.CompletionTokens, TotalTokenCount = r.Usage.TotalTokens,
    };

    /// <summary>The client's metadata, the client itself, or its <see cref="Model"/>.</summary>
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey != null ? null
        : serviceType == typeof(AI.ChatClientMetadata) ? _metadata
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType == typeof(Model) ? _model
        : null;

    /// <summary>Frees the conversation's cache (the model stays loaded).</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _chat.Dispose();
        _gate.Dispose();
    }
}

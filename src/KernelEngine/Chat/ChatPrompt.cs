using System.Text.Json;
using KernelEngine.Text;

namespace KernelEngine.Chat;

/// <summary>
/// Messages to prompt tokens: the model's chat template (or <see cref="ChatSettings.Template"/>; its "tool_use" variant
/// when tools are offered) rendered with OpenAI-shaped messages, tools, add_generation_prompt and the model's BOS/EOS
/// text, then encoded with special tokens. Shared by <see cref="ChatSession"/> and the server's chat endpoint.
/// </summary>
internal sealed class ChatPrompt(Model model, ChatSettings settings)
{
    private readonly Model _model = model;
    private ChatTemplate? _toolUse;

    /// <summary>The settings it renders with (a chat's system prompt may change).</summary>
    public ChatSettings Settings { get; set; } = settings;

    /// <summary>The template for conversations without tools.</summary>
    public ChatTemplate Template { get; } = new(settings.Template ?? model.ChatTemplate ?? ChatSettings.ChatMLTemplate, settings.Now);

    /// <summary>The prompt text for <paramref name="messages"/>.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<ChatTool> tools) =>
        TemplateFor(tools).Render(Variables(messages, addGenerationPrompt, tools));

    /// <summary>The prompt tokens that ask for the next assistant message.</summary>
    public int[] Encode(IReadOnlyList<ChatMessage> messages, IReadOnlyList<ChatTool> tools)
    {
        if (messages.Count == 0) throw new InvalidRequestException("the conversation has no messages");
        int[] ids = _model.Tokenizer.EncodeWithSpecialTokens(Render(messages, true, tools));
        if (ids.Length == 0) throw new InvalidRequestException("the chat template rendered an empty prompt");
        return ids;
    }

    /// <summary>How a generation's stop reads as a chat answer's finish reason.</summary>
    public static ChatFinishReason FinishReason(StopReason reason) => reason switch
    {
        StopReason.MaxTokens or StopReason.ContextFull => ChatFinishReason.Length,
        StopReason.Cancelled => ChatFinishReason.Cancelled,
        _ => ChatFinishReason.Stop,
    };

    /// <summary>With tools offered and no template given, the model's "tool_use" template where it has one.</summary>
    private ChatTemplate TemplateFor(IReadOnlyList<ChatTool> tools) =>
        tools.Count > 0 && Settings.Template == null && _model.ToolUseChatTemplate is { } source ? _toolUse ??= new ChatTemplate(source, Settings.Now) : Template;

    /// <summary>The template's variables: messages (OpenAI-shaped dicts), tools, add_generation_prompt, bos/eos text, extras.</summary>
    private Dictionary<string, object?> Variables(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyList<ChatTool> tools)
    {
        var vars = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["messages"] = messages.Select(MessageValue).ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = _model.BosText,
            ["eos_token"] = _model.EosText,
            ["tools"] = tools.Count == 0 ? null : tools.Select(ToolValue).ToList(),
        };
        foreach (var (k, v) in Settings.Variables) vars[k] = v;
        return vars;
    }

    private static Dictionary<string, object?> MessageValue(ChatMessage m)
    {
        var d = new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content ?? "" };
        if (m.ToolCalls is { Count: > 0 } calls)
            d["tool_calls"] = calls.Select(c => new Dictionary<string, object?>
            {
                ["id"] = c.Id, ["type"] = "function",
                ["function"] = new Dictionary<string, object?> { ["name"] = c.Name, ["arguments"] = ArgumentsValue(c.ArgumentsJson) },
            }).ToList();
        if (m.ToolCallId != null) d["tool_call_id"] = m.ToolCallId;
        if (m.Name != null) d["name"] = m.Name;
        return d;
    }

    /// <summary>Arguments as a dict (templates apply tojson to them, as transformers passes them); text that is not JSON stays text.</summary>
    private static object? ArgumentsValue(string json)
    {
        try { using var doc = JsonDocument.Parse(json); return doc.RootElement.Clone(); }
        catch (JsonException) { return json; }
    }

    private static Dictionary<string, object?> ToolValue(ChatTool t)
    {
        var f = new Dictionary<string, object?> { ["name"] = t.Name };
        if (t.Description != null) f["description"] = t.Description;
        if (t.Parameters is JsonElement p) f["parameters"] = p;
        return new Dictionary<string, object?> { ["type"] = "function", ["function"] = f };
    }
}

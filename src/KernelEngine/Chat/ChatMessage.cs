using System.Text.Json;

namespace KernelEngine.Chat;

/// <summary>One message of a conversation as chat templates see it: role ("system", "user", "assistant", "tool"), text,
/// the tool calls an assistant made, and for a tool's result the call it answers.</summary>
public sealed record ChatMessage(string Role, string? Content)
{
    /// <summary>Calls an assistant message made (rendered as the template's <c>tool_calls</c>).</summary>
    public IReadOnlyList<ToolCall>? ToolCalls { get; init; }
    /// <summary>For a "tool" message: the id of the call it answers.</summary>
    public string? ToolCallId { get; init; }
    /// <summary>For a "tool" message: the function's name.</summary>
    public string? Name { get; init; }

    /// <summary>A system message.</summary>
    public static ChatMessage System(string text) => new("system", text);
    /// <summary>A user message.</summary>
    public static ChatMessage User(string text) => new("user", text);
    /// <summary>An assistant message.</summary>
    public static ChatMessage Assistant(string text) => new("assistant", text);
    /// <summary>A tool's result for the call <paramref name="callId"/> of <paramref name="name"/>.</summary>
    public static ChatMessage Tool(string callId, string name, string result) => new("tool", result) { ToolCallId = callId, Name = name };
}

/// <summary>A function call the model asked for: its id, the function's name and its arguments as a JSON object text.</summary>
public sealed record ToolCall(string Id, string Name, string ArgumentsJson)
{
    /// <summary>The arguments parsed (an empty object when the model wrote none).</summary>
    public JsonElement Arguments => JsonDocument.Parse(string.IsNullOrWhiteSpace(ArgumentsJson) ? "{}" : ArgumentsJson).RootElement.Clone();
}

/// <summary>A function the model may call: name, description and a JSON Schema of its parameters, rendered into the
/// template's <c>tools</c> as OpenAI's <c>{"type": "function", "function": {...}}</c>.</summary>
public sealed record ChatTool(string Name, string? Description = null, JsonElement? Parameters = null);

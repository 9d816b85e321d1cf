namespace KernelEngine.Chat;

/// <summary>Why an answer ended (OpenAI's finish_reason).</summary>
public enum ChatFinishReason
{
    /// <summary>An end token or a stop string.</summary>
    Stop,
    /// <summary>The token budget or the context ran out.</summary>
    Length,
    /// <summary>The answer is tool calls.</summary>
    ToolCalls,
    /// <summary>The caller cancelled.</summary>
    Cancelled,
}

/// <summary>Token counts of one turn: the rendered prompt (of which <see cref="ReusedPromptTokens"/> were already in the
/// cache), and the answer (an end token counts).</summary>
public sealed record ChatUsage(int PromptTokens, int CompletionTokens, int ReusedPromptTokens)
{
    /// <summary>Prompt plus completion tokens.</summary>
    public int TotalTokens => PromptTokens + CompletionTokens;
}

/// <summary>One answer: its text (stop strings and end tokens left out; tool-call markup removed when calls were parsed),
/// the tool calls, why it ended, usage and the generation's timing.</summary>
public sealed record ChatReply(string Text, ChatFinishReason FinishReason, ChatUsage Usage, IReadOnlyList<ToolCall> ToolCalls, GenerationStats Stats)
{
    /// <summary>The model's output before tool calls were taken out of it (stop strings removed).</summary>
    public string RawText { get; init; } = Text;
}

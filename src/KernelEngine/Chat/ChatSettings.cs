namespace KernelEngine.Chat;

/// <summary>How a <see cref="ChatSession"/> builds its prompts.</summary>
public sealed record ChatSettings
{
    /// <summary>Jinja chat template source; null: the model's own (tokenizer_config.json or GGUF), else ChatML.</summary>
    public string? Template { get; init; }
    /// <summary>A system message put first in the conversation.</summary>
    public string? SystemPrompt { get; init; }
    /// <summary>Functions the model may call (the template's <c>tools</c>).</summary>
    public IReadOnlyList<ChatTool> Tools { get; init; } = [];
    /// <summary>More template variables (e.g. <c>enable_thinking</c>, <c>date_string</c>).</summary>
    public IReadOnlyDictionary<string, object?> Variables { get; init; } = new Dictionary<string, object?>();
    /// <summary>Clock of the template's strftime_now (default: local time).</summary>
    public Func<DateTime>? Now { get; init; }

    /// <summary>ChatML, the template used when a model ships none.</summary>
    public const string ChatMLTemplate =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
}

using System.Text.Json;

namespace KernelEngine.Server;

/// <summary>A request the server answers with an OpenAI-style error body:
/// <c>{"error": {"message", "type", "param", "code"}}</c> and an HTTP status.</summary>
internal sealed class ApiError(int status, string message, string? param = null, string? code = null, string type = "invalid_request_error") : Exception(message)
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string? Code { get; } = code;
    public string Type { get; } = type;

    public object Body => new { error = new { message = Message, type = Type, param = Param, code = Code } };

    public static ApiError BadRequest(string message, string? param = null, string? code = null) => new(400, message, param, code);

    /// <summary>What a library exception means for the client: a bad request (400), a full queue (429), a stopping
    /// server (503), a model failure (500).</summary>
    public static ApiError From(Exception e, string? promptParam) => e switch
    {
        ApiError a => a,
        InvalidRequestException r when r.Message.Contains("context length", StringComparison.Ordinal) => new(400, r.Message, promptParam, "context_length_exceeded"),
        InvalidRequestException r => new(400, r.Message, null, "invalid_request"),
        TokenizerException t => new(400, t.Message, promptParam, "invalid_request"),
        TemplateException t => new(400, $"the chat template failed on these messages: {t.Message}", "messages", "invalid_request"),
        QueueFullException q => new(429, q.Message, null, "queue_full", "rate_limit_error"),
        ObjectDisposedException or InvalidOperationException => new(503, "the server is shutting down", null, "unavailable", "server_error"),
        JsonException j => new(400, $"could not parse the JSON body: {j.Message}", ParamOf(j.Path), "invalid_json"),
        _ => new(500, $"the model failed: {e.Message}", null, "internal_error", "server_error"),
    };

    /// <summary>"$.max_tokens" → "max_tokens"; "$.messages[0].content" → "messages".</summary>
    private static string? ParamOf(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$") return null;
        string p = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path;
        int end = p.IndexOfAny(['.', '[']);
        return end > 0 ? p[..end] : p;
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;

namespace KernelEngine.Server;

// The OpenAI request and response bodies this server reads and writes (snake_case on the wire). Requests ignore
// members they do not know, as OpenAI-compatible servers do; a member of the wrong type is a 400 naming it.

/// <summary>What chat and text completion requests share: the token budget, sampling, stop sequences and streaming.</summary>
internal abstract class GenerationRequest
{
    public string? Model { get; set; }
    public int? MaxTokens { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    public int? TopK { get; set; }
    public float? MinP { get; set; }
    public float? RepetitionPenalty { get; set; }
    public long? Seed { get; set; }
    public JsonElement? Stop { get; set; }
    public bool Stream { get; set; }
    public StreamOptions? StreamOptions { get; set; }
    public int? N { get; set; }
}

internal sealed class ChatCompletionRequest : GenerationRequest
{
    public List<ChatMessageIn>? Messages { get; set; }
    public int? MaxCompletionTokens { get; set; }
    public JsonElement? Tools { get; set; }
    public JsonElement? ResponseFormat { get; set; }
}

internal sealed class ChatMessageIn
{
    public string? Role { get; set; }
    public JsonElement? Content { get; set; }
    public string? Name { get; set; }
}

internal sealed class StreamOptions
{
    public bool IncludeUsage { get; set; }
}

internal sealed class CompletionRequest : GenerationRequest
{
    public JsonElement? Prompt { get; set; }
    public bool Echo { get; set; }
    public int? Logprobs { get; set; }
}

internal sealed class EmbeddingRequest
{
    public string? Model { get; set; }
    public JsonElement? Input { get; set; }
    public string? EncodingFormat { get; set; }
}

internal sealed record Usage(int PromptTokens, int CompletionTokens, int TotalTokens);

internal sealed record ChatMessageOut(string Role, string? Content);

internal sealed record ChatChoice(int Index, ChatMessageOut Message, string FinishReason, object? Logprobs = null);

internal sealed record ChatCompletion(string Id, string Object, long Created, string Model, IReadOnlyList<ChatChoice> Choices, Usage Usage, string? SystemFingerprint = null);

internal sealed record ChatDelta(string? Role, string? Content);

internal sealed record ChatChunkChoice(int Index, ChatDelta Delta, string? FinishReason, object? Logprobs = null);

internal sealed record ChatCompletionChunk(string Id, string Object, long Created, string Model, IReadOnlyList<ChatChunkChoice> Choices, Usage? Usage = null);

internal sealed record CompletionChoice(int Index, string Text, string? FinishReason, object? Logprobs = null);

internal sealed record Completion(string Id, string Object, long Created, string Model, IReadOnlyList<CompletionChoice> Choices, Usage? Usage);

internal sealed record EmbeddingData(int Index, float[] Embedding, string Object = "embedding");

internal sealed record EmbeddingList(IReadOnlyList<EmbeddingData> Data, string Model, EmbeddingUsage Usage, string Object = "list");

internal sealed record EmbeddingUsage(int PromptTokens, int TotalTokens);

internal sealed record ModelInfo(string Id, long Created, string Object = "model", string OwnedBy = "kernelengine");

internal sealed record ModelList(IReadOnlyList<ModelInfo> Data, string Object = "list");

/// <summary>The wire format: snake_case names, nulls left out of responses.</summary>
internal static class Wire
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
        NumberHandling = JsonNumberHandling.Strict,
    };
}

using System.Text.Json;
using KernelEngine.Decoding;
using Microsoft.AspNetCore.Http;

namespace KernelEngine.Server;

/// <summary>What every endpoint does with a request body: parse it (400 naming the member at fault), check the model
/// name (404), read stop sequences and sampling parameters, and size the token budget against the context.</summary>
internal static class RequestReader
{
    public static async Task<T> ReadAsync<T>(HttpRequest request, CancellationToken ct) where T : class
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<T>(request.Body, Wire.Options, ct).ConfigureAwait(false)
                ?? throw ApiError.BadRequest("the request body is empty: send a JSON object");
        }
        catch (JsonException e) { throw ApiError.From(e, null); }
    }

    public static void CheckModel(string? requested, string served)
    {
        if (requested != null && requested != served)
            throw new ApiError(404, $"The model '{requested}' does not exist (this server serves '{served}')", "model", "model_not_found");
    }

    /// <summary>"stop": a string or an array of strings.</summary>
    public static List<string> Stops(JsonElement? stop)
    {
        var list = new List<string>();
        if (stop is not { } s || s.ValueKind == JsonValueKind.Null) return list;
        if (s.ValueKind == JsonValueKind.String) { list.Add(s.GetString()!); return list; }
        if (s.ValueKind != JsonValueKind.Array) throw ApiError.BadRequest("'stop' must be a string or an array of strings", "stop");
        foreach (var e in s.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.String) throw ApiError.BadRequest("'stop' must be a string or an array of strings", "stop");
            list.Add(e.GetString()!);
        }
        return list;
    }

    public static void CheckN(int? n)
    {
        if (n is { } v && v != 1) throw ApiError.BadRequest($"n = {v}: this server returns one choice per request (n must be 1)", "n");
    }

    /// <summary>The sampling of a request: OpenAI's defaults (temperature 1, top_p 1, no top-k or min-p); temperature 0 is greedy.</summary>
    public static SamplingSettings Sampling(float? temperature, float? topP, int? topK, float? minP, float? repetitionPenalty, long? seed)
    {
        if (temperature is { } t && !(t >= 0 && t <= 2)) throw ApiError.BadRequest($"temperature {t} must be in [0, 2]", "temperature");
        if (topP is { } p && !(p > 0 && p <= 1)) throw ApiError.BadRequest($"top_p {p} must be in (0, 1]", "top_p");
        if (topK is { } k && k < 0) throw ApiError.BadRequest($"top_k {k} must be >= 0", "top_k");
        if (minP is { } m && !(m >= 0 && m < 1)) throw ApiError.BadRequest($"min_p {m} must be in [0, 1)", "min_p");
        if (repetitionPenalty is { } r && !(r > 0 && float.IsFinite(r))) throw ApiError.BadRequest($"repetition_penalty {r} must be > 0", "repetition_penalty");
        return new SamplingSettings
        {
            Temperature = temperature ?? 1f, TopP = topP ?? 1f, TopK = topK ?? 0, MinP = minP ?? 0f, RepetitionPenalty = repetitionPenalty ?? 1f,
            Seed = seed is { } s ? unchecked((ulong)s) : (ulong)Random.Shared.NextInt64(),
        };
    }

    /// <summary>The completion's token budget: what was asked (or, unasked, <paramref name="unasked"/> capped by the room
    /// left); a budget that does not fit beside the prompt is a 400.</summary>
    public static int MaxTokens(int? asked, string param, int promptTokens, int context, int? unasked)
    {
        if (promptTokens >= context)
            throw new ApiError(400, $"This model's maximum context length is {context} tokens. However, your prompt is {promptTokens} tokens; shorten it.",
                param == "max_tokens" ? "prompt" : "messages", "context_length_exceeded");
        int room = context - promptTokens;
        if (asked is not { } n) return Math.Min(unasked ?? room, room);
        if (n < 1) throw ApiError.BadRequest($"{param} {n} must be at least 1", param);
        if (n > room)
            throw new ApiError(400, $"This model's maximum context length is {context} tokens. However, you requested {(long)promptTokens + n} tokens ({promptTokens} in the prompt, {n} for the completion). Please reduce the prompt or the completion length.",
                param, "context_length_exceeded");
        return n;
    }

    public static string FinishReason(StopReason r) => r is StopReason.MaxTokens or StopReason.ContextFull ? "length" : "stop";
}

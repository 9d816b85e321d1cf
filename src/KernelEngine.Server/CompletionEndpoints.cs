using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using KernelEngine.Chat;
using Microsoft.AspNetCore.Http;

namespace KernelEngine.Server;

/// <summary>
/// /v1/chat/completions and /v1/completions: the prompt (the chat template over the messages, or the text) goes to the
/// batched generator; the answer comes back whole or streamed as SSE chunks, stop sequences left out of the text as
/// OpenAI does. A client that disconnects cancels its sequence (its KV pages are freed at the next step).
/// </summary>
internal sealed class CompletionEndpoints(Model model, BatchedGenerator batch, string modelId, ServerMetrics metrics)
{
    private readonly ChatPrompt _chat = new(model, new ChatSettings());

    public async Task ChatAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        var req = await RequestReader.ReadAsync<ChatCompletionRequest>(ctx.Request, ct);
        RequestReader.CheckModel(req.Model, modelId);
        RequestReader.CheckN(req.N);
        if (req.Tools is { ValueKind: JsonValueKind.Array } tools && tools.GetArrayLength() > 0)
            throw ApiError.BadRequest("tools are not supported by this server yet", "tools");
        string? schema = SchemaOf(req.ResponseFormat);
        if (req.Messages is not { Count: > 0 } messages || messages.Any(m => m == null)) throw ApiError.BadRequest("'messages' must be a non-empty array of message objects", "messages");
        var conversation = messages.Select(Message).ToList();
        int[] prompt;
        try { prompt = _chat.Encode(conversation, []); }
        catch (Exception e) when (e is not ApiError) { throw ApiError.From(e, "messages"); }
        int maxTokens = RequestReader.MaxTokens(req.MaxCompletionTokens ?? req.MaxTokens, req.MaxCompletionTokens != null ? "max_completion_tokens" : "max_tokens",
            prompt.Length, batch.ContextLength, null);
        var (run, id, created) = Start(req, prompt, maxTokens, false, "messages", "chatcmpl-", ct, schema);
        if (!req.Stream)
        {
            var (text, stats) = await run.CompleteAsync(ct);
            await ctx.Response.WriteAsJsonAsync(new ChatCompletion(id, "chat.completion", created, modelId,
                [new ChatChoice(0, new ChatMessageOut("assistant", text), RequestReader.FinishReason(stats.StopReason))], UsageOf(stats), "ke"), Wire.Options, ct);
            return;
        }
        Sse.Start(ctx.Response);
        await Sse.WriteAsync(ctx.Response, new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId, [new ChatChunkChoice(0, new ChatDelta("assistant", ""), null)]), ct);
        await foreach (var piece in run.StreamAsync(ct))
            await Sse.WriteAsync(ctx.Response, new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId, [new ChatChunkChoice(0, new ChatDelta(null, piece), null)]), ct);
        var final = run.Stats!;
        await Sse.WriteAsync(ctx.Response, new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId,
            [new ChatChunkChoice(0, new ChatDelta(null, null), RequestReader.FinishReason(final.StopReason))]), ct);
        if (req.StreamOptions?.IncludeUsage == true)
            await Sse.WriteAsync(ctx.Response, new ChatCompletionChunk(id, "chat.completion.chunk", created, modelId, [], UsageOf(final)), ct);
        await Sse.DoneAsync(ctx.Response, ct);
    }

    public async Task CompletionAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        var req = await RequestReader.ReadAsync<CompletionRequest>(ctx.Request, ct);
        RequestReader.CheckModel(req.Model, modelId);
        RequestReader.CheckN(req.N);
        if (req.Echo) throw ApiError.BadRequest("echo is not supported", "echo");
        if (req.Logprobs is > 0) throw ApiError.BadRequest("logprobs are not supported yet", "logprobs");
        var (prompt, atStart) = PromptOf(req.Prompt);
        int maxTokens = RequestReader.MaxTokens(req.MaxTokens, "max_tokens", prompt.Length, batch.ContextLength, 16);
        var (run, id, created) = Start(req, prompt, maxTokens, atStart, "prompt", "cmpl-", ct);
        if (!req.Stream)
        {
            var (text, stats) = await run.CompleteAsync(ct);
            await ctx.Response.WriteAsJsonAsync(new Completion(id, "text_completion", created, modelId,
                [new CompletionChoice(0, text, RequestReader.FinishReason(stats.StopReason))], UsageOf(stats)), Wire.Options, ct);
            return;
        }
        Sse.Start(ctx.Response);
        await foreach (var piece in run.StreamAsync(ct))
            await Sse.WriteAsync(ctx.Response, new Completion(id, "text_completion", created, modelId, [new CompletionChoice(0, piece, null)], null), ct);
        var final = run.Stats!;
        await Sse.WriteAsync(ctx.Response, new Completion(id, "text_completion", created, modelId, [new CompletionChoice(0, "", RequestReader.FinishReason(final.StopReason))],
            req.StreamOptions?.IncludeUsage == true ? UsageOf(final) : null), ct);
        await Sse.DoneAsync(ctx.Response, ct);
    }

    /// <summary>"response_format": text (null), json_object (any object) or json_schema (its "schema").</summary>
    private static string? SchemaOf(JsonElement? format)
    {
        if (format is not { ValueKind: JsonValueKind.Object } rf || !rf.TryGetProperty("type", out var type)) return null;
        return type.GetString() switch
        {
            "text" => null,
            "json_object" => """{"type":"object"}""",
            "json_schema" when rf.TryGetProperty("json_schema", out var js) && js.TryGetProperty("schema", out var schema) => schema.GetRawText(),
            "json_schema" => throw ApiError.BadRequest("response_format json_schema needs json_schema.schema", "response_format"),
            var other => throw ApiError.BadRequest($"response_format '{other}' must be text, json_object or json_schema", "response_format"),
        };
    }

    /// <summary>"prompt": a string, an array of one string, or an array of token ids.</summary>
    private (int[] Ids, bool AtStart) PromptOf(JsonElement? prompt)
    {
        if (prompt is not { } p || p.ValueKind == JsonValueKind.Null) throw ApiError.BadRequest("'prompt' is required", "prompt");
        if (p.ValueKind == JsonValueKind.Array && p.GetArrayLength() == 1 && p[0].ValueKind == JsonValueKind.String) p = p[0];
        try
        {
            if (p.ValueKind == JsonValueKind.String)
            {
                string text = p.GetString()!;
                return (model.EncodePrompt(text, true), text.Length == 0);
            }
            if (p.ValueKind == JsonValueKind.Array && p.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number))
                return (p.EnumerateArray().Select(e => e.TryGetInt32(out int v) ? v : throw ApiError.BadRequest("token ids must be integers", "prompt")).ToArray(), false);
        }
        catch (Exception e) when (e is not ApiError) { throw ApiError.From(e, "prompt"); }
        throw ApiError.BadRequest("'prompt' must be a string, an array of one string or an array of token ids", "prompt");
    }

    /// <summary>A message's text: "content" as a string or as an array of text parts.</summary>
    private static ChatMessage Message(ChatMessageIn m, int index)
    {
        string role = m.Role switch
        {
            "system" or "user" or "assistant" or "tool" => m.Role,
            "developer" => "system",
            _ => throw ApiError.BadRequest($"messages[{index}].role '{m.Role}' must be system, developer, user, assistant or tool", "messages"),
        };
        string text;
        if (m.Content is not { } c || c.ValueKind == JsonValueKind.Null) text = "";
        else if (c.ValueKind == JsonValueKind.String) text = c.GetString()!;
        else if (c.ValueKind == JsonValueKind.Array)
        {
            var sb = new StringBuilder();
            foreach (var part in c.EnumerateArray())
            {
                if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var t) || t.GetString() != "text" || !part.TryGetProperty("text", out var tx) || tx.ValueKind != JsonValueKind.String)
                    throw ApiError.BadRequest($"messages[{index}].content: only text parts are supported", "messages");
                sb.Append(tx.GetString());
            }
            text = sb.ToString();
        }
        else throw ApiError.BadRequest($"messages[{index}].content must be a string or an array of text parts", "messages");
        return new ChatMessage(role, text) { Name = m.Name };
    }

    private static Usage UsageOf(GenerationStats s) => new(s.PromptTokens, s.GeneratedTokens, s.PromptTokens + s.GeneratedTokens);

    /// <summary>Submits a request's prompt with its sampling, stops and budget; its id and creation time for the response.</summary>
    private (Run Run, string Id, long Created) Start(GenerationRequest req, int[] prompt, int maxTokens, bool atStart, string promptParam, string idPrefix,
        CancellationToken ct, string? jsonSchema = null)
    {
        var settings = new GenerationSettings
        {
            MaxTokens = maxTokens, StopStrings = RequestReader.Stops(req.Stop), JsonSchema = jsonSchema,
            Sampling = RequestReader.Sampling(req.Temperature, req.TopP, req.TopK, req.MinP, req.RepetitionPenalty, req.Seed),
        };
        try { settings.Validate(); }
        catch (InvalidRequestException e) { throw ApiError.BadRequest(e.Message, jsonSchema != null ? "response_format" : null); }
        Run run;
        try { run = new Run(batch.Submit(prompt, settings, ct, atStart), settings.StopStrings, metrics); }
        catch (Exception e) { throw ApiError.From(e, promptParam); }
        return (run, idPrefix + Guid.NewGuid().ToString("N"), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
    }

    /// <summary>One request's generation: its text with stop sequences left out, then its stats.</summary>
    private sealed class Run(BatchedRequest request, IReadOnlyList<string> stops, ServerMetrics metrics)
    {
        private readonly StopTextFilter _filter = new(stops);
        private readonly long _start = System.Diagnostics.Stopwatch.GetTimestamp();
        public GenerationStats? Stats { get; private set; }

        public async IAsyncEnumerable<string> StreamAsync([EnumeratorCancellation] CancellationToken ct)
        {
            bool first = true;
            await foreach (var t in request.Tokens.WithCancellation(ct).ConfigureAwait(false))
            {
                if (first) { metrics.TimeToFirstToken(_start); first = false; }
                string shown = _filter.Push(t.Text);
                if (shown.Length > 0) yield return shown;
            }
            string tail = _filter.Flush();
            if (tail.Length > 0) yield return tail;
            Stats = await request.Completion.ConfigureAwait(false);
        }

        public async Task<(string Text, GenerationStats Stats)> CompleteAsync(CancellationToken ct)
        {
            var sb = new StringBuilder();
            await foreach (var piece in StreamAsync(ct).ConfigureAwait(false)) sb.Append(piece);
            return (sb.ToString(), Stats!);
        }
    }
}

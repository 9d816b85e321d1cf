using System.Security.Cryptography;
using System.Text;
using KernelEngine.Chat;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;

namespace KernelEngine.Server;

/// <summary>
/// An OpenAI-compatible HTTP server over one model (what <c>ke serve</c> runs), on ASP.NET Core minimal APIs:
/// <c>POST /v1/chat/completions</c>, <c>POST /v1/completions</c> (whole or streamed as server-sent events ending in
/// <c>data: [DONE]</c>), <c>POST /v1/embeddings</c>, <c>GET /v1/models</c>, <c>GET /health</c> and <c>GET /metrics</c>
/// (Prometheus text). Completions share one <see cref="BatchedGenerator"/> (continuous batching). Errors are OpenAI's
/// JSON shape: 400 naming the parameter, 401 without the key, 404 for another model, 429 when the queue is full, 503
/// while shutting down. It keeps no state between requests, so replicas go behind any load balancer. Stopping
/// (Ctrl+C, SIGTERM) lets the requests in flight finish (<see cref="ServerOptions.DrainTimeout"/>).
/// </summary>
public sealed class OpenAIServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly BatchedGenerator _batch;
    private readonly ServerMetrics _metrics;
    private readonly Lazy<KernelEngineEmbeddingGenerator> _embeddings;
    private readonly SemaphoreSlim _embeddingGate = new(1, 1);
    private volatile bool _stopping;

    private OpenAIServer(Model model, ServerOptions o)
    {
        Model = model;
        ModelId = o.ModelId ?? Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(model.Folder));
        _batch = new BatchedGenerator(model, new BatchedGeneratorOptions { MaxBatch = o.MaxBatch, MaxQueue = o.MaxQueue, ContextLength = o.ContextLength });
        _metrics = new ServerMetrics(() => _batch.Stats);
        _embeddings = new Lazy<KernelEngineEmbeddingGenerator>(() => new KernelEngineEmbeddingGenerator(model));

        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://{(o.Host.Contains(':') ? $"[{o.Host}]" : o.Host)}:{o.Port}");
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = o.DrainTimeout);
        builder.Services.AddOpenTelemetry().WithMetrics(m => m
            .AddMeter(Diagnostics.Telemetry.Name, ServerMetrics.MeterName, "Microsoft.AspNetCore.Hosting")
            .AddPrometheusExporter());
        _app = builder.Build();
        _app.Lifetime.ApplicationStopping.Register(() => _stopping = true);

        var completions = new CompletionEndpoints(model, _batch, ModelId, _metrics);
        _app.Use(async (ctx, next) =>
        {
            string route = ctx.Request.Path.Value ?? "";
            if (o.ApiKey != null && route.StartsWith("/v1", StringComparison.Ordinal) && !KeyMatches(ctx.Request, o.ApiKey))
                await Fail(ctx, new ApiError(401, "Incorrect API key provided: send it as 'Authorization: Bearer KEY'", null, "invalid_api_key"));
            else if (_stopping && route.StartsWith("/v1", StringComparison.Ordinal))
                await Fail(ctx, new ApiError(503, "the server is shutting down", null, "unavailable", "server_error"));
            else
            {
                try { await next(ctx); }
                catch (Exception e) when (!ctx.Response.HasStarted && !ctx.RequestAborted.IsCancellationRequested)
                {
                    await Fail(ctx, ApiError.From(e, null));
                }
                catch (Exception e) when (ctx.Response.HasStarted && !ctx.RequestAborted.IsCancellationRequested && e is not OperationCanceledException)
                {
                    // the stream has begun: the error goes in as an event, then the stream ends
                    var err = ApiError.From(e, null);
                    try { await Sse.WriteAsync(ctx.Response, err.Body, ctx.RequestAborted); } catch (Exception) { }
                }
                catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { }   // the client left
            }
            // the route's pattern, not the path: a label per distinct URL would grow without bound
            _metrics.Request((ctx.GetEndpoint() as Microsoft.AspNetCore.Routing.RouteEndpoint)?.RoutePattern.RawText ?? "unmatched", ctx.Response.StatusCode);
        });
        _app.MapPost("/v1/chat/completions", completions.ChatAsync);
        _app.MapPost("/v1/completions", completions.CompletionAsync);
        _app.MapPost("/v1/embeddings", EmbeddingsAsync);
        _app.MapGet("/v1/models", () => Results.Json(new ModelList([new ModelInfo(ModelId, Created)]), Wire.Options));
        _app.MapGet("/v1/models/{id}", (string id) => id == ModelId ? Results.Json(new ModelInfo(ModelId, Created), Wire.Options)
            : Results.Json(new ApiError(404, $"The model '{id}' does not exist", "model", "model_not_found").Body, Wire.Options, statusCode: 404));
        _app.MapGet("/health", Health);
        _app.MapPrometheusScrapingEndpoint("/metrics");
        _app.MapFallback((HttpContext ctx) => Fail(ctx, new ApiError(404, $"{ctx.Request.Method} {ctx.Request.Path} is not an endpoint of this server", null, "not_found")));
    }

    /// <summary>A server for <paramref name="model"/> (which the caller keeps and disposes after the server).</summary>
    public static OpenAIServer Build(Model model, ServerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new OpenAIServer(model, options ?? new ServerOptions());
    }

    /// <summary>The model served.</summary>
    public Model Model { get; }
    /// <summary>Its id in /v1/models and in requests.</summary>
    public string ModelId { get; }
    /// <summary>When the server was built (the model's "created").</summary>
    private static readonly long Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>The address it listens on, e.g. http://127.0.0.1:8080 (after <see cref="StartAsync"/>).</summary>
    public string Address => _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
        ?? throw new InvalidOperationException("the server is not started");

    /// <summary>The batched generator behind the completion endpoints.</summary>
    public BatchedGeneratorStats Stats => _batch.Stats;

    /// <summary>Starts listening.</summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _started, 1) == 0) await _app.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    private int _started;

    /// <summary>Starts (unless started) and runs until Ctrl+C / SIGTERM (or <paramref name="cancellationToken"/>), then drains.</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        await StartAsync(cancellationToken).ConfigureAwait(false);
        await _app.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops listening; requests in flight get up to the drain timeout to finish.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        _stopping = true;
        await _app.StopAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops, then frees the generator and the embedding session (not the model).</summary>
    public async ValueTask DisposeAsync()
    {
        _stopping = true;
        try { await _app.StopAsync().ConfigureAwait(false); } catch (Exception) { }
        await _app.DisposeAsync().ConfigureAwait(false);
        await _batch.DisposeAsync().ConfigureAwait(false);
        if (_embeddings.IsValueCreated) _embeddings.Value.Dispose();
        _metrics.Dispose();
    }

    private IResult Health()
    {
        var s = _batch.Stats;
        var body = new { status = _stopping ? "stopping" : "ok", model = ModelId, active = s.Active, queued = s.Queued, kv_pages_in_use = s.KvPagesInUse, kv_pages_shared = s.KvPagesShared, kv_pages = s.KvPages };
        return Results.Json(body, Wire.Options, statusCode: _stopping ? 503 : 200);
    }

    private async Task EmbeddingsAsync(HttpContext ctx)
    {
        var ct = ctx.RequestAborted;
        var req = await RequestReader.ReadAsync<EmbeddingRequest>(ctx.Request, ct);
        RequestReader.CheckModel(req.Model, ModelId);
        bool base64 = req.EncodingFormat switch
        {
            null or "float" => false,
            "base64" => true,
            _ => throw ApiError.BadRequest($"encoding_format '{req.EncodingFormat}' must be float or base64", "encoding_format"),
        };
        List<string> inputs;
        if (req.Input is { ValueKind: System.Text.Json.JsonValueKind.String } one) inputs = [one.GetString()!];
        else if (req.Input is { ValueKind: System.Text.Json.JsonValueKind.Array } many && many.GetArrayLength() > 0
            && many.EnumerateArray().All(e => e.ValueKind == System.Text.Json.JsonValueKind.String))
            inputs = many.EnumerateArray().Select(e => e.GetString()!).ToList();
        else throw ApiError.BadRequest("'input' must be a string or a non-empty array of strings", "input");
        await _embeddingGate.WaitAsync(ct);
        Microsoft.Extensions.AI.GeneratedEmbeddings<Microsoft.Extensions.AI.Embedding<float>> result;
        try { result = await _embeddings.Value.GenerateAsync(inputs, null, ct); }
        catch (Exception e) when (e is not OperationCanceledException) { throw ApiError.From(e, "input"); }
        finally { _embeddingGate.Release(); }
        int tokens = (int)(result.Usage?.InputTokenCount ?? 0);
        var data = result.Select((e, i) => new { @object = "embedding", index = i, embedding = base64 ? (object)Base64(e.Vector.ToArray()) : e.Vector.ToArray() }).ToList();
        await ctx.Response.WriteAsJsonAsync(new { @object = "list", data, model = ModelId, usage = new { prompt_tokens = tokens, total_tokens = tokens } }, Wire.Options, ct);
    }

    private static string Base64(float[] v) => Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan()));

    private static bool KeyMatches(HttpRequest request, string key)
    {
        string header = request.Headers.Authorization.ToString();
        const string bearer = "Bearer ";
        if (!header.StartsWith(bearer, StringComparison.OrdinalIgnoreCase)) return false;
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[bearer.Length..].Trim()), Encoding.UTF8.GetBytes(key));
    }

    private static Task Fail(HttpContext ctx, ApiError e)
    {
        ctx.Response.StatusCode = e.Status;
        return ctx.Response.WriteAsJsonAsync(e.Body, Wire.Options);
    }
}

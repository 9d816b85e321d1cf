namespace KernelEngine.Server;

/// <summary>What <c>ke serve</c> serves and how (<see cref="OpenAIServer.Build"/>).</summary>
public sealed record ServerOptions
{
    /// <summary>Address to listen on.</summary>
    public string Host { get; init; } = "127.0.0.1";
    /// <summary>Port to listen on (0: any free port; <see cref="OpenAIServer.Address"/> tells which).</summary>
    public int Port { get; init; } = 8080;
    /// <summary>When set, every /v1 request must carry <c>Authorization: Bearer</c> this key (401 otherwise).</summary>
    public string? ApiKey { get; init; }
    /// <summary>The model's id in /v1/models and in requests (default: its folder or file name).</summary>
    public string? ModelId { get; init; }
    /// <summary>Sequences decoded together (continuous batching).</summary>
    public int MaxBatch { get; init; } = 8;
    /// <summary>Requests that may wait for a slot; more get 429.</summary>
    public int MaxQueue { get; init; } = 64;
    /// <summary>The longest a request's sequence may grow (prompt + completion); 0: the model's context.</summary>
    public int ContextLength { get; init; }
    /// <summary>How long Ctrl+C / SIGTERM waits for requests in flight.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

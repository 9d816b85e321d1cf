using AI = Microsoft.Extensions.AI;

namespace KernelEngine.Chat;

/// <summary>
/// Microsoft.Extensions.AI's embedding generator over a model: each text's tokens (with BOS) run through the model, and
/// the final-normed hidden states are mean-pooled (or the last token's taken, <see cref="MeanPooling"/> off) and scaled to
/// unit length (<see cref="Session.Embed"/>). Runs off the caller's thread; calls run one at a time.
/// </summary>
public sealed class KernelEngineEmbeddingGenerator : AI.IEmbeddingGenerator<string, AI.Embedding<float>>
{
    private readonly Model _model;
    private readonly Session _session;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly AI.EmbeddingGeneratorMetadata _metadata;
    private int _disposed;

    /// <summary>A generator over <paramref name="model"/>: mean pooling, or the last token's state.</summary>
    public KernelEngineEmbeddingGenerator(Model model, bool meanPooling = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        MeanPooling = meanPooling;
        _session = model.CreateSession();
        _metadata = new AI.EmbeddingGeneratorMetadata("KernelEngine", null, Path.GetFileNameWithoutExtension(model.Folder.TrimEnd('/', '\\')), model.Config.HiddenSize);
    }

    /// <summary>Mean-pool the tokens' hidden states (else the last token's).</summary>
    public bool MeanPooling { get; }

    /// <summary>One unit-length embedding per text, with token usage.</summary>
    public async Task<AI.GeneratedEmbeddings<AI.Embedding<float>>> GenerateAsync(IEnumerable<string> values, AI.EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ArgumentNullException.ThrowIfNull(values);
        var texts = values.ToList();
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Task.Run(() =>
            {
                var result = new AI.GeneratedEmbeddings<AI.Embedding<float>>();
                long tokens = 0;
                foreach (var text in texts)
                {
                    var ids = _session.EncodePrompt(text ?? throw new InvalidRequestException("a text to embed is null"));
                    tokens += ids.Length;
                    result.Add(new AI.Embedding<float>(_session.Embed(ids, MeanPooling, cancellationToken))
                    {
                        ModelId = _metadata.DefaultModelId, CreatedAt = DateTimeOffset.UtcNow,
                    });
                }
                result.Usage = new AI.UsageDetails { InputTokenCount = tokens, TotalTokenCount = tokens };
                return result;
            }, cancellationToken).ConfigureAwait(false);
        }
        finally { _gate.Release(); }
    }

    /// <summary>The generator's metadata, the generator itself, or its <see cref="Model"/>.</summary>
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey != null ? null
        : serviceType == typeof(AI.EmbeddingGeneratorMetadata) ? _metadata
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType == typeof(Model) ? _model
        : null;

    /// <summary>Frees the generator's session.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _session.Dispose();
        _gate.Dispose();
    }
}

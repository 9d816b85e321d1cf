using KernelEngine.Backends;
using KernelEngine.Formats;
using KernelEngine.Models;
using KernelEngine.Text;

namespace KernelEngine;

/// <summary>
/// A loaded model: config, tokenizer and weights on a backend. Thread-safe to share; each
/// <see cref="Session"/> holds its own KV cache and buffers, so several can run at once.
/// <code>
/// using var model = Model.Load("models/stories260K");
/// using var session = model.CreateSession();
/// await foreach (var t in session.GenerateAsync("Once upon a time", new GenerationSettings { MaxTokens = 64 }))
///     Console.Write(t.Text);
/// </code>
/// </summary>
public sealed class Model : IDisposable
{
    private readonly TensorStore _store;
    private readonly IBackend _backend;
    private bool _disposed;

    private Model(string folder, ModelConfig config, Tokenizer tokenizer, TensorStore store, IBackend backend, Transformer transformer, ModelOptions options)
    {
        Folder = folder; Config = config; Tokenizer = tokenizer; _store = store; _backend = backend; Transformer = transformer; Options = options;
        ContextLength = Math.Min(options.ContextLength ?? config.MaxPositions, config.MaxPositions);
    }

    public string Folder { get; }
    public ModelConfig Config { get; }
    public Tokenizer Tokenizer { get; }
    public ModelOptions Options { get; }
    public DeviceInfo Device => _backend.Device;
    public int ContextLength { get; }
    internal Transformer Transformer { get; }
    internal IBackend Backend => _backend;
    /// <summary>The profiler when loaded with <see cref="ModelOptions.Profile"/>.</summary>
    public ProfilingBackend? Profiler => _backend as ProfilingBackend;
    /// <summary>Kernel launches (GPU) or ops (CPU) issued by this model's backend so far.</summary>
    public long Launches => _backend.Launches;

    /// <summary>Loads a Hugging Face model folder (config.json, *.safetensors, tokenizer).</summary>
    public static Model Load(string folder, ModelOptions? options = null)
    {
        options ??= new ModelOptions();
        if (!Directory.Exists(folder)) throw new ModelFormatException(folder, "model folder not found");
        var config = ModelConfig.Load(Path.Combine(folder, "config.json"));
        if (options.ContextLength is int ctx && (ctx <= 0 || ctx > config.MaxPositions))
            throw new InvalidRequestException($"context length {ctx} is outside 1..{config.MaxPositions} (the model's max_position_embeddings)");
        var tokenizer = TokenizerLoader.FromFolder(folder, config);
        var store = TensorStore.OpenFolder(folder);
        IBackend? backend = null;
        try
        {
            backend = Devices.Create(options.Device, options.CopyWeights);
            if (options.Profile) backend = new ProfilingBackend(backend);
            var weights = WeightLoader.Load(store, config, backend);
            return new Model(folder, config, tokenizer, store, backend, new Transformer(config, weights, backend), options);
        }
        catch
        {
            backend?.Dispose();
            store.Dispose();
            throw;
        }
    }

    public Session CreateSession()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new Session(this);
    }

    /// <summary>Parameters per tensor dtype, counted from the files (tied weights once).</summary>
    public long ParameterCount => _store.Tensors.Sum(t => QuantizedFormat.Of(_store, t.Name) is { } q ? q.LogicalShape[0] * q.LogicalShape[1] : t.Elements);
    public long WeightBytes => Transformer.Weights.Bytes;
    internal TensorStore Store => _store;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Transformer.Dispose();
        _backend.Dispose();
        _store.Dispose();
    }
}

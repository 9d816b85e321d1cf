using KernelEngine.Backends;
using KernelEngine.Formats;
using KernelEngine.Models;
using KernelEngine.Text;

namespace KernelEngine;

/// <summary>
/// A loaded model: config, tokenizer and weights on a backend. Thread-safe to share on every backend; each
/// <see cref="Session"/> holds its own KV cache, activation buffers and device scratch, so several can run at once.
/// <para>Lifetime: <see cref="Dispose"/> frees the weights and the device once no session call is running (a call in
/// flight keeps the model alive until it returns); afterwards every member of the model and of its sessions throws
/// <see cref="ObjectDisposedException"/>.</para>
/// <code>
/// using var model = Model.Load("models/stories260K");
/// using var session = model.CreateSession();
/// await foreach (var t in session.GenerateAsync("Once upon a time", new GenerationSettings { MaxTokens = 64 }))
///     Console.Write(t.Text);
/// </code>
/// </summary>
public sealed class Model : IDisposable
{
    private readonly ITensorSource _store;
    private readonly IBackend _backend;
    private readonly HashSet<Session> _sessions = new(ReferenceEqualityComparer.Instance);
    private int _leases;       // session calls in flight
    private int _disposed;     // 1 once Dispose was called
    private int _freed;        // 1 once the resources are released

    private Model(string folder, ModelConfig config, Tokenizer tokenizer, ITensorSource store, IBackend backend, Transformer transformer, ModelOptions options)
    {
        _folder = folder; _config = config; _tokenizer = tokenizer; _store = store; _backend = backend; _transformer = transformer; _options = options;
        _contextLength = Math.Min(options.ContextLength ?? config.MaxPositions, config.MaxPositions);
    }

    private readonly string _folder;
    private readonly ModelConfig _config;
    private readonly Tokenizer _tokenizer;
    private readonly ModelOptions _options;
    private readonly int _contextLength;
    private readonly Transformer _transformer;

    private string? _chatTemplate;
    private (string? Bos, string? Eos) _specialTokens;
    private string? _toolUseTemplate;

    /// <summary>The model folder or GGUF file it was loaded from.</summary>
    public string Folder => Alive()._folder;
    /// <summary>The model's chat template (Jinja source) from tokenizer_config.json or GGUF metadata, or null.</summary>
    public string? ChatTemplate => Alive()._chatTemplate;
    /// <summary>tokenizer_config.json's template named "tool_use" (used when tools are offered), or null.</summary>
    public string? ToolUseChatTemplate => Alive()._toolUseTemplate;
    /// <summary>The text of the BOS / EOS token as chat templates print it (tokenizer_config.json, else the vocabulary's piece).</summary>
    public string BosText => Alive()._specialTokens.Bos ?? (_tokenizer.BosId is int b ? _tokenizer.Piece(b) : "");
    /// <summary>The text of the first EOS token as chat templates print it.</summary>
    public string EosText => Alive()._specialTokens.Eos ?? (_tokenizer.EosIds.Count > 0 ? _tokenizer.Piece(_tokenizer.EosIds[0]) : "");

    /// <summary>A chat over this model: a conversation rendered with its chat template, streamed answers, a KV cache reused
    /// across turns. Dispose it (or the model) to free its cache.</summary>
    public Chat.ChatSession CreateChat(Chat.ChatSettings? settings = null) => new(this, settings ?? new Chat.ChatSettings());

    /// <summary>This model as Microsoft.Extensions.AI's IChatClient (one conversation cache; dispose the client to free it).</summary>
    public Chat.KernelEngineChatClient AsChatClient(Chat.ChatSettings? settings = null) => new(this, settings);

    /// <summary>This model as Microsoft.Extensions.AI's embedding generator (normalized mean-pooled hidden states).</summary>
    public Chat.KernelEngineEmbeddingGenerator AsEmbeddingGenerator(bool meanPooling = true) => new(this, meanPooling);
    /// <summary>The architecture's configuration (config.json or GGUF metadata).</summary>
    public ModelConfig Config => Alive()._config;
    /// <summary>The model's tokenizer.</summary>
    public Tokenizer Tokenizer => Alive()._tokenizer;
    /// <summary>The options it was loaded with.</summary>
    public ModelOptions Options => Alive()._options;
    /// <summary>The device the weights are on.</summary>
    public DeviceInfo Device => Alive()._backend.Device;
    /// <summary>Positions each session holds.</summary>
    public int ContextLength => Alive()._contextLength;
    internal Transformer Transformer => Alive()._transformer;
    internal IBackend Backend => Alive()._backend;
    internal IBackend BackendUnchecked => _backend;
    /// <summary>The profiler when loaded with <see cref="ModelOptions.Profile"/>.</summary>
    internal ProfilingBackend? Profiler => Alive()._backend as ProfilingBackend;
    /// <summary>Kernel launches (GPU) or ops (CPU) issued by this model's backend so far.</summary>
    public long Launches => Alive()._backend.Launches;
    /// <summary>True once <see cref="Dispose"/> was called.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    private Model Alive()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return this;
    }

    /// <summary>Loads a Hugging Face model folder (config.json, *.safetensors, tokenizer) or a GGUF file.</summary>
    public static Model Load(string folder, ModelOptions? options = null) => LoadCore(folder, options, null, default);

    /// <summary>Loads off the caller's thread, reporting progress (reading files, then each weight uploaded, then ready) and
    /// stopping between weights when <paramref name="cancellationToken"/> fires (everything made so far is freed).</summary>
    public static Task<Model> LoadAsync(string folder, ModelOptions? options = null, IProgress<LoadProgress>? progress = null,
        CancellationToken cancellationToken = default) =>
        Task.Run(() => LoadCore(folder, options, progress, cancellationToken), cancellationToken);

    private static Model LoadCore(string folder, ModelOptions? options, IProgress<LoadProgress>? progress, CancellationToken ct)
    {
        options ??= new ModelOptions();
        ct.ThrowIfCancellationRequested();
        using var activity = Diagnostics.Telemetry.Source.StartActivity("ke.load");
        activity?.SetTag("ke.model", folder);
        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            var model = Open(folder, options, progress, ct);
            Diagnostics.Telemetry.LoadSeconds.Record(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds);
            return model;
        }
        catch (Exception e)
        {
            activity?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, e.Message);
            throw;
        }
    }

    private static Model Open(string folder, ModelOptions options, IProgress<LoadProgress>? progress, CancellationToken ct)
    {
        progress?.Report(new LoadProgress("reading", 0));
        options.Validate();
        var files = ModelFiles.Open(folder);
        var config = files.Config;
        var store = files.Tensors;
        Tokenizer tokenizer;
        string? chatTemplate;
        (string?, string?) specialTokens = (null, null);
        string? toolUse = null;
        try
        {
            if (options.ContextLength is int ctx && (ctx <= 0 || ctx > config.MaxPositions))
                throw new InvalidRequestException($"context length {ctx} is outside 1..{config.MaxPositions} (the model's max_position_embeddings)");
            tokenizer = files.LoadTokenizer();
            chatTemplate = files.LoadChatTemplate();
            if (Directory.Exists(files.Path))
            {
                specialTokens = ChatTemplates.SpecialTokensFromFolder(files.Path);
                toolUse = ChatTemplates.NamedFromFolder(files.Path).GetValueOrDefault("tool_use");
            }
        }
        catch
        {
            files.Dispose();
            throw;
        }
        IBackend? backend = null;
        TransformerWeights? weights = null;
        try
        {
            backend = Devices.Create(options.Device, options.CopyWeights, options.Threads);
            if (options.Profile) backend = new ProfilingBackend(backend);
            weights = WeightLoader.Load(store, config, backend,
                progress == null ? null : (done, total, name) => progress.Report(new LoadProgress("weights", (double)done / total, name)), ct);
            progress?.Report(new LoadProgress("ready", 1));
            return new Model(folder, config, tokenizer, store, backend, new Transformer(config, weights, backend, Math.Min(options.ContextLength ?? config.MaxPositions, config.MaxPositions)), options) { _chatTemplate = chatTemplate, _specialTokens = specialTokens, _toolUseTemplate = toolUse };
        }
        catch
        {
            weights?.Dispose();
            backend?.Dispose();
            store.Dispose();
            throw;
        }
    }

    /// <summary>A session: its own KV cache and buffers on this model. Dispose it to free them.</summary>
    public Session CreateSession()
    {
        var lease = Acquire();
        try
        {
            var session = new Session(this);
            lock (_sessions) _sessions.Add(session);
            return session;
        }
        finally { lease.Dispose(); }
    }

    /// <summary>Encodes a prompt as the model expects: BOS (Llama family) + text; an empty prompt is BOS alone (what
    /// <see cref="Session.EncodePrompt"/> does, for callers without a session, such as a <see cref="BatchedGenerator"/>).</summary>
    public int[] EncodePrompt(string prompt, bool addBos = true)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var tok = Tokenizer;
        if (prompt.Length == 0)
        {
            int? start = tok.BosId ?? Config.BosTokenId;
            return start is int b ? [b] : throw new InvalidRequestException("empty prompt and the model has no BOS token");
        }
        return tok.Encode(prompt, addBos);
    }

    /// <summary>Parameters per tensor dtype, counted from the files (tied weights once).</summary>
    public long ParameterCount => Alive()._store.Entries.Sum(t => t.Elements);
    /// <summary>Bytes of the weights as the backend holds them.</summary>
    public long WeightBytes => Alive()._transformer.Weights.Bytes;
    internal TensorStore? Store => Alive()._store as TensorStore;

    /// <summary>Keeps the model's resources alive for one session call; throws <see cref="ObjectDisposedException"/> once disposed.</summary>
    internal Lease Acquire()
    {
        Interlocked.Increment(ref _leases);
        if (Volatile.Read(ref _disposed) != 0)
        {
            Release();
            throw new ObjectDisposedException(nameof(Model), "the model was disposed");
        }
        return new Lease(this);
    }

    private void Release()
    {
        if (Interlocked.Decrement(ref _leases) == 0 && Volatile.Read(ref _disposed) != 0) Free();
    }

    internal readonly struct Lease(Model model) : IDisposable
    {
        /// <summary>Frees the weights and the device once no session call is running.</summary>
        public void Dispose() => model?.Release();
    }

    internal void Forget(Session session)
    {
        lock (_sessions) _sessions.Remove(session);
    }

    /// <summary>Frees the weights, the device and every session's cache; a call in flight finishes first.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (Volatile.Read(ref _leases) == 0) Free();
    }

    private void Free()
    {
        if (Interlocked.Exchange(ref _freed, 1) != 0) return;
        Session[] sessions;
        lock (_sessions) { sessions = _sessions.ToArray(); _sessions.Clear(); }
        foreach (var s in sessions) s.ReleaseDeviceState();
        _transformer.Dispose();
        _backend.Dispose();
        _store.Dispose();
    }
}

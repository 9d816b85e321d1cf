using System.Runtime.InteropServices;
using KernelEngine.Formats;

namespace KernelEngine.Decoding;

/// <summary>
/// Log-probabilities of a base model for every scored position (like llama-perplexity's --kl-divergence-base),
/// so a large base runs once. Stored as safetensors: "tokens" I32 (n + 1) and "log_probs" F32 (n, vocab) where
/// row i is the base's log-softmax predicting tokens[i + 1] (windowing as recorded in metadata).
/// In memory (<see cref="LogProbs"/>, from <see cref="Scorer.ComputeBase"/>), or read from a file one row at a time
/// (<see cref="Load"/>: memory stays one row however long the text; dispose it to close the file).
/// </summary>
public sealed class BaseLogProbs : IDisposable
{
    /// <summary>The scored tokens (n + 1, BOS first).</summary>
    public required int[] Tokens { get; init; }
    /// <summary>(n, vocab) when held in memory; null when rows are read from the file (<see cref="Load"/>).</summary>
    public float[]? LogProbs { get; init; }
    /// <summary>Vocabulary size (the length of a row).</summary>
    public required int Vocab { get; init; }
    /// <summary>Window the base was run with.</summary>
    public required int Context { get; init; }
    /// <summary>Stride of the windows.</summary>
    public required int Stride { get; init; }

    private FileStream? _file;
    private long _rowsAt;
    private float[]? _row;

    /// <summary>Row i (vocab): the base's log-softmax predicting Tokens[i + 1]. A file-backed row is valid until the next call.</summary>
    public ReadOnlySpan<float> Row(int i)
    {
        if (LogProbs != null) return LogProbs.AsSpan((int)((long)i * Vocab), Vocab);
        if (_file == null) throw new ObjectDisposedException(nameof(BaseLogProbs));
        _row ??= new float[Vocab];
        var bytes = MemoryMarshal.AsBytes(_row.AsSpan());
        int read = RandomAccess.Read(_file.SafeFileHandle, bytes, _rowsAt + (long)i * Vocab * 4);
        if (read != bytes.Length) throw new ModelFormatException(_file.Name, $"row {i} of the base log-probs is truncated");
        return _row;
    }

    /// <summary>Writes the log-probs to a safetensors file.</summary>
    public void Save(string path)
    {
        if (LogProbs == null) { File.Copy(_file!.Name, path, overwrite: true); return; }
        Write(path, Tokens, Vocab, Context, Stride, stream => stream.Write(MemoryMarshal.AsBytes(LogProbs.AsSpan())));
    }

    /// <summary>Writes a base log-probs file whose rows <paramref name="rows"/> writes in order ((n - 1) × vocab floats).</summary>
    internal static void Write(string path, int[] tokens, int vocab, int context, int stride, Action<Stream> rows) =>
        new SafeTensorsWriter()
            .Metadata("ke.kind", "base-log-probs").Metadata("ke.context", context.ToString()).Metadata("ke.stride", stride.ToString())
            .Add("tokens", SafeTensorDType.I32, [tokens.Length], MemoryMarshal.AsBytes(tokens.AsSpan()).ToArray())
            .Declare("log_probs", SafeTensorDType.F32, [tokens.Length - 1, vocab])
            .Write(path, rows);

    /// <summary>Opens a file written by <see cref="Save"/> (or <c>ke score --save-base</c>); rows are read as they are asked for.</summary>
    public static BaseLogProbs Load(string path)
    {
        int[] tokens;
        long rowsAt;
        int vocab, context, stride;
        using (var f = SafeTensorsFile.Open(path))
        {
            if (!f.Metadata.TryGetValue("ke.kind", out var kind) || kind != "base-log-probs")
                throw new ModelFormatException(path, "not a base log-probs file (written by ke score --save-base)");
            if (!f.Tensors.TryGetValue("tokens", out var t) || !f.Tensors.TryGetValue("log_probs", out var lp) || lp.Shape.Length != 2
                || t.DType != SafeTensorDType.I32 || lp.DType != SafeTensorDType.F32 || lp.Shape[0] != t.Elements - 1 || lp.Shape[1] is < 1 or > int.MaxValue / 4)
                throw new ModelFormatException(path, "expected tensors 'tokens' (I32, n + 1) and 'log_probs' (F32, n x vocab)");
            tokens = MemoryMarshal.Cast<byte, int>(f.Data(t)).ToArray();
            rowsAt = f.FileOffset(lp);
            vocab = (int)lp.Shape[1];
            context = int.TryParse(f.Metadata.GetValueOrDefault("ke.context", "0"), out int c) ? c : 0;
            stride = int.TryParse(f.Metadata.GetValueOrDefault("ke.stride", "0"), out int s) ? s : 0;
        }
        return new BaseLogProbs
        {
            Tokens = tokens, Vocab = vocab, Context = context, Stride = stride,
            _file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess), _rowsAt = rowsAt,
        };
    }

    /// <summary>Closes the file a loaded instance reads from.</summary>
    public void Dispose()
    {
        _file?.Dispose();
        _file = null;
    }
}

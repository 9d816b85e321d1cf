using KernelEngine.Formats;

namespace KernelEngine.Decoding;

/// <summary>
/// Log-probabilities of a base model for every scored position (like llama-perplexity's --kl-divergence-base),
/// so a large base runs once. Stored as safetensors: "tokens" I32 (n + 1) and "log_probs" F32 (n, vocab) where
/// row i is the base's log-softmax predicting tokens[i + 1] (windowing as recorded in metadata).
/// </summary>
public sealed class BaseLogProbs
{
    public required int[] Tokens { get; init; }
    public required float[] LogProbs { get; init; }   // (n, vocab)
    public required int Vocab { get; init; }
    public required int Context { get; init; }
    public required int Stride { get; init; }

    public ReadOnlySpan<float> Row(int i) => LogProbs.AsSpan(i * Vocab, Vocab);

    public void Save(string path)
    {
        var tokenBytes = new byte[Tokens.Length * 4];
        Buffer.BlockCopy(Tokens, 0, tokenBytes, 0, tokenBytes.Length);
        var lpBytes = new byte[LogProbs.Length * 4L];
        Buffer.BlockCopy(LogProbs, 0, lpBytes, 0, lpBytes.Length);
        new SafeTensorsWriter()
            .Metadata("ke.kind", "base-log-probs").Metadata("ke.context", Context.ToString()).Metadata("ke.stride", Stride.ToString())
            .Add("tokens", SafeTensorDType.I32, [Tokens.Length], tokenBytes)
            .Add("log_probs", SafeTensorDType.F32, [LogProbs.Length / Vocab, Vocab], lpBytes)
            .Write(path);
    }

    public static BaseLogProbs Load(string path)
    {
        using var f = SafeTensorsFile.Open(path);
        if (!f.Metadata.TryGetValue("ke.kind", out var kind) || kind != "base-log-probs")
            throw new ModelFormatException(path, "not a base log-probs file (written by ke score --save-base)");
        if (!f.Tensors.TryGetValue("tokens", out var t) || !f.Tensors.TryGetValue("log_probs", out var lp) || lp.Shape.Length != 2
            || t.DType != SafeTensorDType.I32 || lp.DType != SafeTensorDType.F32)
            throw new ModelFormatException(path, "expected tensors 'tokens' (I32) and 'log_probs' (F32, 2-D)");
        var tokens = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(f.Data(t)).ToArray();
        var rows = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(f.Data(lp)).ToArray();
        return new BaseLogProbs
        {
            Tokens = tokens, LogProbs = rows, Vocab = (int)lp.Shape[1],
            Context = int.Parse(f.Metadata.GetValueOrDefault("ke.context", "0")), Stride = int.Parse(f.Metadata.GetValueOrDefault("ke.stride", "0")),
        };
    }
}

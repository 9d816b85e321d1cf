using KernelEngine.Formats;

namespace KernelEngine.Text;

/// <summary>
/// The tokenizer stored in a GGUF file's metadata: <c>tokenizer.ggml.model</c> "llama" (SentencePiece pieces, scores
/// and types, byte fallback) or "gpt2" (byte-level BPE vocabulary and merges, the pre-tokenizer chosen by
/// <c>tokenizer.ggml.pre</c>), with BOS/EOS ids and the add-BOS flag.
/// </summary>
public static class GgufTokenizer
{
    /// <summary>Pre-tokenizer regexes of llama.cpp's <c>tokenizer.ggml.pre</c> values (llama-vocab.cpp).</summary>
    private static readonly Dictionary<string, string> PreTokenizers = new()
    {
        ["default"] = ByteLevelBpeTokenizer.Gpt2Pattern,
        ["gpt2"] = ByteLevelBpeTokenizer.Gpt2Pattern,
        ["llama-bpe"] = PreTokenizerPatterns.Llama3,
        ["llama3"] = PreTokenizerPatterns.Llama3,
        ["qwen2"] = PreTokenizerPatterns.Qwen2,
        ["smollm"] = PreTokenizerPatterns.SmolLm,
    };

    internal static Tokenizer FromGguf(GgufFile f, ModelConfig config)
    {
        string path = f.Path;
        string model = f.GetString("tokenizer.ggml.model") ?? throw new TokenizerException($"{path}: no tokenizer (key 'tokenizer.ggml.model' is missing)");
        var tokens = f.Get<string[]>("tokenizer.ggml.tokens") ?? throw new TokenizerException($"{path}: key 'tokenizer.ggml.tokens' is missing");
        if (tokens.Length == 0 || tokens.Length > ModelConfig.Limits.MaxVocab) throw new TokenizerException($"{path}: {tokens.Length} tokens");
        var types = f.Get<long[]>("tokenizer.ggml.token_type");
        if (types != null && types.Length != tokens.Length) throw new TokenizerException($"{path}: {types.Length} token types for {tokens.Length} tokens");
        Tokenizer t;
        bool addBosDefault;
        switch (model)
        {
            case "llama":
            {
                var scores = f.Get<double[]>("tokenizer.ggml.scores");
                if (scores != null && scores.Length != tokens.Length) throw new TokenizerException($"{path}: {scores.Length} scores for {tokens.Length} tokens");
                var pieceTypes = new SentencePieceModel.PieceType[tokens.Length];
                for (int i = 0; i < tokens.Length; i++)
                {
                    long ty = types?[i] ?? 1;
                    pieceTypes[i] = ty is >= 1 and <= 6 ? (SentencePieceModel.PieceType)ty : throw new TokenizerException($"{path}: token {i} has type {ty}");
                }
                var spm = new SentencePieceModel
                {
                    Pieces = tokens, Scores = scores?.Select(s => (float)s).ToArray() ?? new float[tokens.Length], Types = pieceTypes, ModelType = 2,
                    AddDummyPrefix = f.GetBool("tokenizer.ggml.add_space_prefix") ?? true, RemoveExtraWhitespaces = false,
                    ByteFallback = pieceTypes.Contains(SentencePieceModel.PieceType.Byte),
                };
                t = new SentencePieceTokenizer(path, spm.ToProto());
                addBosDefault = true;
                break;
            }
            case "gpt2":
            {
                var merges = f.Get<string[]>("tokenizer.ggml.merges") ?? throw new TokenizerException($"{path}: key 'tokenizer.ggml.merges' is missing");
                string pre = f.GetString("tokenizer.ggml.pre") ?? "default";
                if (!PreTokenizers.TryGetValue(pre, out var pattern))
                    throw new TokenizerException($"{path}: pre-tokenizer '{pre}' is not supported ({string.Join(", ", PreTokenizers.Keys)})");
                t = ByteLevelBpeTokenizer.FromGgufVocabulary(path, tokens, types, merges, pattern);
                addBosDefault = false;
                break;
            }
            default:
                throw new TokenizerException($"{path}: tokenizer model '{model}' is not supported (llama, gpt2)");
        }
        bool addBos = f.GetBool("tokenizer.ggml.add_bos_token") ?? addBosDefault;
        t.BosId = addBos ? config.BosTokenId : null;
        t.EosIds = config.EosTokenIds;
        return t;
    }
}

using KernelEngine.Formats;

namespace KernelEngine.Text;

/// <summary>Finds and loads the tokenizer of a model folder, with BOS/EOS from config.json.</summary>
public static class TokenizerLoader
{
    /// <summary>The tokenizer of a model folder: tokenizer.json (byte-level BPE) or tokenizer.model (SentencePiece), its special tokens from <paramref name="config"/>.</summary>
    public static Tokenizer FromFolder(string folder, ModelConfig? config = null)
    {
        string spm = Path.Combine(folder, "tokenizer.model");
        string json = Path.Combine(folder, "tokenizer.json");
        string vocab = Path.Combine(folder, "vocab.json"), merges = Path.Combine(folder, "merges.txt");
        Tokenizer t;
        if (File.Exists(spm)) t = new SentencePieceTokenizer(spm);
        else if (File.Exists(json)) t = ByteLevelBpeTokenizer.FromTokenizerJson(json);
        else if (File.Exists(vocab) && File.Exists(merges)) t = ByteLevelBpeTokenizer.FromVocabAndMerges(vocab, merges);
        else throw new TokenizerException($"{folder}: no tokenizer (tokenizer.model, tokenizer.json, or vocab.json + merges.txt)");
        if (config == null) return t;
        // BOS only where the family prepends it (Llama); GPT-2's bos id is just <|endoftext|>.
        t.BosId = config.Architecture == Architecture.Llama ? config.BosTokenId : null;
        t.EosIds = config.EosTokenIds;
        return t;
    }
}

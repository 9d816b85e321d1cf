using KernelEngine.Text;

namespace KernelEngine.Formats;

/// <summary>
/// A model on disk, whatever its packaging: a Hugging Face folder (config.json, *.safetensors, tokenizer files; a hub
/// cache snapshot of symlinks too) or one GGUF file. Gives the config, the tensors under Hugging Face names and the
/// tokenizer; everything above (loader, forward pass, CLI) is the same for both.
/// </summary>
internal sealed class ModelFiles : IDisposable
{
    public string Path { get; }
    public ModelConfig Config { get; }
    public ITensorSource Tensors { get; }
    public bool IsGguf => Tensors is GgufTensorSource;

    private ModelFiles(string path, ModelConfig config, ITensorSource tensors) { Path = path; Config = config; Tensors = tensors; }

    public static ModelFiles Open(string path)
    {
        if (File.Exists(path))
        {
            if (!GgufFile.LooksLikeGguf(path)) throw new ModelFormatException(path, "not a model: give a model folder or a .gguf file");
            var source = new GgufTensorSource(GgufFile.Open(path));
            try { return new ModelFiles(path, source.ReadConfig(), source); }
            catch { source.Dispose(); throw; }
        }
        if (!Directory.Exists(path)) throw new ModelFormatException(path, "model folder or file not found");
        var config = ModelConfig.Load(System.IO.Path.Combine(path, "config.json"));
        return new ModelFiles(path, config, TensorStore.OpenFolder(path));
    }

    /// <summary>The model's chat template (Jinja source), or null when it ships none.</summary>
    public string? LoadChatTemplate() => Tensors is GgufTensorSource g ? ChatTemplates.FromGguf(g.File) : ChatTemplates.FromFolder(Path);

    public Tokenizer LoadTokenizer() => Tensors is GgufTensorSource g
        ? GgufTokenizer.FromGguf(g.File, Config)
        : TokenizerLoader.FromFolder(Path, Config);

    public void Dispose() => Tensors.Dispose();
}

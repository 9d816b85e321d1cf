using System.CommandLine;
using KernelEngine.Formats;
using KernelEngine.Models;
using KernelEngine.Kernels;

namespace KernelEngine.Cli;

internal static class InspectCommand
{
    public static Command Create()
    {
        var model = CliCommon.Model(); var json = CliCommon.Json();
        var cmd = new Command("inspect", "Show a model folder: architecture, sizes, parameter count, bytes per dtype, tensor table") { model, json };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            string dir = p.GetValue(model)!;
            using var files = ModelFiles.Open(dir);
            var config = files.Config;
            WeightLoader.Validate(files.Tensors, config);
            var tensors = files.Tensors.Entries.Select(t => new { name = t.Name, dtype = t.Type, shape = t.Shape, elements = t.Elements, bytes = t.Bytes }).ToList();
            long parameters = tensors.Sum(t => t.elements);
            var byDtype = tensors.GroupBy(t => t.dtype).ToDictionary(g => g.Key, g => new { tensors = g.Count(), parameters = g.Sum(t => t.elements), bytes = g.Sum(t => t.bytes) });
            var summary = new
            {
                folder = Path.GetFullPath(dir),
                architecture = config.Architecture.ToString().ToLowerInvariant(),
                model_type = config.ModelType,
                layers = config.Layers, heads = config.Heads, kv_heads = config.KvHeads, head_dim = config.HeadDim,
                dim = config.HiddenSize, intermediate = config.IntermediateSize, vocab = config.VocabSize,
                max_positions = config.MaxPositions, rope_theta = config.RopeTheta, norm_eps = config.NormEps,
                tie_word_embeddings = config.TieWordEmbeddings, bos_token_id = config.BosTokenId, eos_token_ids = config.EosTokenIds,
                parameters, bytes = tensors.Sum(t => t.bytes), by_dtype = byDtype, tensors,
            };
            if (p.GetValue(json)) { CliCommon.PrintJson(summary); return 0; }
            Console.WriteLine($"{summary.folder}");
            Console.WriteLine($"architecture {summary.architecture} ({config.ModelType}), {config.Layers} layers, {config.Heads} heads, {config.KvHeads} KV heads, head dim {config.HeadDim}");
            Console.WriteLine($"dim {config.HiddenSize}, MLP {config.IntermediateSize}, vocab {config.VocabSize}, context {config.MaxPositions}, rope theta {config.RopeTheta}, tied embeddings {config.TieWordEmbeddings}");
            Console.WriteLine($"parameters {parameters:N0} in {tensors.Count} tensors, {summary.bytes:N0} bytes");
            foreach (var (k, v) in byDtype) Console.WriteLine($"  {k,-5} {v.tensors,5} tensors {v.parameters,15:N0} params {v.bytes,15:N0} bytes");
            Console.WriteLine();
            foreach (var t in tensors) Console.WriteLine($"  {t.name,-50} {t.dtype,-5} [{string.Join(", ", t.shape)}]");
            return 0;
        }));
        return cmd;
    }
}

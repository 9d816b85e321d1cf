using System.CommandLine;
using KernelEngine.Formats;
using KernelEngine.Text;

namespace KernelEngine.Cli;

internal static class TokenizeCommand
{
    public static Command Create()
    {
        var model = CliCommon.Model(); var json = CliCommon.Json();
        var text = new Option<string>("--text", "-t") { Description = "Text to encode", Required = true };
        var noBos = new Option<bool>("--no-bos") { Description = "Do not prepend BOS" };
        var cmd = new Command("tokenize", "Encode text with a model's tokenizer: ids and pieces") { model, text, noBos, json };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            string dir = p.GetValue(model)!;
            using var files = ModelFiles.Open(dir);
            var tok = files.LoadTokenizer();
            var ids = tok.Encode(p.GetValue(text)!, addBos: !p.GetValue(noBos));
            var pieces = ids.Select(tok.Piece).ToArray();
            if (p.GetValue(json)) CliCommon.PrintJson(new { ids, pieces, count = ids.Length });
            else
            {
                foreach (var (id, piece) in ids.Zip(pieces)) Console.WriteLine($"{id,8}  {piece}");
                Console.WriteLine($"{ids.Length} tokens");
            }
            return 0;
        }));
        return cmd;
    }
}

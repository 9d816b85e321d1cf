using System.CommandLine;
using System.Text;
using System.Text.Json;
using KernelEngine.Formats;
using KernelEngine.Text;

namespace KernelEngine.Cli;

/// <summary>ke template: renders a chat template with a JSON case (messages, add_generation_prompt, tools, bos_token, ...)
/// and prints the text exactly, as transformers' apply_chat_template would produce it.</summary>
internal static class TemplateCommand
{
    public static Command Create()
    {
        var template = new Option<string?>("--template") { Description = "Chat template file (.jinja)" };
        var model = new Option<string?>("--model", "-m") { Description = "Take the chat template of this model folder or .gguf file instead" };
        var input = new Option<string>("--input", "-i") { Description = "JSON object of template variables: messages, add_generation_prompt, tools, bos_token, eos_token, ...", Required = true };
        var cmd = new Command("template", "Render a chat template with a conversation (prints the prompt text exactly, no newline added)") { template, model, input };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            string source;
            if (p.GetValue(template) is { } file) source = File.ReadAllText(file);
            else if (p.GetValue(model) is { } dir)
            {
                using var files = ModelFiles.Open(dir);
                source = files.LoadChatTemplate() ?? throw new InvalidRequestException($"{dir}: the model has no chat template (give one with --template)");
            }
            else throw new ArgumentException("give --template FILE or --model DIR|FILE");
            string inputPath = p.GetValue(input)!;
            JsonElement variables;
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(inputPath));
                variables = doc.RootElement.Clone();
            }
            catch (JsonException e) { throw new InvalidRequestException($"{inputPath}: not valid JSON ({e.Message})"); }
            if (variables.ValueKind != JsonValueKind.Object) throw new InvalidRequestException($"{inputPath}: expected a JSON object of template variables");
            string text = new ChatTemplate(source).Render(variables);
            using var stdout = Console.OpenStandardOutput();
            stdout.Write(new UTF8Encoding(false).GetBytes(text));
            return 0;
        }));
        return cmd;
    }
}

using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace KernelEngine.Cli;

/// <summary>Options and error handling shared by every command.</summary>
internal static class CliCommon
{
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Print stack traces on errors", Recursive = true };

    public static Option<string> Model() => new("--model", "-m") { Description = "Model folder (config.json, *.safetensors, tokenizer)", Required = true };
    public static Option<bool> Json() => new("--json") { Description = "Print one machine-readable JSON object" };
    public static Option<string> Device() => new("--device") { Description = "auto | cpu | ilgpu-cpu | cuda | opencl", DefaultValueFactory = _ => "auto" };

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void PrintJson(object value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, JsonOptions));

    /// <summary>Runs a command body: our typed errors become one line on stderr and exit code 1 (2 for usage errors).</summary>
    public static int Run(ParseResult parse, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is KernelEngineException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            Console.Out.Flush();
            Console.Error.WriteLine($"error: {e.Message}");
            if (parse.GetValue(Verbose)) Console.Error.WriteLine(e);
            return e is ArgumentException ? 2 : 1;
        }
    }
}

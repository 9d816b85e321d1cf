using System.CommandLine;
using System.Numerics;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace KernelEngine.Cli;

/// <summary>Options and error handling shared by every command.</summary>
internal static class CliCommon
{
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Print stack traces on errors", Recursive = true };

    public static Option<string> Model() => new("--model", "-m") { Description = "Model folder (config.json, *.safetensors, tokenizer) or a .gguf file", Required = true };
    public static Option<bool> Json() => new("--json") { Description = "Print one machine-readable JSON object" };
    /// <summary>--kv-type f32|f16|q8_0|...: the KV cache's element type (llama.cpp's --cache-type-k/-v).</summary>
    public static Option<string> KvType() => new Option<string>("--kv-type") { Description = $"KV cache type: {string.Join(" | ", Backends.KvCacheTypes.All)} (block formats on the CPU)", DefaultValueFactory = _ => "f32" }
        .AcceptOnlyFromAmong(Backends.KvCacheTypes.All.ToArray());
    /// <summary>--threads N: CPU threads for the kernels (default: one per core).</summary>
    public static Option<int?> Threads() => new Option<int?>("--threads", "-t") { Description = "CPU threads (default: one per core)" }.InRange(1, 1024);
    public static Option<string> Device() => new("--device") { Description = "auto | cpu | ilgpu-cpu | cuda | opencl", DefaultValueFactory = _ => "auto" };

    public static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void PrintJson(object value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, JsonOptions));

    /// <summary>Checks the value when the command line is parsed: a number outside [min, max] (or not finite) is a usage error.</summary>
    public static Option<T> InRange<T>(this Option<T> option, T min, T max) where T : struct, INumber<T>
    {
        option.Validators.Add(r =>
        {
            var v = r.GetValueOrDefault<T>();
            if (!T.IsFinite(v) || v < min || v > max) r.AddError($"{option.Name} {v} is outside {min}..{max}");
        });
        return option;
    }

    /// <summary><see cref="InRange{T}(Option{T}, T, T)"/> for an optional value (absent is fine).</summary>
    public static Option<T?> InRange<T>(this Option<T?> option, T min, T max) where T : struct, INumber<T>
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<T?>() is T v && (!T.IsFinite(v) || v < min || v > max)) r.AddError($"{option.Name} {v} is outside {min}..{max}");
        });
        return option;
    }

    /// <summary>Runs a command body: our typed errors become one line on stderr and exit code 1 (2 for usage errors);
    /// anything else is reported the same way as an internal error (the stack trace only with --verbose).</summary>
    public static int Run(ParseResult parse, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is KernelEngineException or IOException or UnauthorizedAccessException or ArgumentException or OperationCanceledException)
        {
            Console.Out.Flush();
            Console.Error.WriteLine($"error: {e.Message}");
            if (parse.GetValue(Verbose)) Console.Error.WriteLine(e);
            return e is ArgumentException ? 2 : 1;
        }
        catch (Exception e)
        {
            Console.Out.Flush();
            Console.Error.WriteLine($"error: internal error ({e.GetType().Name}): {e.Message}{(parse.GetValue(Verbose) ? "" : " (run with --verbose for details)")}");
            if (parse.GetValue(Verbose)) Console.Error.WriteLine(e);
            return 1;
        }
    }
}

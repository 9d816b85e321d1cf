namespace KernelEngine;

/// <summary>Base of every error KernelEngine reports about its input or environment.</summary>
public class KernelEngineException : Exception
{
    /// <summary>An error with its message and, optionally, the exception that caused it.</summary>
    public KernelEngineException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A model file (safetensors, config.json, index) is malformed, truncated or inconsistent. The message names the file and tensor.</summary>
public sealed class ModelFormatException : KernelEngineException
{
    /// <summary>An error in <paramref name="file"/>: <paramref name="problem"/>.</summary>
    public ModelFormatException(string file, string problem, Exception? inner = null) : base($"{file}: {problem}", inner) => File = file;
    /// <summary>The file at fault.</summary>
    public string File { get; }
}

/// <summary>A tokenizer file cannot be read, or text/ids cannot be encoded/decoded.</summary>
public sealed class TokenizerException : KernelEngineException
{
    /// <summary>A tokenizer error with its message.</summary>
    public TokenizerException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A compute device is unknown, unavailable, or ran out of memory.</summary>
public sealed class DeviceException : KernelEngineException
{
    /// <summary>A device error with its message.</summary>
    public DeviceException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>A request does not fit the model: a prompt longer than the context, a token id outside the vocabulary, a bad setting.</summary>
public sealed class InvalidRequestException : KernelEngineException
{
    /// <summary>A request error whose message names the value at fault.</summary>
    public InvalidRequestException(string message) : base(message) { }
}

/// <summary>A <see cref="BatchedGenerator"/> has as many requests waiting as it queues: try again later (a server answers 429).</summary>
public sealed class QueueFullException : KernelEngineException
{
    /// <summary>A full queue, with a message that says how full.</summary>
    public QueueFullException(string message) : base(message) { }
}

/// <summary>The model's output is not a distribution (NaN or infinite logits): its weights or config values are corrupt.
/// Raised instead of returning tokens chosen from garbage.</summary>
public sealed class ModelOutputException : KernelEngineException
{
    /// <summary>Non-finite model output, with a message that says where.</summary>
    public ModelOutputException(string message) : base(message) { }
}

/// <summary>A chat template cannot be parsed or fails while rendering (an unsupported construct, a type error, or the
/// template's own <c>raise_exception(msg)</c>, whose message is kept as is). <see cref="Line"/>/<see cref="Column"/> locate it.</summary>
public sealed class TemplateException : KernelEngineException
{
    /// <summary>A template error at <paramref name="line"/>:<paramref name="column"/> (0 when unknown).</summary>
    public TemplateException(string message, int line = 0, int column = 0, bool raisedByTemplate = false)
        : base(raisedByTemplate || line == 0 ? message : $"{message} (template line {line}:{column})")
    {
        Line = line; Column = column; RaisedByTemplate = raisedByTemplate;
    }
    /// <summary>Line of the template (1-based; 0 when unknown).</summary>
    public int Line { get; }
    /// <summary>Column of the template (1-based; 0 when unknown).</summary>
    public int Column { get; }
    /// <summary>True when the template itself called raise_exception: the message is the template's.</summary>
    public bool RaisedByTemplate { get; }
}

namespace KernelEngine.Decoding;

/// <summary>
/// How the next token is chosen. Order (as Hugging Face's warpers): repetition penalty, temperature, top-k, top-p,
/// min-p, then a draw. Temperature 0 means greedy (argmax). The same seed gives the same tokens on the same backend.
/// </summary>
public sealed record SamplingSettings
{
    /// <summary>Softmax temperature: logits are divided by it before sampling; 0 = greedy.</summary>
    public float Temperature { get; init; } = 0.8f;
    /// <summary>Keep the k most likely tokens; 0 = off.</summary>
    public int TopK { get; init; } = 40;
    /// <summary>Keep the smallest set whose probability reaches p; 1 = off.</summary>
    public float TopP { get; init; } = 0.95f;
    /// <summary>Drop tokens less likely than minP * p(most likely); 0 = off.</summary>
    public float MinP { get; init; } = 0.05f;
    /// <summary>Logits of tokens among the last <see cref="RepetitionWindow"/> are divided (if positive) or multiplied by this; 1 = off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>How many of the latest tokens the repetition penalty looks at.</summary>
    public int RepetitionWindow { get; init; } = 64;
    /// <summary>Seed of the sampler's random numbers.</summary>
    public ulong Seed { get; init; } = 42;

    /// <summary>Greedy decoding (temperature 0): always the most likely token.</summary>
    public static SamplingSettings Greedy { get; } = new() { Temperature = 0 };
    /// <summary>True when the temperature is 0.</summary>
    public bool IsGreedy => Temperature <= 0;

    /// <summary>Checks every value; a bad one is an <see cref="InvalidRequestException"/> naming it.</summary>
    public void Validate()
    {
        if (!float.IsFinite(Temperature) || Temperature < 0 || Temperature > 1000) throw new InvalidRequestException($"temperature {Temperature} must be in [0, 1000]");
        if (TopK < 0) throw new InvalidRequestException($"top-k {TopK} must be >= 0");
        if (!(TopP > 0 && TopP <= 1)) throw new InvalidRequestException($"top-p {TopP} must be in (0, 1]");
        if (!(MinP >= 0 && MinP < 1)) throw new InvalidRequestException($"min-p {MinP} must be in [0, 1)");
        if (!(RepetitionPenalty > 0) || !float.IsFinite(RepetitionPenalty)) throw new InvalidRequestException($"repetition penalty {RepetitionPenalty} must be finite and > 0");
        if (RepetitionWindow < 0) throw new InvalidRequestException($"repetition window {RepetitionWindow} must be >= 0");
    }
}

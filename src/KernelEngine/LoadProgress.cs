namespace KernelEngine;

/// <summary>How far <see cref="Model.LoadAsync"/> is: <see cref="Stage"/> "reading" (files, config, tokenizer), "weights"
/// (<see cref="Fraction"/> of the weights uploaded, <see cref="Tensor"/> the last one), "ready".</summary>
public sealed record LoadProgress(string Stage, double Fraction, string? Tensor = null);

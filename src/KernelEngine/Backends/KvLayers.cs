namespace KernelEngine.Backends;

/// <summary>Which layers of a <see cref="KvCache"/> a cache-wide operation (copy, re-rotation) touches.</summary>
internal enum KvLayers
{
    /// <summary>Every layer.</summary>
    All,
    /// <summary>The layers that hold the whole context.</summary>
    Full,
    /// <summary>The sliding-window layers that hold only their window.</summary>
    Windowed,
}

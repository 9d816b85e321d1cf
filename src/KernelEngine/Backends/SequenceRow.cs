namespace KernelEngine.Backends;

/// <summary>One row of a batched decode step: that sequence's q, k, v and attention output, as one-row views of the
/// step's tensors (<see cref="IBackend.RowView"/>).</summary>
internal readonly record struct SequenceRow(DeviceTensor Q, DeviceTensor K, DeviceTensor V, DeviceTensor Att);

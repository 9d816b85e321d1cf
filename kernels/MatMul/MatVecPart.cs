namespace KernelEngine.Kernels.MatMul;

/// <summary>One matrix of a decode product: y (OutDim) = W (OutDim, inDim) · x (+ Bias). Several parts that read the same
/// x (q/k/v, gate/up) run as one job (<see cref="MatVecCpu"/>).</summary>
internal unsafe struct MatVecPart
{
    public byte* W;          // (OutDim, inDim) in Type's row layout
    public WeightType Type;
    public int OutDim;
    public float* Bias;      // (OutDim) or null
    public float* Y;         // (OutDim)
    public byte* Packed;
    public int HalfShift;    // F16: W holds the weights times 2^HalfShift (HalfPrescale); results are scaled back     // Q8_0/Q4_0: W repacked by PackedQuant.Pack (what the integer kernels read)
}

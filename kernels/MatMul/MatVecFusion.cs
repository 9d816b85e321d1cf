namespace KernelEngine.Kernels.MatMul;

/// <summary>
/// What a decode product (<see cref="MatVecCpu"/>) does around its matrix-vector products inside the same launch, so that
/// the small ops between a layer's products cost no launch of their own. Each runs per row or per task slice exactly as
/// its stand-alone kernel runs over the whole batch, so results are bit for bit those of the separate ops.
/// </summary>
internal unsafe struct MatVecFusion
{
    /// <summary>Prologue: x row r is normed as <see cref="Norm.NormCpu.RmsRow"/> norms it (rmsnorm(x) ⊙ NormWeight) into
    /// row r of <see cref="Normed"/> (rows, inDim), by the task that prepares the row; the products read the normed rows.</summary>
    public float* NormWeight;
    public float NormEps;
    public float* Normed;

    /// <summary>Epilogue for parts 0 and 1 = gate and up (<see cref="MatVecCpu.CanGate"/>): gate and up tasks take the same
    /// row ranges, and the second of a range's two to end applies gate = Gated(gate, up) (ActivationCpu.SiluMul / GeluMul)
    /// to it.</summary>
    public delegate*<float*, float*, long, void> Gated;

    /// <summary>Epilogue for one part: Residual (rows, OutDim) += y, each task over the rows it computed (ActivationCpu.Add).</summary>
    public float* Residual;
}

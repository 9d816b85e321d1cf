using System.Runtime.CompilerServices;
using KernelEngine.Kernels.Attention;

namespace KernelEngine.Kernels.Rope;

/// <summary>Layout of the rotated pairs inside a head.</summary>
public enum RopeLayout
{
    /// <summary>Hugging Face rotate-half: pairs (i, i + headDim/2).</summary>
    RotateHalf,
    /// <summary>GPT-J / llama2.c / GGUF: pairs (2i, 2i + 1).</summary>
    Interleaved,
}

/// <summary>
/// CPU twin of the RoPE family. Rotates each pair of every head of q and k by angle pos * invFreq[i], in place.
/// invFreq (headDim/2) is computed once per model (see <see cref="RopeFrequencies"/>), so llama3 scaling costs
/// nothing per token; cos/sin come from <see cref="RopeAngles"/> (in double, once per forward pass).
/// </summary>
internal static unsafe class RopeCpu
{
    /// <param name="x">(rows, heads * headDim) activations, rotated in place</param>
    /// <param name="cosSin">(rows, pairs, 2) each row's cos and sin per pair (<see cref="RopeAngles"/>: mscale, the rotated
    /// dimensions' attention factor, already in them)</param>
    /// <param name="pairs">pairs rotated per head: headDim / 2, fewer with partial rotary (Phi-4-mini: the first
    /// 2·pairs dimensions rotate, pairs (i, i + pairs) or (2i, 2i + 1); the rest pass through)</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Apply(float* x, int rows, int heads, int headDim, float* cosSin, RopeLayout layout, int pairs)
    {
        int half = pairs;
        for (int r = 0; r < rows; r++)
        {
            float* row = x + (long)r * heads * headDim, angles = cosSin + 2L * r * pairs;
            for (int i = 0; i < half; i++)
            {
                float c = angles[2 * i], s = angles[2 * i + 1];
                for (int h = 0; h < heads; h++)
                {
                    float* head = row + h * headDim;
                    int i0 = layout == RopeLayout.RotateHalf ? i : 2 * i;
                    int i1 = layout == RopeLayout.RotateHalf ? i + half : 2 * i + 1;
                    float a = head[i0], b = head[i1];
                    head[i0] = a * c - b * s;
                    head[i1] = a * s + b * c;
                }
            }
        }
    }

    /// <summary>
    /// Rotates count cached key rows (count, heads · headDim), stored as <paramref name="cache"/> says, by
    /// <paramref name="delta"/> positions: RoPE's angles are linear in the position, so rotating by -d moves keys written at
    /// p to p - d exactly (a context shift). F16 and block-format rows are widened, rotated and stored back once, as
    /// llama.cpp's shift does.
    /// </summary>
    public static void RotateRows(void* rows, KvRows cache, int count, int heads, int headDim, int delta, float* invFreq, RopeLayout layout, int pairs)
    {
        int half = pairs, rowElements = heads * headDim;
        Span<float> cosSin = half <= 256 ? stackalloc float[2 * half] : new float[2 * half];
        RopeAngles.Fill([delta], new ReadOnlySpan<float>(invFreq, half), 1f, cosSin);
        bool inPlace = cache.Type == WeightType.F32;
        var widened = inPlace ? null : new float[rowElements];
        fixed (float* tmp = widened)
            for (int r = 0; r < count; r++)
            {
                long element = (long)r * rowElements;
                float* row = inPlace ? (float*)rows + element : tmp;
                if (!inPlace) cache.Widen(rows, element, rowElements, tmp);
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < half; i++)
                    {
                        float* head = row + h * headDim;
                        int i0 = layout == RopeLayout.RotateHalf ? i : 2 * i;
                        int i1 = layout == RopeLayout.RotateHalf ? i + half : 2 * i + 1;
                        float a = head[i0], b = head[i1];
                        float c = cosSin[2 * i], s = cosSin[2 * i + 1];
                        head[i0] = a * c - b * s;
                        head[i1] = a * s + b * c;
                    }
                if (!inPlace) cache.Store(tmp, rows, element, rowElements);
            }
    }
}

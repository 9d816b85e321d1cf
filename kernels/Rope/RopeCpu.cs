using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using KernelEngine.Kernels.Attention;
using KernelEngine.Kernels.Simd;

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
        // Per row, cos and sin laid out as each layout's vectors read them (shared by the row's heads): rotate-half takes
        // cos, sin of pairs i..i+W; interleaved takes (c, c) and (−s, s) per pair against the vector and its pair-swapped
        // twin. Each element is a·c − b·s or a·s + b·c in the scalar's roundings (a negated product is exact), so the
        // vector and scalar parts agree bit for bit.
        Span<float> table = pairs <= 256 ? stackalloc float[4 * pairs] : new float[4 * pairs];
        fixed (float* t = table)
            for (int r = 0; r < rows; r++)
            {
                float* row = x + (long)r * heads * headDim, angles = cosSin + 2L * r * pairs;
                if (layout == RopeLayout.RotateHalf)
                {
                    float* cos = t, sin = t + pairs;
                    for (int i = 0; i < pairs; i++) { cos[i] = angles[2 * i]; sin[i] = angles[2 * i + 1]; }
                    for (int h = 0; h < heads; h++) RotateHalf(row + h * headDim, cos, sin, pairs);
                }
                else
                {
                    float* cc = t, ss = t + 2 * pairs;
                    for (int i = 0; i < pairs; i++)
                    {
                        cc[2 * i] = cc[2 * i + 1] = angles[2 * i];
                        ss[2 * i] = -angles[2 * i + 1];
                        ss[2 * i + 1] = angles[2 * i + 1];
                    }
                    for (int h = 0; h < heads; h++) Interleaved(row + h * headDim, cc, ss, pairs);
                }
            }
    }

    /// <summary>head[i], head[i + pairs] = a·c − b·s, a·s + b·c for i &lt; pairs: vectors at the running width, then 4-wide,
    /// then one at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void RotateHalf(float* head, float* cos, float* sin, int pairs)
    {
        int i = SimdLevel.Current switch
        {
            SimdLevel.Width.V512 => RotateHalf<Simd512, Vector512<float>>(head, cos, sin, pairs, 0),
            SimdLevel.Width.V256 => RotateHalf<Simd256, Vector256<float>>(head, cos, sin, pairs, 0),
            _ => 0,
        };
        if (Simd128.IsSupported) i = RotateHalf<Simd128, Vector128<float>>(head, cos, sin, pairs, i);
        for (; i < pairs; i++)
        {
            float a = head[i], b = head[i + pairs], c = cos[i], s = sin[i];
            head[i] = a * c - b * s;
            head[i + pairs] = a * s + b * c;
        }
    }

    /// <summary>The whole vectors of <see cref="RotateHalf(float*, float*, float*, int)"/> from pair i on; returns where they end.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static int RotateHalf<S, V>(float* head, float* cos, float* sin, int pairs, int i) where S : ISimd<V> where V : struct
    {
        for (; i + S.Floats <= pairs; i += S.Floats)
        {
            V a = S.Load(head + i), b = S.Load(head + pairs + i), c = S.Load(cos + i), s = S.Load(sin + i);
            S.Store(S.Sub(S.Mul(a, c), S.Mul(b, s)), head + i);
            S.Store(S.Add(S.Mul(a, s), S.Mul(b, c)), head + pairs + i);
        }
        return i;
    }

    /// <summary>(head[2i], head[2i + 1]) = (a·c − b·s, b·c + a·s) for i &lt; pairs: x·cc + swap(x)·ss.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Interleaved(float* head, float* cc, float* ss, int pairs)
    {
        int j = 0, n = 2 * pairs;
        if (Vector256.IsHardwareAccelerated)
            for (; j + 8 <= n; j += 8)
            {
                var v = Vector256.Load(head + j);
                (v * Vector256.Load(cc + j) + Vector256.Shuffle(v, Vector256.Create(1, 0, 3, 2, 5, 4, 7, 6)) * Vector256.Load(ss + j)).Store(head + j);
            }
        if (Vector128.IsHardwareAccelerated)
            for (; j + 4 <= n; j += 4)
            {
                var v = Vector128.Load(head + j);
                (v * Vector128.Load(cc + j) + Vector128.Shuffle(v, Vector128.Create(1, 0, 3, 2)) * Vector128.Load(ss + j)).Store(head + j);
            }
        for (; j < n; j += 2)
        {
            float a = head[j], b = head[j + 1];
            head[j] = a * cc[j] + b * ss[j];
            head[j + 1] = b * cc[j + 1] + a * ss[j + 1];
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

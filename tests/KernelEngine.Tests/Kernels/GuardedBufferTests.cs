using System.Runtime.InteropServices;
using KernelEngine.Kernels;
using KernelEngine.Kernels.MatMul;
using KernelEngine.Kernels.Threading;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>
/// The CPU matmul kernels read only their inputs and write only their outputs, on whichever SIMD width this process
/// runs (CI repeats the kernel tests with AVX-512 and with AVX2 off). Every input sits between poisoned guards (NaN
/// floats; 0xFF bytes, whose fp16 scales are NaN), outputs and the kernels' scratch start as NaN: a read past a row's
/// or a buffer's end, or of scratch not written first, turns the result NaN every time instead of wrong now and then;
/// a write past the output's end shows in its guard.
/// </summary>
public sealed unsafe class GuardedBufferTests
{
    private const int GuardBytes = 256;

    private static IEnumerable<TestCaseData> Cases()
    {
        (WeightType Type, int Rows, int Out, int In)[] cases =
        [
            (WeightType.F32, 1, 13, 77), (WeightType.F32, 6, 21, 77), (WeightType.F32, 5, 9, 37),
            (WeightType.F16, 1, 13, 77), (WeightType.F16, 6, 21, 77), (WeightType.F16, 1, 11, 48), (WeightType.F16, 1, 7, 96),
            (WeightType.BF16, 1, 13, 77), (WeightType.BF16, 6, 21, 77), (WeightType.BF16, 1, 11, 48), (WeightType.BF16, 3, 7, 96),
            (WeightType.Q8_0, 1, 13, 96), (WeightType.Q8_0, 6, 21, 96), (WeightType.Q8_0, 1, 5, 736),
            (WeightType.Q4_0, 1, 13, 96), (WeightType.Q4_0, 6, 21, 96), (WeightType.Q4_0, 1, 5, 736), (WeightType.Q4_0, 1, 3, 32),
            (WeightType.Q4_1, 1, 7, 96), (WeightType.Q5_0, 1, 7, 96), (WeightType.Q5_1, 3, 7, 96),
            (WeightType.Q4_K, 1, 5, 768), (WeightType.Q4_K, 3, 5, 256), (WeightType.Q5_K, 1, 5, 512), (WeightType.Q6_K, 1, 5, 768), (WeightType.Q6_K, 2, 5, 256),
        ];
        foreach (var c in cases) yield return new TestCaseData(c.Type, c.Rows, c.Out, c.In);
    }

    [TestCaseSource(nameof(Cases))]
    public void MatMul_ReadsOnlyItsInputs(WeightType type, int rows, int outDim, int inDim)
    {
        var x = TestData.Random(rows * inDim, 21);
        var w = TestData.Random(outDim * inDim, 22);
        var bias = TestData.Random(outDim, 23);
        var stored = TestData.Encode(w, type, outDim, inDim);
        var expected = ScalarReference.MatMulAsComputed(x, rows, inDim, stored, type, outDim, bias, cpuDecode: true);
        using var gx = Guarded.Of(MemoryMarshal.AsBytes(x.AsSpan()));
        using var gw = Guarded.Of(stored);
        using var gb = Guarded.Of(MemoryMarshal.AsBytes(bias.AsSpan()));
        using var gy = Guarded.Of(MemoryMarshal.AsBytes(new float[rows * outDim].AsSpan()));
        new Span<float>(gy.Data, rows * outDim).Fill(float.NaN);
        foreach (var pool in new[] { WorkerPool.Shared, new WorkerPool(1) })
        {
            MatMulCpu.PoisonScratch = true;
            try
            {
                MatMulCpu.MatMul(pool, (float*)gx.Data, rows, inDim, gw.Data, type, outDim, (float*)gb.Data, (float*)gy.Data);
            }
            finally
            {
                MatMulCpu.PoisonScratch = false;
                if (pool != WorkerPool.Shared) pool.Dispose();
            }
            var y = new ReadOnlySpan<float>(gy.Data, rows * outDim).ToArray();
            Assert.That(y.Any(float.IsNaN), Is.False, $"{pool.Threads} thread(s): NaN in the output (poison read)");
            Assert.That(TestData.MaxAbsDiff(y, expected), Is.LessThanOrEqualTo(1e-4), $"{pool.Threads} thread(s)");
            Assert.That(gy.GuardsIntact, Is.True, "a write past the output");
        }
    }

    /// <summary>Native bytes with <see cref="GuardBytes"/> of 0xFF before and after; the data 64-byte aligned, its end not.</summary>
    private sealed class Guarded : IDisposable
    {
        private readonly byte* _base;
        private readonly int _length;
        public byte* Data => _base + GuardBytes;

        private Guarded(int length)
        {
            _length = length;
            _base = (byte*)NativeMemory.AlignedAlloc((nuint)(length + 2 * GuardBytes), 64);
            new Span<byte>(_base, length + 2 * GuardBytes).Fill(0xFF);
        }

        public static Guarded Of(ReadOnlySpan<byte> data)
        {
            var g = new Guarded(data.Length);
            data.CopyTo(new Span<byte>(g.Data, data.Length));
            return g;
        }

        public bool GuardsIntact =>
            !new ReadOnlySpan<byte>(_base, GuardBytes).ContainsAnyExcept((byte)0xFF)
            && !new ReadOnlySpan<byte>(Data + _length, GuardBytes).ContainsAnyExcept((byte)0xFF);

        public void Dispose() => NativeMemory.AlignedFree(_base);
    }
}

using System.Diagnostics;
using KernelEngine.Kernels;
using KernelEngine.Kernels.MatMul;
using KernelEngine.Kernels.Quant;
namespace KernelEngine.Bench;
internal static unsafe class Probe
{
    public static void Run(string[] args)
    {
        var type = Enum.Parse<WeightType>(args[1]);
        int rows = int.Parse(args[2]), n = int.Parse(args[3]), it = int.Parse(args[4]);
        var rnd = new Random(1);
        var w = new float[rows * n]; for (int i = 0; i < w.Length; i++) w[i] = (float)(rnd.NextDouble() - 0.5) * 0.05f;
        var enc = WeightEncoding.Encode(w, type, rows, n);
        byte* wp = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)enc.Length, 64);
        enc.CopyTo(new Span<byte>(wp, enc.Length));
        var x = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)n * 4, 64); for (int i = 0; i < n; i++) x[i] = (float)rnd.NextDouble() - 0.5f;
        var act = KQuantMatVecCpu.Prepare(x, n, 0);
        float* y = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)rows * 4, 64);
        var part = new MatVecPart { Type = type, OutDim = rows, W = wp, Y = y };
        for (int rep = 0; rep < 4; rep++)
        {
            var sw = Stopwatch.StartNew();
            for (int k = 0; k < it; k++) KQuantMatVecCpu.Rows(part, act, n, 0, rows);
            double ns = sw.Elapsed.TotalNanoseconds;
            Console.WriteLine($"{type}: {ns / ((double)it * rows * n / 256) * 3.2:F1} cycles per super-block @3.2GHz");
        }
    }
}

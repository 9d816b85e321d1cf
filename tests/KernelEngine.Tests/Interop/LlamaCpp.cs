using KernelEngine.Benchmarking;
using KernelEngine.Formats;
using KernelEngine.Kernels;
using LLama;
using LLama.Common;
using LLama.Native;

namespace KernelEngine.Tests.Interop;

/// <summary>llama.cpp through LLamaSharp: its quantizer writes GGUF files, its CPU backend computes reference logits.</summary>
public static class LlamaCpp
{
    private static readonly object Gate = new();
    private static string? _f32;

    static LlamaCpp()
    {
        // The test host does not probe the package's runtimes/ folder: name the libraries of this CPU's build.
        string level = System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? "avx512" : System.Runtime.Intrinsics.X86.Avx2.IsSupported ? "avx2"
            : System.Runtime.Intrinsics.X86.Avx.IsSupported ? "avx" : "noavx";
        string rid = OperatingSystem.IsLinux() ? "linux-x64" : OperatingSystem.IsWindows() ? "win-x64" : "osx-x64";
        string native = Path.Combine(AppContext.BaseDirectory, "runtimes", rid, "native", level);
        string ext = OperatingSystem.IsWindows() ? ".dll" : OperatingSystem.IsMacOS() ? ".dylib" : ".so";
        string prefix = OperatingSystem.IsWindows() ? "" : "lib";
        if (Directory.Exists(native))
            NativeLibraryConfig.All.WithLibrary(Path.Combine(native, prefix + "llama" + ext), Path.Combine(native, prefix + "mtmd" + ext));
        // Load through NativeApi (it installs the library resolver) before any other entry point is called.
        NativeApi.llama_empty_call();
    }

    /// <summary>The llama-kq preset (random weights, rows of 256) exported by us as an F32 GGUF, once per run.</summary>
    public static string F32Gguf()
    {
        lock (Gate)
        {
            if (_f32 != null) return _f32;
            string dir = TestScratch.Path("interop");
            Directory.CreateDirectory(dir);
            string folder = Presets.Materialize("llama-kq", WeightType.F32, dir);
            string gguf = Path.Combine(dir, "llama-kq-f32.gguf");
            GgufExporter.Export(folder, gguf, WeightType.F32);
            return _f32 = gguf;
        }
    }

    private static string? _stories, _extreme;

    /// <summary>The llama-kq preset with extreme rows written into every matrix (all zero, constant, one huge outlier, tiny
    /// values whose scales are fp16 subnormals, one sign only), exported as an F32 GGUF once per run.</summary>
    public static unsafe string ExtremeGguf()
    {
        lock (Gate)
        {
            if (_extreme != null) return _extreme;
            string root = Path.GetDirectoryName(F32Gguf())!;
            string src = Path.Combine(root, "llama-kq-f32"), dir = Path.Combine(root, "llama-kq-extreme");
            Directory.CreateDirectory(dir);
            foreach (var f in Directory.GetFiles(src)) if (!f.EndsWith(".safetensors")) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), true);
            using (var st = SafeTensorsFile.Open(Path.Combine(src, "model.safetensors")))
            {
                var w = new SafeTensorsWriter();
                foreach (var (name, info) in st.Tensors)
                {
                    var data = st.Data(info).ToArray();
                    if (info.Shape.Length == 2 && info.Shape[0] >= 6)
                    {
                        var f = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(data.AsSpan());
                        int cols = (int)info.Shape[1];
                        f.Slice(0, cols).Clear();                                             // all zero
                        f.Slice(cols, cols).Fill(0.5f);                                       // constant
                        f[2 * cols + 7] = 1000f;                                              // one huge outlier
                        for (int c = 0; c < cols; c++) f[3 * cols + c] = (c % 3 - 1) * 3e-7f;  // tiny: subnormal fp16 scales
                        for (int c = 0; c < cols; c++) f[4 * cols + c] = -MathF.Abs(f[4 * cols + c]);   // one sign only
                        for (int c = 0; c < cols; c++) f[5 * cols + c] = c % 2 == 0 ? 65000f : -65000f; // near fp16's range
                    }
                    w.Add(name, info.DType, info.Shape, data);
                }
                w.Write(Path.Combine(dir, "model.safetensors"));
            }
            string gguf = Path.Combine(root, "llama-kq-extreme.gguf");
            GgufExporter.Export(dir, gguf, WeightType.F32);
            return _extreme = gguf;
        }
    }

    /// <summary>stories260K exported by us as an F32 GGUF, once per run.</summary>
    public static string StoriesGguf()
    {
        lock (Gate)
        {
            if (_stories != null) return _stories;
            string dir = TestScratch.Path("interop");
            Directory.CreateDirectory(dir);
            string gguf = Path.Combine(dir, "stories-f32.gguf");
            GgufExporter.Export(SharedData.Stories, gguf, WeightType.F32);
            return _stories = gguf;
        }
    }

    /// <summary>llama.cpp's own quantization of an F32 file (its tensor-type mix for <paramref name="ftype"/>).</summary>
    public static string Quantized(string ftype, string? source = null)
    {
        string src = source ?? F32Gguf();
        string dst = Path.Combine(Path.GetDirectoryName(src)!, $"{Path.GetFileNameWithoutExtension(src)}-{ftype}.gguf");
        lock (Gate)
        {
            if (File.Exists(dst)) return dst;
            if (!LLamaQuantizer.Quantize(src, dst + ".tmp", ftype, nthread: 2, allowRequantize: true, quantizeOutputTensor: true))
                throw new InvalidOperationException($"llama.cpp could not quantize to {ftype}");
            File.Move(dst + ".tmp", dst);
        }
        return dst;
    }

    /// <summary>llama.cpp's logits for every position of one batch (F32 KV cache, flash attention off, 2 threads; a quantized
    /// <paramref name="cache"/> turns flash attention on, which llama.cpp needs for a quantized V cache).</summary>
    public static float[][] Logits(string gguf, int[] tokens, GGMLType cache = GGMLType.GGML_TYPE_F32)
    {
        var p = new ModelParams(gguf)
        {
            ContextSize = (uint)Math.Max(64, tokens.Length), Threads = 2, BatchThreads = 2, BatchSize = (uint)tokens.Length, UBatchSize = (uint)tokens.Length,
            GpuLayerCount = 0, TypeK = cache, TypeV = cache, FlashAttention = cache is not (GGMLType.GGML_TYPE_F32 or GGMLType.GGML_TYPE_F16),
        };
        using var weights = LLamaWeights.LoadFromFile(p);
        using var ctx = weights.CreateContext(p);
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Length; i++) batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, true);
        var r = ctx.Decode(batch);
        if (r != DecodeResult.Ok) throw new InvalidOperationException($"llama.cpp decode failed: {r}");
        return Enumerable.Range(0, tokens.Length).Select(i => ctx.NativeHandle.GetLogitsIth(i).ToArray()).ToArray();
    }

    /// <summary>llama.cpp's greedy continuation: the prompt in one batch, then <paramref name="count"/> tokens, each the
    /// argmax of the previous position's logits, fed back one at a time.</summary>
    public static int[] Greedy(string gguf, int[] prompt, int count)
    {
        var p = new ModelParams(gguf)
        {
            ContextSize = (uint)Math.Max(64, prompt.Length + count), Threads = 2, BatchThreads = 2, BatchSize = (uint)prompt.Length, UBatchSize = (uint)prompt.Length,
            GpuLayerCount = 0,
        };
        using var weights = LLamaWeights.LoadFromFile(p);
        using var ctx = weights.CreateContext(p);
        var batch = new LLamaBatch();
        for (int i = 0; i < prompt.Length; i++) batch.Add((LLamaToken)prompt[i], i, LLamaSeqId.Zero, i == prompt.Length - 1);
        if (ctx.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("llama.cpp decode failed");
        var ids = new int[count];
        int logitsRow = prompt.Length - 1;
        for (int t = 0; t < count; t++)
        {
            var logits = ctx.NativeHandle.GetLogitsIth(logitsRow);
            int best = 0;
            for (int v = 1; v < logits.Length; v++) if (logits[v] > logits[best]) best = v;
            ids[t] = best;
            batch.Clear();
            batch.Add((LLamaToken)best, prompt.Length + t, LLamaSeqId.Zero, true);
            if (ctx.Decode(batch) != DecodeResult.Ok) throw new InvalidOperationException("llama.cpp decode failed");
            logitsRow = 0;
        }
        return ids;
    }
}

using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Exporters;
using BenchmarkDotNet.Exporters.Csv;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using KernelEngine.Backends;
using KernelEngine.Kernels;
using KernelEngine.Kernels.Quant;

namespace KernelEngine.Bench;

/// <summary>A benchmark that knows how many bytes and FLOPs one invocation moves and computes.</summary>
public interface IWork
{
    double Bytes { get; }
    double Flops { get; }
}

/// <summary>Custom columns: achieved GB/s, GFLOP/s, and GB/s as a fraction of the DRAM read roofline (KE_ROOFLINE_GBPS, default 64).</summary>
public sealed class WorkColumn(string name, Func<IWork, double, double> value) : IColumn
{
    public static readonly double RooflineGBps = double.TryParse(Environment.GetEnvironmentVariable("KE_ROOFLINE_GBPS"), out var g) ? g : 64;
    public static readonly IColumn GBps = new WorkColumn("GB/s", (w, ns) => w.Bytes / ns);
    public static readonly IColumn Gflops = new WorkColumn("GFLOP/s", (w, ns) => w.Flops / ns);
    public static readonly IColumn Roofline = new WorkColumn("% roofline", (w, ns) => 100 * w.Bytes / ns / RooflineGBps);

    public string Id => name;
    public string ColumnName => name;
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => name;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public bool IsAvailable(Summary summary) => true;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase c, SummaryStyle style)
    {
        var report = summary[c];
        if (report?.ResultStatistics == null) return "-";
        var instance = (IWork)Activator.CreateInstance(c.Descriptor.Type)!;
        foreach (var p in c.Parameters.Items) c.Descriptor.Type.GetProperty(p.Name)?.SetValue(instance, p.Value);
        return value(instance, report.ResultStatistics.Mean).ToString("F1");
    }
}

/// <summary>Config of the kernel suites: short runs, Markdown and CSV export, the work columns.</summary>
public sealed class KernelConfig : ManualConfig
{
    public KernelConfig()
    {
        AddJob(Job.ShortRun.WithWarmupCount(2).WithIterationCount(5));
        AddColumn(WorkColumn.GBps, WorkColumn.Gflops, WorkColumn.Roofline);
        AddExporter(MarkdownExporter.GitHub, CsvExporter.Default);
    }
}

/// <summary>Decode matrix-vector product per weight type at llama-160m's MLP shape (3072 x 768), for one sequence and
/// for a batched decode step of 8 (every weight read once for all 8 rows).</summary>
[Config(typeof(KernelConfig))]
public unsafe class MatVecBench : IWork
{
    [Params(WeightType.F32, WeightType.F16, WeightType.BF16, WeightType.Q8_0, WeightType.Q4_0)] public WeightType Type { get; set; }
    [Params(1, 8)] public int Sequences { get; set; } = 1;
    public int Rows { get; set; } = 3072;
    public int Cols { get; set; } = 768;
    public double Bytes => Rows * Type.RowBytes(Cols) + 4.0 * Sequences * (Rows + Cols);
    public double Flops => 2.0 * Sequences * Rows * Cols;

    private CpuBackend _b = null!;
    private DeviceTensor _x = null!, _y = null!;
    private DeviceWeight _w = null!;

    [GlobalSetup]
    public void Setup()
    {
        _b = new CpuBackend();
        var rnd = new Random(1);
        var w = new float[Rows * Cols];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(rnd.NextDouble() - 0.5);
        _w = _b.Upload(new HostWeight("w", Rows, Cols, Type, Encode(w, Type, Rows, Cols)));
        _x = _b.Allocate(Sequences, Cols); _y = _b.Allocate(Sequences, Rows);
    }

    [Benchmark] public void MatVec() => _b.MatMul(_x, _w, null, _y, Sequences);

    internal static byte[] Encode(float[] w, WeightType type, int rows, int cols) => WeightEncoding.Encode(w, type, rows, cols);
}

/// <summary>Prefill matrix-matrix product (batch 128) per weight type.</summary>
[Config(typeof(KernelConfig))]
public class MatMulPrefillBench : IWork
{
    [Params(WeightType.F32, WeightType.F16, WeightType.Q8_0)] public WeightType Type { get; set; }
    public int Batch { get; set; } = 128;
    public double Bytes => 3072 * Type.RowBytes(768) + 4.0 * Batch * (3072 + 768);
    public double Flops => 2.0 * Batch * 3072 * 768;

    private CpuBackend _b = null!;
    private DeviceTensor _x = null!, _y = null!;
    private DeviceWeight _w = null!;

    [GlobalSetup]
    public void Setup()
    {
        _b = new CpuBackend();
        var w = new float[3072 * 768];
        for (int i = 0; i < w.Length; i++) w[i] = (i % 17 - 8) * 0.01f;
        _w = _b.Upload(new HostWeight("w", 3072, 768, Type, MatVecBench.Encode(w, Type, 3072, 768)));
        _x = _b.Allocate(Batch, 768); _y = _b.Allocate(Batch, 3072);
    }

    [Benchmark] public void MatMul() => _b.MatMul(_x, _w, null, _y, Batch);
}

/// <summary>Decode attention over a KV cache (12 heads of 64, F32 and F16 cache).</summary>
[Config(typeof(KernelConfig))]
public class AttentionBench : IWork
{
    [Params(128, 1024)] public int Position { get; set; }
    [Params(false, true)] public bool F16 { get; set; }
    public double Bytes => 2.0 * (Position + 1) * 768 * (F16 ? 2 : 4);
    public double Flops => 4.0 * (Position + 1) * 768;

    private CpuBackend _b = null!;
    private KvCache _cache = null!;
    private DeviceTensor _q = null!, _o = null!;

    [GlobalSetup]
    public void Setup()
    {
        _b = new CpuBackend();
        _cache = new KvCache(_b, 1, 2048, 768, F16);
        _q = _b.Allocate(1, 768); _o = _b.Allocate(1, 768);
    }

    [Benchmark] public void Decode() => _b.Attention(_q, _cache, 0, Position, 1, _o, new AttentionShape(12, 12, 64, 0.125f));
}

/// <summary>Fused softmax-entropy over a vocabulary row.</summary>
[Config(typeof(KernelConfig))]
public class SoftmaxEntropyBench : IWork
{
    [Params(32000, 151936)] public int Vocab { get; set; }
    public double Bytes => 4.0 * Vocab;
    public double Flops => 6.0 * Vocab;
    private float[] _logits = [];

    [GlobalSetup] public void Setup() { _logits = new float[Vocab]; for (int i = 0; i < Vocab; i++) _logits[i] = (i % 101) * 0.1f; }

    [Benchmark] public double Compute() => Kernels.SoftmaxEntropy.SoftmaxEntropyCpu.Compute(_logits, 0.8f, 5).Entropy;
}

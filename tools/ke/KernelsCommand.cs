using System.CommandLine;
using KernelEngine.Kernels.Ilgpu;

namespace KernelEngine.Cli;

/// <summary><c>ke kernels --ptx DIR</c>: every ILGPU kernel's PTX, one file per kernel, and the instructions it uses.</summary>
internal static class KernelsCommand
{
    public static Command Create()
    {
        var ptx = new Option<string>("--ptx") { Description = "Write each kernel's PTX to DIR/<kernel>.ptx (no GPU needed)", Required = true };
        var arch = new Option<string>("--arch") { Description = "Target architecture: sm_80 | sm_86 | sm_89 | sm_90", DefaultValueFactory = _ => "sm_90" };
        var json = CliCommon.Json();
        var cmd = new Command("kernels", "Compile every GPU kernel to PTX without a GPU: one file per kernel, with counts of 128-bit loads, warp shuffles, dp4a, mma.sync and local-memory accesses") { ptx, arch, json };
        cmd.SetAction(p => CliCommon.Run(p, () =>
        {
            string dir = p.GetValue(ptx)!;
            var target = KernelPtx.Architecture(p.GetValue(arch)!);
            Directory.CreateDirectory(dir);
            using var context = KernelPtx.CreateContext();
            var rows = new List<(string Name, string File, PtxShape Shape)>();
            foreach (var k in KernelCatalog.All)
            {
                string code = KernelPtx.Compile(context, k, target);
                string file = Path.Combine(dir, k.Name + ".ptx");
                File.WriteAllText(file, code);
                rows.Add((k.Name, file, PtxShape.Of(code)));
            }
            if (p.GetValue(json))
            {
                CliCommon.PrintJson(new
                {
                    arch = p.GetValue(arch),
                    kernels = rows.Select(r => new
                    {
                        name = r.Name, file = r.File, lines = r.Shape.Lines, vector_loads = r.Shape.VectorLoads, shuffles = r.Shape.Shuffles,
                        dp4a = r.Shape.Dp4a, mma = r.Shape.Mma, local_accesses = r.Shape.LocalAccesses,
                    }),
                });
                return 0;
            }
            Console.WriteLine($"| kernel | PTX lines | ld.v4 | shfl.sync | dp4a | mma.sync | local ld/st |");
            Console.WriteLine("|---|---|---|---|---|---|---|");
            foreach (var r in rows)
                Console.WriteLine($"| {r.Name} | {r.Shape.Lines} | {r.Shape.VectorLoads} | {r.Shape.Shuffles} | {r.Shape.Dp4a} | {r.Shape.Mma} | {r.Shape.LocalAccesses} |");
            Console.WriteLine($"{rows.Count} kernels written to {dir}");
            return 0;
        }));
        return cmd;
    }
}

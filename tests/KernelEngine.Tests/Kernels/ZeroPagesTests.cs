using KernelEngine.Kernels.Memory;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>Zero-filled on-demand buffers (KV caches, activations): zeroed at any size; on Linux those of 2 MiB and more
/// start on a 2 MiB boundary in a mapping advised for transparent huge pages, and freeing unmaps all of it.</summary>
public sealed unsafe class ZeroPagesTests
{
    [TestCase(4096L)]
    [TestCase((1L << 20) + 12)]
    [TestCase(2L << 20)]
    [TestCase((3L << 20) + 100)]
    [TestCase((5L << 20) + 4095)]
    public void Buffers_AreZeroed_Writable_AndLargeOnesHugePageAligned(long bytes)
    {
        var p = (byte*)ZeroPages.Alloc(bytes);
        try
        {
            Assert.That((long)p % 64, Is.Zero, "64-byte aligned");
            if (OperatingSystem.IsLinux() && bytes >= 2L << 20) Assert.That((long)p % (2L << 20), Is.Zero, "2 MiB aligned: whole huge pages");
            for (long i = 0; i < bytes; i += 4093) Assert.That(p[i], Is.Zero, $"byte {i}");
            Assert.That(p[bytes - 1], Is.Zero, "last byte");
            p[0] = 1; p[bytes - 1] = 2;
            Assert.That(p[0] + p[bytes - 1], Is.EqualTo(3));
        }
        finally { ZeroPages.Free(p, bytes); }
    }

    [Test]
    public void LargeBuffers_AreAdvisedForHugePages_AndFreedWhole()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("reads /proc/self/maps and smaps");
        const long bytes = (6L << 20) + 100;
        int maps = File.ReadLines("/proc/self/maps").Count();
        for (int i = 0; i < 32; i++) ZeroPages.Free(ZeroPages.Alloc(bytes), bytes);
        Assert.That(File.ReadLines("/proc/self/maps").Count() - maps, Is.LessThanOrEqualTo(4), "the 2 MiB of slack around the aligned part is unmapped too");

        var p = ZeroPages.Alloc(bytes);
        try
        {
            // the mapping's smaps entry: "hg" among its VmFlags (MADV_HUGEPAGE), whatever the host then grants
            string start = ((nint)p).ToString("x");
            var lines = File.ReadLines("/proc/self/smaps").SkipWhile(l => !l.StartsWith(start + "-", StringComparison.Ordinal)).Skip(1)
                .TakeWhile(l => !char.IsAsciiHexDigit(l[0]) || l.Contains(':')).ToList();
            string flags = lines.FirstOrDefault(l => l.StartsWith("VmFlags:", StringComparison.Ordinal)) ?? "";
            Assert.That(flags, Does.Contain(" hg"), $"MADV_HUGEPAGE on the buffer's mapping ({flags})");
        }
        finally { ZeroPages.Free(p, (6L << 20) + 100); }
    }
}

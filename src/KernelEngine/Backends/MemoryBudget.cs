namespace KernelEngine.Backends;

/// <summary>
/// Sizes computed from file and config numbers are checked here before anything is allocated: products in checked
/// 64-bit arithmetic, and the total against the memory the device has free, so a bad value is a clear error and never
/// an overflowed buffer or a process killed for memory.
/// </summary>
internal static class MemoryBudget
{
    /// <summary>The product of the factors in bytes; a product beyond long is reported as long.MaxValue (always too large).</summary>
    public static long Bytes(params ReadOnlySpan<long> factors)
    {
        long n = 1;
        foreach (long f in factors)
        {
            if (f < 0) throw new ArgumentOutOfRangeException(nameof(factors), f, "a size factor is negative");
            if (f != 0 && n > long.MaxValue / f) return long.MaxValue;
            n *= f;
        }
        return n;
    }

    /// <summary>Memory a new allocation may take: free memory on Linux (MemAvailable), else what the GC reports; the device's own size on GPUs.</summary>
    public static long Available(DeviceInfo device)
    {
        if (device.Kind is DeviceKind.Cuda or DeviceKind.OpenCL) return device.MemoryBytes;
        long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length >= 2 && long.TryParse(parts[1], out long kb)) return Math.Min(total, kb * 1024);
                }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return total;
    }

    /// <summary>Throws <see cref="DeviceException"/> when <paramref name="bytes"/> would not fit in what the device has free.</summary>
    public static void Check(DeviceInfo device, long bytes, string what, string remedy)
    {
        long available = Available(device);
        if (bytes > available - available / 8)
            throw new DeviceException($"{device.Id}: {what} needs {Describe(bytes)}, more than the {Describe(available)} available; {remedy}");
    }

    public static string Describe(long bytes) => bytes == long.MaxValue ? "more than 8 EiB" : bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F1} GiB" : $"{bytes / (double)(1L << 20):F1} MiB";
}

using KernelEngine.Backends;
using NUnit.Framework;

namespace KernelEngine.Tests.Kernels;

/// <summary>
/// Copies between managed arrays and ILGPU buffers while other threads allocate: a compacting collection may move a
/// fresh array at any moment, so a copy that holds its raw address without pinning it reads or writes the old place
/// (seen as read-backs of all zeros and ids out of range, about one launch-and-read in fifty on the CPU accelerator).
/// Ids go up through the embedding gather and rows come back into new arrays, many times, against the host's data.
/// </summary>
[TestFixture("ilgpu-cpu")]
[TestFixture("cpu")]
public sealed class HostCopyTests(string backendName)
{
    [Test]
    public void UploadsAndReadBacks_SurviveCompactingCollections()
    {
        const int rows = 64, cols = 129, rounds = 300;
        using var b = TestBackends.Create(backendName);
        var table = TestData.Random(rows * cols, 41);
        using var w = b.Upload(HostWeight.FromFloats("table", table, rows, cols));
        using var x = b.Allocate(rows, cols);
        using var stop = new CancellationTokenSource();
        var churn = new Thread(() =>
        {
            long n = 0;
            while (!stop.IsCancellationRequested)
            {
                GC.KeepAlive(new byte[2048]);
                if (++n % 256 == 0) Thread.Sleep(1);
            }
        }) { IsBackground = true };
        churn.Start();
        int wrong = 0, gc0 = GC.CollectionCount(0);
        try
        {
            for (int round = 0; round < rounds; round++)
            {
                int shift = round % rows;
                var ids = new int[rows];   // a new array each round: the upload's source may move
                for (int r = 0; r < rows; r++) ids[r] = (r + shift) % rows;
                b.Embed(w, ids, x);
                var got = b.ReadAll(x);   // and so may the read-back's target
                for (int r = 0; r < rows && got.Length == rows * cols; r++)
                    if (!got.AsSpan(r * cols, cols).SequenceEqual(table.AsSpan(ids[r] * cols, cols))) { wrong++; break; }
            }
        }
        finally { stop.Cancel(); churn.Join(); }
        TestContext.Out.WriteLine($"gen0 collections {GC.CollectionCount(0) - gc0}, {wrong} wrong");
        Assert.That(wrong, Is.Zero, $"{wrong} of {rounds} rounds read back rows other than the ids'");
    }
}

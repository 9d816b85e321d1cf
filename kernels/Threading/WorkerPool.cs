using System.Runtime.CompilerServices;
namespace KernelEngine.Kernels.Threading;

/// <summary>
/// A persistent pool of worker threads for data-parallel kernels: one job at a time, split into
/// <c>count</c> independent tasks that the caller and the workers claim from a shared counter.
/// Workers spin briefly between jobs (decode issues a job every few microseconds) and then sleep.
/// The body is a function pointer plus a context pointer, so a launch allocates nothing.
/// A second caller that finds the pool busy (another session on another thread), or a task that launches a job of its
/// own, runs that job inline.
/// </summary>
public sealed unsafe class WorkerPool : IDisposable
{
    /// <summary>The process-wide pool, one thread per core (the caller is one of them).</summary>
    public static WorkerPool Shared { get; } = new(Environment.ProcessorCount);

    private readonly Thread[] _threads;
    private readonly int[] _started;   // (worker) generation the worker was told to run
    private readonly int[] _finished;  // (worker) generation the worker has finished
    private readonly object _gate = new();
    private readonly object _sleep = new();
    private int _sleepers;
    private int _generation;
    private volatile bool _disposed;

    private delegate*<void*, int, void> _body;
    private void* _context;
    private int _count;
    private int _next;

    /// <summary>A pool of <paramref name="threads"/> threads in all: the caller plus threads − 1 workers (at least 1).</summary>
    public WorkerPool(int threads)
    {
        Threads = Math.Max(1, threads);
        int workers = Threads - 1;
        _threads = new Thread[workers];
        _started = new int[workers * 16];   // padded: one cache line per worker
        _finished = new int[workers * 16];
        for (int w = 0; w < workers; w++)
        {
            int id = w;
            _threads[w] = new Thread(() => WorkerLoop(id)) { IsBackground = true, Name = $"ke-worker-{w}" };
            _threads[w].Start();
        }
    }

    /// <summary>Total threads that run a job (workers plus the calling thread).</summary>
    public int Threads { get; }

    /// <summary>Below this many multiply-adds (or bytes touched) a job runs on the calling thread: waking the workers
    /// costs more than it saves (small models such as stories260K are dominated by that overhead).</summary>
    public const long InlineWork = 48 * 1024;

    /// <summary>Pauses the caller spins for a worker's last task before it starts yielding its core.</summary>
    private const int WaitSpins = 100_000;

    /// <summary>Like the three-argument <c>For</c>, inline when the whole job is small.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void For(int count, delegate*<void*, int, void> body, void* context, long work)
    {
        if (work < InlineWork) { for (int i = 0; i < count; i++) body(context, i); return; }
        For(count, body, context);
    }

    /// <summary>Runs body(context, i) for i in [0, count) and returns when all have finished.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void For(int count, delegate*<void*, int, void> body, void* context)
    {
        if (count <= 0) return;
        // Inline: one task, no workers, another caller's job running, or a task of this pool's own job (nested: the
        // calling thread already holds the gate; a worker's attempt fails to take it).
        if (count == 1 || _threads.Length == 0 || Monitor.IsEntered(_gate) || !Monitor.TryEnter(_gate))
        {
            for (int i = 0; i < count; i++) body(context, i);
            return;
        }
        try
        {
            _body = body;
            _context = context;
            _count = count;
            _next = 0;
            int gen = Interlocked.Increment(ref _generation);
            for (int w = 0; w < _threads.Length; w++) Volatile.Write(ref _started[w * 16], gen);
            if (Volatile.Read(ref _sleepers) > 0)
                lock (_sleep) Monitor.PulseAll(_sleep);
            RunTasks();
            // The last tasks end within microseconds: spin on the flag (a yield is a system call, slow in a VM, and late to
            // see the flag), and yield only if a worker was descheduled.
            for (int w = 0; w < _threads.Length; w++)
                for (int spins = 0; Volatile.Read(ref _finished[w * 16]) != gen; spins++)
                {
                    if (spins < WaitSpins) Thread.SpinWait(1);
                    else Thread.Yield();
                }
        }
        finally
        {
            Monitor.Exit(_gate);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunTasks()
    {
        int i;
        while ((i = Interlocked.Increment(ref _next) - 1) < _count) _body(_context, i);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WorkerLoop(int w)
    {
        int seen = 0;
        while (true)
        {
            int spins = 0;
            int gen;
            while ((gen = Volatile.Read(ref _started[w * 16])) == seen)
            {
                if (_disposed) return;
                if (++spins < 20_000) { Thread.SpinWait(20); continue; }
                Interlocked.Increment(ref _sleepers);
                lock (_sleep)
                {
                    while (Volatile.Read(ref _started[w * 16]) == seen && !_disposed) Monitor.Wait(_sleep, 50);
                }
                Interlocked.Decrement(ref _sleepers);
                spins = 0;
            }
            seen = gen;
            RunTasks();
            Volatile.Write(ref _finished[w * 16], gen);
        }
    }

    /// <summary>Stops and joins the workers.</summary>
    public void Dispose()
    {
        _disposed = true;
        lock (_sleep) Monitor.PulseAll(_sleep);
    }
}

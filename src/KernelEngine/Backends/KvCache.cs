using KernelEngine.Kernels;
using KernelEngine.Kernels.Attention;

namespace KernelEngine.Backends;

/// <summary>Keys and values of every layer for one session: K, V each (rows, kvDim), stored as <see cref="Type"/> (F32,
/// F16, or on the CPU a block format such as Q8_0, quantized as each row is written). A full-attention layer holds
/// <see cref="ContextLength"/> rows, position p in row p of its block. A sliding-window layer holds only
/// <see cref="WindowRows"/> rows (its window plus one batch): positions [<see cref="Dropped"/>, ...) in rows from 0, and
/// <see cref="MakeRoom"/> moves the last window down before a batch would run past the block.</summary>
/// <remarks>Backends address position p of layer l as row <see cref="PositionRow"/>(l) + p; for a sliding-window layer
/// that base lies below the block by <see cref="Dropped"/> rows, and the kernels read only positions inside the
/// window, so only rows inside the block.</remarks>
internal sealed class KvCache : IDisposable
{
    private readonly long[] _rowBase;   // each layer's first row
    private readonly bool[] _windowed;
    private readonly List<MappedRange> _mapped = new();   // positions read from other caches' pages, in order from 0
    private readonly List<int> _pins = new();             // per range another cache maps from this one: its end

    /// <summary>Positions [Start, End) of every layer that map <see cref="Owner"/>'s pages.</summary>
    private readonly record struct MappedRange(KvCache Owner, int Start, int End);

    public KvCache(IBackend backend, int layers, int contextLength, int kvDim, bool f16)
        : this(backend, layers, contextLength, kvDim, f16 ? WeightType.F16 : WeightType.F32, kvDim) { }

    /// <param name="windowedLayers">the layers that attend through a sliding window of <paramref name="window"/> positions
    /// (null: none); they get <paramref name="window"/> + <paramref name="batch"/> − 1 rows when that is below the context</param>
    /// <param name="batch">the most positions one forward pass writes</param>
    /// <param name="shareable">allocate pages other caches can map (<see cref="ShareFrom"/>) where the backend can</param>
    public KvCache(IBackend backend, int layers, int contextLength, int kvDim, WeightType type, int headDim,
        bool[]? windowedLayers = null, int window = 0, int batch = 0, bool shareable = false)
    {
        Layers = layers; ContextLength = contextLength; KvDim = kvDim; Type = type;
        Rows = KvRows.Supports(type, headDim) ? new KvRows(type) : default;
        if (headDim < 1 || kvDim % headDim != 0 || !backend.SupportsKvCache(type, headDim))
            throw new InvalidRequestException($"KV cache type {type.Name()} does not run on {backend.Device.Id} with heads of {headDim} (types there: {string.Join(", ", KvCacheTypes.Names(backend, headDim))})");
        bool windows = windowedLayers != null && window > 0 && batch > 0 && windowedLayers.Any(w => w);
        Window = windows ? window : 0;
        // A window that with a batch covers the context holds it all: its layers then never drop anything.
        WindowRows = windows ? (int)Math.Min((long)window + batch - 1, contextLength) : contextLength;
        _windowed = new bool[layers];
        _rowBase = new long[layers];
        // A shareable cache starts every layer on a page so that whole pages of positions can be mapped.
        int granuleBytes = shareable && !windows ? backend.KvShareGranuleBytes : 0;
        long rowBytes = type.RowBytes(kvDim);
        MapGranule = granuleBytes > 0 ? granuleBytes / (int)Gcd(rowBytes, granuleBytes) : 0;
        long layerRows = MapGranule > 0 ? (contextLength + MapGranule - 1L) / MapGranule * MapGranule : contextLength;
        long rows = 0;
        for (int l = 0; l < layers; l++)
        {
            _windowed[l] = windows && windowedLayers![l];
            _rowBase[l] = rows;
            rows += _windowed[l] ? WindowRows : layerRows;
        }
        long bytes = MemoryBudget.Bytes(2, rows, type.RowBytes(kvDim));
        if (rows > int.MaxValue) throw new DeviceException($"a KV cache of {layers} layers x {contextLength} positions is too large; lower the context length (ModelOptions.ContextLength, --context)");
        string windowNote = windows && WindowRows < contextLength ? $", {_windowed.Count(w => w)} sliding-window layers holding {WindowRows}" : "";
        MemoryBudget.Check(backend.Device, bytes, $"the KV cache ({layers} layers x {contextLength} positions x {kvDim} x 2, {type.Name()}{windowNote})",
            "lower the context length (ModelOptions.ContextLength, --context) or pick a smaller --kv-type");
        K = MapGranule > 0 ? backend.AllocateShareable((int)rows, kvDim, type) : backend.Allocate((int)rows, kvDim, type);
        try { V = MapGranule > 0 ? backend.AllocateShareable((int)rows, kvDim, type) : backend.Allocate((int)rows, kvDim, type); }
        catch { K.Dispose(); throw; }
        Diagnostics.Telemetry.KvCacheBytes.Add(Bytes);
    }

    public int Layers { get; }
    public int ContextLength { get; }
    public int KvDim { get; }
    public WeightType Type { get; }
    /// <summary>How the CPU kernels address and convert this cache's rows.</summary>
    internal KvRows Rows { get; }
    public DeviceTensor K { get; }   // (layer, position, kvDim)
    public DeviceTensor V { get; }   // (layer, position, kvDim)
    public long Bytes => K.Bytes + V.Bytes;
    /// <summary>The sliding window of the windowed layers (0: none).</summary>
    public int Window { get; }
    /// <summary>Rows of a sliding-window layer's block (<see cref="ContextLength"/> when none is windowed).</summary>
    public int WindowRows { get; }
    /// <summary>Positions the sliding-window layers no longer hold (their block starts at this position).</summary>
    public int Dropped { get; private set; }
    /// <summary>0 for a cache whose pages cannot be shared; else the fewest positions that fill whole pages of memory
    /// (what <see cref="ShareFrom"/> maps comes in multiples of it).</summary>
    public int MapGranule { get; }
    /// <summary>Positions below this one are (some or all of them) read from other caches' pages (<see cref="ShareFrom"/>).</summary>
    public int MappedPositions => _mapped.Count == 0 ? 0 : _mapped[^1].End;
    /// <summary>How many positions of every layer are read from other caches' pages.</summary>
    public int MappedPositionCount => _mapped.Sum(r => r.End - r.Start);
    /// <summary>Positions [0, PinnedPositions) other caches map from this one: they must not be rewritten until those
    /// caches unshare or are disposed.</summary>
    public int PinnedPositions => _pins.Count == 0 ? 0 : _pins.Max();

    /// <summary>How many of positions [0, count) this cache could map from <paramref name="from"/> (whole pages; 0 when
    /// either cache is not shareable or their shapes differ).</summary>
    public int MappablePositions(KvCache from, int count)
    {
        if (MapGranule == 0 || from.MapGranule != MapGranule || from.Layers != Layers || from.KvDim != KvDim || from.Type != Type
            || Dropped != 0 || from.Dropped != 0) return 0;
        int n = Math.Min(count, Math.Min(ContextLength, from.ContextLength));
        return Math.Max(0, n) / MapGranule * MapGranule;
    }

    /// <summary>
    /// Prefix sharing without a copy: positions [0, n) of every layer map the pages that hold them in
    /// <paramref name="from"/> (its own, or those it maps itself), n = <see cref="MappablePositions"/>(from, count); returns n
    /// (0: nothing shared, copy instead). The pages are copy-on-write: a write here copies the page first, and
    /// <paramref name="from"/> keeps them pinned (<see cref="PinnedPositions"/>) until this cache unshares or is disposed.
    /// Whatever this cache mapped before is unshared first.
    /// </summary>
    public int ShareFrom(IBackend backend, KvCache from, int count)
    {
        int n = MappablePositions(from, count);
        if (n == 0 || ReferenceEquals(from, this)) return 0;
        Unshare(backend);
        // from's positions live in its own pages except where it maps others' (mapped again from where they are)
        int at = 0;
        foreach (var r in from._mapped)
        {
            Map(from, at, Math.Min(r.Start, n));
            Map(r.Owner, r.Start, Math.Min(r.End, n));
            at = r.End;
        }
        Map(from, at, n);
        return n;

        void Map(KvCache owner, int start, int end)
        {
            // positions this cache's own pages hold already (from maps them from here) stay as they are
            if (end <= start || ReferenceEquals(owner, this)) return;
            backend.MapKv(owner, this, start, end);
            owner._pins.Add(end);
            _mapped.Add(new MappedRange(owner, start, end));
        }
    }

    /// <summary>Ends what <see cref="ShareFrom"/> mapped: those positions are this cache's own (zeroed) pages again and
    /// their owners are unpinned.</summary>
    public void Unshare(IBackend backend)
    {
        foreach (var r in _mapped)
        {
            backend.UnmapKv(this, r.Start, r.End);
            r.Owner._pins.Remove(r.End);
        }
        _mapped.Clear();
    }

    private static long Gcd(long a, long b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }

    /// <summary>The row position 0 of layer l maps to: position p lives in row PositionRow(l) + p (below the layer's
    /// block for a windowed layer's dropped positions, which nothing reads).</summary>
    public long PositionRow(int layer) => _rowBase[layer] - (_windowed[layer] ? Dropped : 0);

    /// <summary>Whether a pass may start at <paramref name="start"/>: every position a windowed layer reads from there
    /// (from start − window + 1) is still held.</summary>
    public bool CanResumeAt(int start) => start == 0 || Dropped == 0 || Math.Max(0, start - Window + 1) >= Dropped;

    /// <summary>Before a pass writes positions [start, start + count): forgets everything after an empty start, and
    /// when the windowed layers' blocks would overflow, moves their last window − 1 positions (all the pass reads
    /// below start) to the front.</summary>
    public void MakeRoom(IBackend backend, int start, int count)
    {
        if (Window == 0) return;
        if (start == 0) { Dropped = 0; return; }
        if (!CanResumeAt(start))
            throw new InvalidOperationException($"positions before {Dropped} are no longer held by the sliding-window layers; a pass cannot start at {start}");
        if ((long)start + count - Dropped <= WindowRows) return;
        int first = start - Window + 1;
        if ((long)start + count - first > WindowRows)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"a pass of more than {WindowRows - Window + 1} positions does not fit the sliding-window layers' {WindowRows} rows");
        MoveDown(backend, first, start - first, first - Dropped, KvLayers.Windowed);
        Dropped = first;
    }

    /// <summary>Copies positions [from, from + count) down by <paramref name="by"/> positions in the given layers, in runs
    /// no longer than the distance so that no copy reads what another wrote.</summary>
    private void MoveDown(IBackend backend, int from, int count, int by, KvLayers layers)
    {
        if (by <= 0 || count <= 0) return;
        for (int done = 0; done < count; done += by)
            backend.CopyKv(this, from + done, from + done - by, Math.Min(by, count - done), layers);
    }

    /// <summary>How many layers the set holds.</summary>
    public int LayerCount(KvLayers layers) => Enumerable.Range(0, Layers).Count(l => Includes(layers, l));

    /// <summary>Whether layer l belongs to the set (windowed: attends through the sliding window).</summary>
    public bool Includes(KvLayers layers, int layer) => layers switch
    {
        KvLayers.Full => !_windowed[layer],
        KvLayers.Windowed => _windowed[layer],
        _ => true,
    };

    /// <summary>
    /// Context shift: drops positions [keep, keep + discard) by moving the <paramref name="count"/> positions after them
    /// down to keep and rotating the moved keys back by discard positions (<paramref name="rope"/> null: learned
    /// positions, nothing to rotate). Windowed layers that dropped positions keep what the next pass reads: the last
    /// window − 1 positions after the shift, from the kept ones when the moved ones are fewer.
    /// </summary>
    /// <param name="windowRope">the RoPE table of the windowed layers when it differs (Gemma 3's local base); null: <paramref name="rope"/></param>
    public void Shift(IBackend backend, int keep, int discard, int count, RopeTable? rope, RopeTable? windowRope = null)
    {
        if (keep < 0 || discard < 1 || count < 0 || (long)keep + discard + count > ContextLength)
            throw new ArgumentOutOfRangeException(nameof(discard), $"keep {keep}, discard {discard}, count {count} in a cache of {ContextLength}");
        windowRope ??= rope;
        // Layers holding every position: the moved ones go down by discard, their keys rotated back.
        void MoveAndRotate(KvLayers set, RopeTable? table)
        {
            MoveDown(backend, keep + discard, count, discard, set);
            if (table != null && count > 0) backend.RotateKeys(this, keep, count, -discard, table, set);
        }
        if (Dropped == 0 && ReferenceEquals(windowRope, rope)) { MoveAndRotate(KvLayers.All, rope); return; }
        MoveAndRotate(KvLayers.Full, rope);
        if (Dropped == 0) { MoveAndRotate(KvLayers.Windowed, windowRope); return; }
        // Windowed layers: new positions [lo, hi) come from old ones (p < keep: p; else p + discard). Both segments move
        // down in row terms (lo >= Dropped, and lo >= Dropped − discard since Dropped <= old end − window + 1).
        int hi = keep + count, lo = Math.Max(0, hi - Window + 1);
        if (lo < keep && lo < Dropped)
            throw new InvalidRequestException($"a context shift that keeps {count} tokens after the first {keep} needs positions {lo}..{keep - 1}, which the sliding-window layers no longer hold; discard fewer tokens (keep at least {Window - 1} after the kept ones)");
        if (lo < keep) MoveDown(backend, lo, keep - lo, lo - Dropped, KvLayers.Windowed);
        int movedFrom = Math.Max(lo, keep);
        MoveDown(backend, movedFrom + discard, hi - movedFrom, discard + lo - Dropped, KvLayers.Windowed);
        Dropped = lo;
        if (windowRope != null && hi > movedFrom) backend.RotateKeys(this, movedFrom, hi - movedFrom, -discard, windowRope, KvLayers.Windowed);
    }

    private int _disposed;

    /// <summary>Throws unless this cache and <paramref name="to"/> have rows of one shape and both hold positions
    /// [0, count) in every layer (what <see cref="IBackend.CopyKvPrefix"/> copies: [start, count)).</summary>
    public void CheckPrefixCopy(KvCache to, int count, int start = 0)
    {
        if (start < 0 || start > count) throw new ArgumentOutOfRangeException(nameof(start), start, $"copy of positions [{start}, {count})");
        if (Layers != to.Layers || KvDim != to.KvDim || Type != to.Type)
            throw new ArgumentException($"KV caches of different shapes ({Layers} x {KvDim} {Type.Name()} vs {to.Layers} x {to.KvDim} {to.Type.Name()})");
        if (count < 0 || count > Math.Min(ContextLength, to.ContextLength) || Dropped != 0 || to.Dropped != 0 || count > WindowRows || count > to.WindowRows)
            throw new ArgumentOutOfRangeException(nameof(count), count, "positions the two caches do not both hold");
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        // mapped pages go with the mappings; their owners may be rewritten again
        foreach (var r in _mapped) r.Owner._pins.Remove(r.End);
        _mapped.Clear();
        K.Dispose(); V.Dispose();
        Diagnostics.Telemetry.KvCacheBytes.Add(-Bytes);
    }
}

using System.IO.MemoryMappedFiles;

namespace KernelEngine.Formats;

/// <summary>A read-only memory mapping of a whole file and the pointer to its first byte, valid until Dispose.</summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _base;

    public long Length { get; }

    public MappedFile(string path, long length)
    {
        Length = length;
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref _base);
            _base += _view.PointerOffset;
        }
        catch
        {
            _view?.Dispose();
            _map.Dispose();
            throw;
        }
    }

    /// <summary>The first byte of the file; throws <see cref="ObjectDisposedException"/> after Dispose.</summary>
    public byte* Base
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            return _base;
        }
    }

    public void Dispose()
    {
        if (_base != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _base = null;
        }
        _view.Dispose();
        _map.Dispose();
    }
}

using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// An mmap of a region a vIOMMU exported on the emulated iommufd: accesses reach the device (or
/// host memory) behind the region directly, as a real shared mapping of device registers does.
/// Holds the vIOMMU busy until disposed. Accesses outside the page or not 4/8-byte aligned read
/// 0 and are ignored (guest accesses never throw).
/// </summary>
public sealed class EmulatedMmioMapping : IMmioMapping
{
    private readonly EmulatedIommufd _context;
    private readonly ViommuObject _owner;
    private readonly IMmioDevice _device;
    private bool _disposed;

    /// <summary>The vIOMMU the mapping holds (iommufd_fops_mmap takes a user of the region's owner).</summary>
    internal ViommuObject Owner => _owner;

    internal EmulatedMmioMapping(EmulatedIommufd context, ViommuObject owner, IMmioDevice device, ulong offset)
    {
        _context = context;
        _owner = owner;
        _device = device;
        Offset = offset;
    }

    /// <inheritdoc/>
    public ulong Offset { get; }

    /// <inheritdoc/>
    public ulong Size => _device.Size;

    /// <inheritdoc/>
    public ulong Read(ulong offset, int width)
    {
        lock (_context.Host.KernelLock)
        {
            if (_disposed || !Valid(offset, width)) return 0;
            return _device.Read(offset, width);
        }
    }

    /// <inheritdoc/>
    public void Write(ulong offset, int width, ulong value)
    {
        lock (_context.Host.KernelLock)
        {
            if (_disposed || !Valid(offset, width)) return;
            _device.Write(offset, width, value);
        }
    }

    /// <summary>munmap.</summary>
    public void Dispose()
    {
        lock (_context.Host.KernelLock)
        {
            if (_disposed) return;
            _disposed = true;
            _context.Unmapped(this, _owner);
        }
    }

    internal void Revoke() => _disposed = true;

    private bool Valid(ulong offset, int width) =>
        width is sizeof(uint) or sizeof(ulong) && (offset & (ulong)(width - 1)) == 0 && offset <= Size - (ulong)width;
}

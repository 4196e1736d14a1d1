using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Iommufd;

/// <summary>
/// Host memory the VMM owns and can map into an IOAS: typically guest RAM, obtained from the
/// backend with <see cref="IIommufd.AllocateHostMemory"/>. On a real host it is process memory
/// at a virtual address (IOMMU_IOAS_MAP takes <c>user_va</c>); on the emulated host it is a
/// run of host physical memory. Either way the VMM reads and writes it through this object,
/// addressed by offset from the region's start (so the region is an <see cref="IPhysicalMemory"/>
/// whose address 0 is its first byte).
/// </summary>
/// <remarks>
/// Backends accept only regions they created (or, for the real kernel, any native region);
/// mapping another backend's region fails with EFAULT, as the kernel does for a bad user VA.
/// </remarks>
public abstract class HostMemoryRegion : IPhysicalMemory, IDisposable
{
    /// <summary>Initialises the common state.</summary>
    /// <param name="name">A label for messages, e.g. <c>ram0</c>.</param>
    /// <param name="length">Bytes in the region; must be non-zero.</param>
    protected HostMemoryRegion(string name, ulong length)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentOutOfRangeException.ThrowIfZero(length);
        Name = name;
        Length = length;
    }

    /// <summary>A label for messages.</summary>
    public string Name { get; }

    /// <summary>Bytes in the region.</summary>
    public ulong Length { get; }

    /// <summary>True once <see cref="Dispose()"/> ran; the memory may not be used afterwards.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>Copies bytes at <paramref name="offset"/> into <paramref name="destination"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range leaves the region.</exception>
    public void Read(ulong offset, Span<byte> destination)
    {
        CheckAccess(offset, destination.Length);
        ReadCore(offset, destination);
    }

    /// <summary>Writes <paramref name="source"/> at <paramref name="offset"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range leaves the region.</exception>
    public void Write(ulong offset, ReadOnlySpan<byte> source)
    {
        CheckAccess(offset, source.Length);
        WriteCore(offset, source);
    }

    /// <summary>True when <c>[offset, offset + length)</c> lies inside the region.</summary>
    public bool Contains(ulong offset, ulong length) => offset <= Length && length <= Length - offset;

    /// <summary>Reads from a range already checked to lie inside the region.</summary>
    protected abstract void ReadCore(ulong offset, Span<byte> destination);

    /// <summary>Writes to a range already checked to lie inside the region.</summary>
    protected abstract void WriteCore(ulong offset, ReadOnlySpan<byte> source);

    /// <summary>Frees the memory (munmap, or return to the emulated allocator). Runs once.</summary>
    protected virtual void Release() { }

    /// <summary>Releases the memory. Unmap it from every IOAS first: the kernel keeps pinned pages alive, the model may not.</summary>
    public void Dispose()
    {
        if (IsDisposed) return;
        IsDisposed = true;
        Release();
        GC.SuppressFinalize(this);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Length:N0} bytes)";

    private void CheckAccess(ulong offset, int length)
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        if (!Contains(offset, (ulong)length))
            throw new ArgumentOutOfRangeException(nameof(offset),
                $"Access of {length} bytes at offset 0x{offset:X} leaves host memory region '{Name}' of 0x{Length:X} bytes.");
    }
}

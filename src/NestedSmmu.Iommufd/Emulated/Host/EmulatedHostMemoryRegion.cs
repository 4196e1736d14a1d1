namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// Host memory for the VMM on the emulated host: a physically contiguous run of host memory,
/// also mapped into the VMM's (emulated) address space at <see cref="UserAddress"/> so that
/// IOMMU_IOAS_MAP can name it by <c>user_va</c>. The kernel pins it while an IOAS maps it:
/// disposing it unmaps it from the VMM at once, but the pages go back to the allocator only when
/// the last IOAS mapping of them is gone.
/// </summary>
public sealed class EmulatedHostMemoryRegion : HostMemoryRegion
{
    private readonly EmulatedHost _host;
    private int _pins;
    private bool _released;

    internal EmulatedHostMemoryRegion(EmulatedHost host, ulong hostPhysicalAddress, ulong length, string name) : base(name, length)
    {
        _host = host;
        HostPhysicalAddress = hostPhysicalAddress;
        UserAddress = host.UserMemory.MapRegion(this);
    }

    /// <summary>Host physical address of offset 0.</summary>
    public ulong HostPhysicalAddress { get; }

    /// <summary>Where the region sits in the VMM's address space: the <c>user_va</c> of offset 0.</summary>
    public ulong UserAddress { get; }

    /// <summary>The host this region belongs to.</summary>
    public EmulatedHost Host => _host;

    /// <summary>IOAS mappings currently pinning part of the region.</summary>
    public int PinCount => _pins;

    /// <inheritdoc/>
    protected override void ReadCore(ulong offset, Span<byte> destination)
    {
        lock (_host.KernelLock) ReadUnlocked(offset, destination);
    }

    /// <inheritdoc/>
    protected override void WriteCore(ulong offset, ReadOnlySpan<byte> source)
    {
        lock (_host.KernelLock) WriteUnlocked(offset, source);
    }

    internal void ReadUnlocked(ulong offset, Span<byte> destination) => _host.Memory.Read(HostPhysicalAddress + offset, destination);

    internal void WriteUnlocked(ulong offset, ReadOnlySpan<byte> source) => _host.Memory.Write(HostPhysicalAddress + offset, source);

    internal void Pin() => _pins++;

    internal void Unpin()
    {
        _pins--;
        if (_pins == 0 && IsDisposed) FreePages();
    }

    /// <inheritdoc/>
    protected override void Release()
    {
        lock (_host.KernelLock)
        {
            _host.UserMemory.Unmap(UserAddress);
            if (_pins == 0) FreePages();
        }
    }

    private void FreePages()
    {
        if (_released) return;
        _released = true;
        _host.Allocator.Free(HostPhysicalAddress);
    }
}

namespace NestedSmmu.Iommufd.Linux;

/// <summary>
/// Host memory at a virtual address of this process: what IOMMU_IOAS_MAP's <c>user_va</c>
/// points at. Made by <see cref="LinuxIommufd.AllocateHostMemory"/> (anonymous mmap, unmapped
/// on dispose), or wrapped around memory the VMM already owns (a memfd mapping, hugepages),
/// which this object then does not free.
/// </summary>
public sealed unsafe class NativeHostMemoryRegion : HostMemoryRegion
{
    private readonly Action<nint, ulong>? _release;

    /// <summary>Wraps memory the caller owns; disposing does not free it.</summary>
    /// <param name="address">Start address in this process.</param>
    /// <param name="length">Bytes; the caller guarantees they stay mapped while this object is used.</param>
    /// <param name="name">A label for messages.</param>
    public NativeHostMemoryRegion(nint address, ulong length, string name) : this(address, length, name, null) { }

    internal NativeHostMemoryRegion(nint address, ulong length, string name, Action<nint, ulong>? release) : base(name, length)
    {
        if (address == 0) throw new ArgumentException("Address 0 is not memory.", nameof(address));
        Address = address;
        _release = release;
    }

    /// <summary>Start of the region in this process's address space (the <c>user_va</c> of offset 0).</summary>
    public nint Address { get; }

    /// <summary>The virtual address of <paramref name="offset"/>.</summary>
    public ulong VirtualAddressOf(ulong offset) => (ulong)Address + offset;

    /// <inheritdoc/>
    protected override void ReadCore(ulong offset, Span<byte> destination) =>
        new ReadOnlySpan<byte>((void*)(Address + (nint)offset), destination.Length).CopyTo(destination);

    /// <inheritdoc/>
    protected override void WriteCore(ulong offset, ReadOnlySpan<byte> source) =>
        source.CopyTo(new Span<byte>((void*)(Address + (nint)offset), source.Length));

    /// <inheritdoc/>
    protected override void Release() => _release?.Invoke(Address, Length);
}

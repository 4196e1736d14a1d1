namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The VMM process's address space as the emulated kernel sees it: what a user pointer in an
/// ioctl argument (<c>data_uptr</c>, <c>user_va</c>) refers to. Two kinds of mappings: buffers
/// of managed memory (the ioctl payloads the VMM passes) and host memory regions (guest RAM from
/// <see cref="IIommufd.AllocateHostMemory"/>, which IOMMU_IOAS_MAP pins). Addresses are handed out
/// deterministically from <see cref="UserBase"/>; address 0 (NULL) and anything unmapped fault
/// (EFAULT), as copy_from_user would.
/// </summary>
public sealed class UserAddressSpace
{
    /// <summary>First user address handed out: where a 64-bit Linux process's mmap area typically sits.</summary>
    public const ulong UserBase = 0x7F00_0000_0000;

    /// <summary>Top of the 47-bit user address space (TASK_SIZE on arm64 with 48-bit VAs).</summary>
    public const ulong UserLimit = 1UL << 47;

    private const ulong PageSize = HostMemoryAllocator.PageSize;
    private const ulong PageMask = PageSize - 1;

    // Sorted by start: addresses are handed out in increasing order, so a new mapping is appended.
    // A binary search finds the one an address falls in (IOMMU_IOAS_MAP resolves its user_va here on
    // every call; a SortedDictionary walk allocated its enumerator's stack each time).
    private readonly List<Mapping> _mappings = [];
    private ulong _next = UserBase;

    /// <summary>One mapping: a managed buffer, or a run of host physical memory (a value: mapping allocates nothing).</summary>
    private readonly record struct Mapping(ulong Start, ulong Length, byte[]? Buffer, EmulatedHostMemoryRegion? Region);

    /// <summary>Mappings currently present.</summary>
    public int Count => _mappings.Count;

    /// <summary>
    /// Maps <paramref name="buffer"/> at a fresh user address and returns it: the kernel reads
    /// and writes the array itself. Unmap with <see cref="Unmap"/>.
    /// </summary>
    public ulong Map(byte[] buffer)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        return Map(buffer, buffer.Length);
    }

    /// <summary>
    /// Maps the first <paramref name="length"/> bytes of <paramref name="buffer"/> (a pooled array
    /// may be longer): a user access past them faults as it would past the caller's own buffer.
    /// </summary>
    public ulong Map(byte[] buffer, int length)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, buffer.Length);
        return Add((ulong)Math.Max(length, 1), buffer, null);
    }

    /// <summary>Removes the mapping that starts at <paramref name="address"/>; false when there is none.</summary>
    public bool Unmap(ulong address)
    {
        int i = LastStartingAtOrBelow(address);
        if (i < 0 || _mappings[i].Start != address) return false;
        _mappings.RemoveAt(i);
        // The ioctl wrappers map a buffer, call and unmap it: when the last mapping goes, its
        // addresses are handed out again, so a long run of ioctls does not exhaust the space.
        if (i == _mappings.Count) _next = address;
        return true;
    }

    internal ulong MapRegion(EmulatedHostMemoryRegion region) => Add(region.Length, null, region);

    /// <summary>
    /// copy_from_user: fills <paramref name="destination"/> from <c>[address, address + length)</c>;
    /// false (EFAULT) when any byte is unmapped.
    /// </summary>
    internal bool TryRead(ulong address, Span<byte> destination)
    {
        if (destination.IsEmpty) return true;
        if (!TryFind(address, (ulong)destination.Length, out Mapping m)) return false;
        ulong offset = address - m.Start;
        if (m.Buffer is { } b) b.AsSpan((int)offset, destination.Length).CopyTo(destination);
        else m.Region!.ReadUnlocked(offset, destination);
        return true;
    }

    /// <summary>copy_to_user: false (EFAULT) when any byte is unmapped.</summary>
    internal bool TryWrite(ulong address, ReadOnlySpan<byte> source)
    {
        if (source.IsEmpty) return true;
        if (!TryFind(address, (ulong)source.Length, out Mapping m)) return false;
        ulong offset = address - m.Start;
        if (m.Buffer is { } b) source.CopyTo(b.AsSpan((int)offset, source.Length));
        else m.Region!.WriteUnlocked(offset, source);
        return true;
    }

    /// <summary>The host memory region and offset a user range lies in (what pinning user pages finds), or false.</summary>
    internal bool TryResolveRegion(ulong address, ulong length, out EmulatedHostMemoryRegion? region, out ulong offset)
    {
        region = null;
        offset = 0;
        if (!TryFind(address, length, out Mapping m) || m.Region is null) return false;
        region = m.Region;
        offset = address - m.Start;
        return true;
    }

    private ulong Add(ulong length, byte[]? buffer, EmulatedHostMemoryRegion? region)
    {
        ulong span = (length + PageMask) & ~PageMask;
        // A guard page between mappings, so an overrun faults as it would between real mmaps.
        ulong start = _next;
        if (span > UserLimit - start - PageSize)
            throw new IommufdException(Errno.ENOMEM, "mmap", $"the emulated user address space is exhausted (0x{length:X} bytes requested)");
        _next = start + span + PageSize;
        _mappings.Add(new Mapping(start, length, buffer, region));
        return start;
    }

    private bool TryFind(ulong address, ulong length, out Mapping m)
    {
        m = default;
        if (address == 0 || length == 0 || address > ulong.MaxValue - length) return false;
        // The candidate is the last mapping starting at or below the address.
        int i = LastStartingAtOrBelow(address);
        if (i < 0) return false;
        Mapping candidate = _mappings[i];
        if (address - candidate.Start > candidate.Length || length > candidate.Length - (address - candidate.Start))
            return false;
        m = candidate;
        return true;
    }

    /// <summary>The index of the last mapping whose start is at or below <paramref name="address"/>, or -1.</summary>
    private int LastStartingAtOrBelow(ulong address)
    {
        int lo = 0, hi = _mappings.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (_mappings[mid].Start <= address) lo = mid + 1;
            else hi = mid;
        }
        return lo - 1;
    }
}

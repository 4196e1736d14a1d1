using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Guest.Smmu;

/// <summary>
/// A guest-physical page allocator over one RAM range, as a guest kernel's page allocator serves
/// dma_alloc_coherent: blocks of whole 4 KiB pages, aligned to their size rounded up to a power of
/// two (SMMU queues and tables need natural alignment, IHI 0070 6.3.23-6.3.27), zeroed on allocation.
/// Freed blocks are reused first-fit.
/// </summary>
public sealed class GuestPageAllocator
{
    public const int PageShift = 12;
    public const ulong PageSize = 1UL << PageShift;
    private const ulong PageMask = PageSize - 1;

    private readonly IPhysicalMemory _ram;
    // Free ranges as (start, end), sorted and coalesced.
    private readonly List<(ulong Start, ulong End)> _free = new();

    /// <param name="ram">Guest RAM as the guest addresses it (guest-physical addresses).</param>
    /// <param name="start">First guest-physical address the allocator may hand out (page aligned).</param>
    /// <param name="length">Bytes it may hand out.</param>
    public GuestPageAllocator(IPhysicalMemory ram, ulong start, ulong length)
    {
        ArgumentNullException.ThrowIfNull(ram);
        if ((start & PageMask) != 0 || (length & PageMask) != 0 || length == 0)
            throw new ArgumentException($"Allocator range 0x{start:X} + 0x{length:X} must be whole, non-empty 4 KiB pages.");
        _ram = ram;
        Start = start;
        End = start + length;
        _free.Add((Start, End));
    }

    public ulong Start { get; }
    public ulong End { get; }
    /// <summary>Bytes currently handed out.</summary>
    public ulong BytesAllocated { get; private set; }

    /// <summary>
    /// A zeroed block of at least <paramref name="bytes"/> at an address aligned to
    /// <paramref name="alignment"/> (default: the size rounded up to a power of two).
    /// </summary>
    public ulong Allocate(ulong bytes, ulong alignment = 0)
    {
        if (bytes == 0) throw new ArgumentOutOfRangeException(nameof(bytes), "Cannot allocate 0 bytes.");
        ulong size = (bytes + PageMask) & ~PageMask;
        if (alignment == 0) alignment = Math.Max(PageSize, System.Numerics.BitOperations.RoundUpToPowerOf2(size));
        if (!System.Numerics.BitOperations.IsPow2(alignment)) throw new ArgumentException($"Alignment 0x{alignment:X} is not a power of two.", nameof(alignment));
        for (int i = 0; i < _free.Count; i++)
        {
            var (s, e) = _free[i];
            ulong a = (s + alignment - 1) & ~(alignment - 1);
            if (a < s || a + size > e || a + size < a) continue;
            _free.RemoveAt(i);
            if (a + size < e) _free.Insert(i, (a + size, e));
            if (s < a) _free.Insert(i, (s, a));
            Zero(a, size);
            BytesAllocated += size;
            return a;
        }
        throw new InsufficientMemoryException(
            $"Guest RAM allocator [0x{Start:X}, 0x{End:X}) has no free block of 0x{size:X} bytes aligned to 0x{alignment:X}.");
    }

    /// <summary>Returns a block from <see cref="Allocate"/>.</summary>
    public void Free(ulong address, ulong bytes)
    {
        ulong size = (bytes + PageMask) & ~PageMask;
        if (address < Start || address + size > End) throw new ArgumentOutOfRangeException(nameof(address), $"0x{address:X} is not from this allocator.");
        int i = 0;
        while (i < _free.Count && _free[i].Start < address) i++;
        _free.Insert(i, (address, address + size));
        // Coalesce with the neighbours.
        if (i + 1 < _free.Count && _free[i].End == _free[i + 1].Start) { _free[i] = (_free[i].Start, _free[i + 1].End); _free.RemoveAt(i + 1); }
        if (i > 0 && _free[i - 1].End == _free[i].Start) { _free[i - 1] = (_free[i - 1].Start, _free[i].End); _free.RemoveAt(i); }
        BytesAllocated -= size;
    }

    private void Zero(ulong address, ulong size)
    {
        Span<byte> zeros = stackalloc byte[(int)PageSize];
        zeros.Clear();
        for (ulong off = 0; off < size; off += PageSize) _ram.Write(address + off, zeros);
    }
}

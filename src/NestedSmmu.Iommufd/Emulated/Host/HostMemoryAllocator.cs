using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The emulated kernel's physical page allocator over the host memory window: first-fit over a
/// sorted free list, whole pages, naturally aligned runs on request. Every run it hands out reads
/// as zeros (pages a previous owner wrote are scrubbed; untouched pages of the sparse memory
/// already read as zero and stay unallocated). Deterministic: the same calls give the same
/// addresses.
/// </summary>
internal sealed class HostMemoryAllocator
{
    /// <summary>The allocation unit: the host's 4 KiB page.</summary>
    public const ulong PageSize = SparseMemory.PageSize;
    private const ulong PageMask = PageSize - 1;

    private readonly SparseMemory _memory;
    // Free runs keyed by start address; adjacent runs are merged on free.
    private readonly SortedDictionary<ulong, ulong> _free = new();
    private readonly Dictionary<ulong, Allocation> _allocated = new();
    // Nothing at or above this address was ever handed out, so nothing there was ever written
    // (host memory is written only through allocated runs): scrubbing can stop here.
    private ulong _highWater;

    private sealed record Allocation(ulong Start, ulong Length, string Owner);

    public HostMemoryAllocator(SparseMemory memory, ulong start, ulong length)
    {
        _memory = memory;
        Start = start;
        Length = length;
        _free.Add(start, length);
    }

    public ulong Start { get; }
    public ulong Length { get; }

    /// <summary>Bytes currently handed out.</summary>
    public ulong BytesAllocated { get; private set; }

    /// <summary>Runs currently handed out.</summary>
    public int Allocations => _allocated.Count;

    /// <summary>
    /// A zeroed run of at least <paramref name="length"/> bytes (rounded up to whole pages),
    /// aligned to <paramref name="alignment"/> (a power of two, at least a page), or null when no
    /// free run is large enough.
    /// </summary>
    public ulong? TryAllocate(ulong length, ulong alignment, string owner)
    {
        if (length == 0 || length > Length) return null;
        ulong size = (length + PageMask) & ~PageMask;
        ulong align = Math.Max(alignment, PageSize);
        if ((align & (align - 1)) != 0) throw new ArgumentException($"Alignment 0x{alignment:X} is not a power of two.", nameof(alignment));
        foreach (var (runStart, runLength) in _free)
        {
            ulong start = (runStart + align - 1) & ~(align - 1);
            if (start < runStart) continue; // wrapped
            ulong runEnd = runStart + runLength;
            if (start > runEnd || runEnd - start < size) continue;
            _free.Remove(runStart);
            if (start > runStart) _free.Add(runStart, start - runStart);
            if (start + size < runEnd) _free.Add(start + size, runEnd - start - size);
            _allocated.Add(start, new Allocation(start, size, owner));
            BytesAllocated += size;
            Scrub(start, size);
            return start;
        }
        return null;
    }

    /// <summary>Returns a run handed out by <see cref="TryAllocate"/>.</summary>
    /// <exception cref="InvalidOperationException">Not the start of an allocated run (a kernel bug, not a user error).</exception>
    public void Free(ulong start)
    {
        if (!_allocated.Remove(start, out Allocation? a))
            throw new InvalidOperationException($"Host memory at 0x{start:X} is not the start of an allocation.");
        BytesAllocated -= a.Length;
        ulong s = a.Start, len = a.Length;
        // Merge with the free runs on either side.
        ulong? before = null;
        foreach (var (rs, rl) in _free)
        {
            if (rs + rl == s) before = rs;
            if (rs > s) break;
        }
        if (before is { } b)
        {
            len += s - b;
            s = b;
            _free.Remove(b);
        }
        if (_free.Remove(a.Start + a.Length, out ulong afterLength)) len += afterLength;
        _free.Add(s, len);
    }

    /// <summary>Who owns the run containing <paramref name="address"/>, for diagnostics; null when free.</summary>
    public string? OwnerOf(ulong address)
    {
        foreach (Allocation a in _allocated.Values)
        {
            if (address - a.Start < a.Length) return a.Owner;
        }
        return null;
    }

    /// <summary>Zeroes the pages of a run that a previous owner wrote; never-written pages already read as zero.</summary>
    private void Scrub(ulong start, ulong size)
    {
        ulong end = Math.Min(start + size, _highWater);
        _highWater = Math.Max(_highWater, start + size);
        Span<byte> zeros = stackalloc byte[(int)PageSize];
        zeros.Clear();
        for (ulong page = start; page < end; page += PageSize)
        {
            if (_memory.IsAllocated(page)) _memory.Write(page, zeros);
        }
    }
}

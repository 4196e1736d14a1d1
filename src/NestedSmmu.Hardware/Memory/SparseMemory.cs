using System.Runtime.InteropServices;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace NestedSmmu.Hardware.Memory;

/// <summary>
/// Physical memory for a 52-bit address space, allocated one page at a time on first write.
/// Reads of never-written memory return zeros. Not thread-safe: one model owns it.
/// </summary>
public sealed class SparseMemory : IPhysicalMemory
{
    /// <summary>Largest physical address size of the architecture (FEAT_LPA / 52-bit PA).</summary>
    public const int AddressBits = 52;
    public const ulong AddressLimit = 1UL << AddressBits;

    public const int PageShift = 12;
    public const int PageSize = 1 << PageShift;
    public const ulong PageMask = PageSize - 1;

    private readonly Dictionary<ulong, byte[]> _pages = new();
    private readonly List<(ulong Start, ulong End)> _abortRanges = new();
    // A small direct-mapped cache of page lookups: a nested walk alternates between a handful of
    // stage-1 and stage-2 table pages, and a dictionary probe per descriptor would dominate it.
    // The slot keeps the page number's low bits, so the consecutive pages of one table pool get
    // slots of their own, and adds a multiplicative hash of the bits above them, so two pools
    // (stage-2 tables at one base, stage-1 tables at another) start at unrelated slots. A fold of
    // the higher bits alone (the first design) put pools 0x1000_0000 and 0x4000_0000 at offsets 1
    // and 4: pages k and k ^ 5 of the two evicted each other, four dictionary probes in every
    // cold nested walk of the benchmark's layout.
    private const int CacheSlotBits = 8, CacheSlots = 1 << CacheSlotBits;
    private struct CacheSlot { public ulong Tag; public byte[]? Page; }
    private readonly CacheSlot[] _cache = CreateEmptyCache();

    private static CacheSlot[] CreateEmptyCache()
    {
        var slots = new CacheSlot[CacheSlots];
        foreach (ref CacheSlot s in slots.AsSpan()) s.Tag = ulong.MaxValue;
        return slots;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref CacheSlot SlotOf(ulong pageNumber) =>
        ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_cache),
            (int)((pageNumber + ((pageNumber >> CacheSlotBits) * 0x9E3779B97F4A7C15 >> (64 - CacheSlotBits))) & (CacheSlots - 1)));

    /// <summary>Pages that hold data (for diagnostics and tests).</summary>
    public int AllocatedPages => _pages.Count;

    public bool IsAllocated(ulong address) => _pages.ContainsKey(address >> PageShift);

    public void Read(ulong address, Span<byte> destination)
    {
        CheckRange(address, destination.Length);
        while (!destination.IsEmpty)
        {
            int offset = (int)(address & PageMask);
            int chunk = Math.Min(destination.Length, PageSize - offset);
            byte[]? page = FindPage(address >> PageShift);
            if (page is null) destination[..chunk].Clear();
            else page.AsSpan(offset, chunk).CopyTo(destination);
            destination = destination[chunk..];
            address += (ulong)chunk;
        }
    }

    public void Write(ulong address, ReadOnlySpan<byte> source)
    {
        CheckRange(address, source.Length);
        while (!source.IsEmpty)
        {
            int offset = (int)(address & PageMask);
            int chunk = Math.Min(source.Length, PageSize - offset);
            source[..chunk].CopyTo(GetOrAddPage(address >> PageShift).AsSpan(offset, chunk));
            source = source[chunk..];
            address += (ulong)chunk;
        }
    }

    /// <summary>Fast path for aligned 64-bit reads (descriptor fetches).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadUInt64(ulong address)
    {
        // Inlined into the walkers: the cached page's read only; anything else is a call.
        ulong pageNumber = address >> PageShift;
        ref CacheSlot slot = ref SlotOf(pageNumber);
        if (slot.Tag == pageNumber && (address & 7) == 0)
            return BinaryPrimitives.ReadUInt64LittleEndian(slot.Page!.AsSpan((int)(address & PageMask), 8));
        return ReadUInt64Uncached(address);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ulong ReadUInt64Uncached(ulong address)
    {
        if ((address & 7) != 0 || address >= AddressLimit)
        {
            Span<byte> b = stackalloc byte[8];
            Read(address, b);
            return BinaryPrimitives.ReadUInt64LittleEndian(b);
        }
        byte[]? page = FindPage(address >> PageShift);
        return page is null ? 0 : BinaryPrimitives.ReadUInt64LittleEndian(page.AsSpan((int)(address & PageMask), 8));
    }

    /// <summary>Marks [start, start + length) as having no memory: bus masters that touch it get an external abort.</summary>
    public void AddAbortRange(ulong start, ulong length) => _abortRanges.Add((start, start + length));

    /// <summary>Whether any abort range is set (hot paths skip the range check when none is).</summary>
    public bool HasAbortRanges => _abortRanges.Count != 0;

    /// <summary>Only abort ranges make an access abort; the walker's own address-limit check covers the rest.</summary>
    bool IPhysicalMemory.MayAbort => HasAbortRanges;

    /// <summary>True when the access touches an abort range or leaves the 52-bit space.</summary>
    public bool IsAbort(ulong address, ulong length)
    {
        if (address >= AddressLimit || length > AddressLimit - address) return true;
        if (_abortRanges.Count == 0) return false;
        foreach (var (s, e) in _abortRanges)
        {
            if (address < e && s < address + length) return true;
        }
        return false;
    }

    /// <summary>Forgets every page.</summary>
    public void Clear()
    {
        _pages.Clear();
        foreach (ref CacheSlot s in _cache.AsSpan()) s = new CacheSlot { Tag = ulong.MaxValue };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private byte[]? FindPage(ulong pageNumber)
    {
        ref CacheSlot slot = ref SlotOf(pageNumber);
        if (slot.Tag == pageNumber) return slot.Page;
        // Only present pages are cached, so a later first write cannot be hidden by a cached miss.
        if (!_pages.TryGetValue(pageNumber, out byte[]? page)) return null;
        slot.Tag = pageNumber;
        slot.Page = page;
        return page;
    }

    private byte[] GetOrAddPage(ulong pageNumber)
    {
        byte[]? page = FindPage(pageNumber);
        if (page is not null) return page;
        page = new byte[PageSize];
        _pages.Add(pageNumber, page);
        ref CacheSlot slot = ref SlotOf(pageNumber);
        slot.Tag = pageNumber;
        slot.Page = page;
        return page;
    }

    private static void CheckRange(ulong address, int length)
    {
        if (address >= AddressLimit || (ulong)length > AddressLimit - address)
            throw new ArgumentOutOfRangeException(nameof(address),
                $"Access of {length} bytes at 0x{address:X} is outside the {AddressBits}-bit physical address space.");
    }
}

using System.Numerics;

namespace NestedSmmu.Guest.Dma;

/// <summary>
/// One device's I/O virtual address space (Linux's iova_domain): first-fit allocation of whole
/// 4 KiB pages, each range aligned to its size rounded up to a power of two (alloc_iova with
/// size_aligned), so large buffers can use block mappings.
/// </summary>
public sealed class IovaAllocator
{
    private const ulong Granule = 1UL << 12;
    private readonly List<(ulong Start, ulong End)> _free = new();

    /// <param name="start">Lowest IOVA handed out (Linux starts at one granule, never 0).</param>
    /// <param name="end">One past the highest IOVA (the domain's input range).</param>
    public IovaAllocator(ulong start, ulong end)
    {
        if (start >= end || (start & (Granule - 1)) != 0 || (end & (Granule - 1)) != 0)
            throw new ArgumentException($"IOVA range [0x{start:X}, 0x{end:X}) must be non-empty and 4 KiB aligned.");
        Start = start;
        End = end;
        _free.Add((start, end));
    }

    public ulong Start { get; }
    public ulong End { get; }

    /// <summary>A free range of <paramref name="size"/> bytes (rounded to pages), or null when the space is exhausted.</summary>
    public ulong? Allocate(ulong size)
    {
        if (size == 0) return null;
        size = (size + Granule - 1) & ~(Granule - 1);
        ulong align = BitOperations.RoundUpToPowerOf2(size);
        for (int i = 0; i < _free.Count; i++)
        {
            var (s, e) = _free[i];
            ulong a = (s + align - 1) & ~(align - 1);
            if (a < s || a >= e || e - a < size) continue;
            _free.RemoveAt(i);
            if (a + size < e) _free.Insert(i, (a + size, e));
            if (s < a) _free.Insert(i, (s, a));
            return a;
        }
        return null;
    }

    /// <summary>
    /// Takes [<paramref name="start"/>, + <paramref name="size"/>) out of the free space (a reserved
    /// region such as an IORT RMR range, iova_reserve_iommu_regions). False when part of it is in use.
    /// </summary>
    public bool Reserve(ulong start, ulong size)
    {
        ulong end = (start + size + Granule - 1) & ~(Granule - 1);
        start &= ~(Granule - 1);
        for (int i = 0; i < _free.Count; i++)
        {
            var (s, e) = _free[i];
            if (start < s || end > e) continue;
            _free.RemoveAt(i);
            if (end < e) _free.Insert(i, (end, e));
            if (s < start) _free.Insert(i, (s, start));
            return true;
        }
        return false;
    }

    public void Free(ulong iova, ulong size)
    {
        size = (size + Granule - 1) & ~(Granule - 1);
        if (iova < Start || iova + size > End) throw new ArgumentOutOfRangeException(nameof(iova), $"IOVA 0x{iova:X} is outside [0x{Start:X}, 0x{End:X}).");
        int i = 0;
        while (i < _free.Count && _free[i].Start < iova) i++;
        if ((i < _free.Count && _free[i].Start < iova + size) || (i > 0 && _free[i - 1].End > iova))
            throw new InvalidOperationException($"IOVA range 0x{iova:X} + 0x{size:X} is (partly) free already.");
        _free.Insert(i, (iova, iova + size));
        if (i + 1 < _free.Count && _free[i].End == _free[i + 1].Start) { _free[i] = (_free[i].Start, _free[i + 1].End); _free.RemoveAt(i + 1); }
        if (i > 0 && _free[i - 1].End == _free[i].Start) { _free[i - 1] = (_free[i - 1].Start, _free[i].End); _free.RemoveAt(i); }
    }
}

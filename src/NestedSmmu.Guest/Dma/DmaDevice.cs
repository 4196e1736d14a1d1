using System.Numerics;
using NestedSmmu.Guest.Smmu;

namespace NestedSmmu.Guest.Dma;

/// <summary>Which way a mapping's data moves (Linux's enum dma_data_direction).</summary>
public enum DmaDirection
{
    /// <summary>Device reads and writes.</summary>
    Bidirectional,
    /// <summary>Device only reads: the mapping is read-only.</summary>
    ToDevice,
    /// <summary>Device only writes.</summary>
    FromDevice,
}

/// <summary>One leaf the mapping installed: IOVA, output address and size (4 KiB, 2 MiB or 1 GiB).</summary>
public readonly record struct DmaLeaf(ulong Iova, ulong PhysicalAddress, ulong Size);

/// <summary>A live DMA mapping: device address, guest-physical address, size, direction and the leaves used.</summary>
public sealed record DmaMapping(ulong Iova, ulong PhysicalAddress, ulong Size, DmaDirection Direction, IReadOnlyList<DmaLeaf> Leaves);

/// <summary>What a device's DMA API did.</summary>
public sealed class DmaCounters
{
    public long Maps { get; internal set; }
    public long Unmaps { get; internal set; }
    public long BytesMapped { get; internal set; }
    public long Pages4K { get; internal set; }
    public long Blocks2M { get; internal set; }
    public long Blocks1G { get; internal set; }
    /// <summary>Invalidation calls (each ends with CMD_SYNC).</summary>
    public long Invalidations { get; internal set; }
}

/// <summary>
/// The DMA-mapping API for one device behind a guest SMMU (Linux's dma-iommu over a per-device
/// stage-1 default domain): map a guest-physical buffer at a fresh IOVA with the largest pages
/// alignment allows (4 KiB, 2 MiB, 1 GiB: iommu_pgsize), unmap it and invalidate the TLB (range
/// TLBI_NH_VA with IDR3.RIL, per-granule otherwise), and ATC_INV when the device uses ATS.
/// </summary>
public sealed class DmaDevice
{
    /// <summary>The leaf sizes of a 4 KiB-granule stage-1 table: page, level-2 block, level-1 block.</summary>
    public static readonly ulong[] PageSizes = [1UL << 30, 1UL << 21, 1UL << 12];
    private const int PageLevel = 3;
    private const ulong PageSize = 1UL << 12;

    private readonly Dictionary<ulong, DmaMapping> _mappings = new();
    private readonly List<DmaMapping> _direct = new();

    /// <summary>
    /// Gives <paramref name="master"/> its own stage-1 domain and attaches it (iommu_setup_dma_ops).
    /// </summary>
    /// <param name="iovaStart">Lowest IOVA (default one granule, as Linux).</param>
    public DmaDevice(ArmSmmuV3Driver smmu, SmmuMaster master, ulong iovaStart = PageSize)
    {
        ArgumentNullException.ThrowIfNull(smmu);
        ArgumentNullException.ThrowIfNull(master);
        Smmu = smmu;
        Master = master;
        Domain = smmu.AllocateStage1Domain();
        smmu.AttachStage1(master, Domain);
        Iova = new IovaAllocator(iovaStart, 1UL << Domain.InputBits);
    }

    public ArmSmmuV3Driver Smmu { get; }
    public SmmuMaster Master { get; }
    public SmmuDomain Domain { get; }
    public IovaAllocator Iova { get; }
    public DmaCounters Counters { get; } = new();
    public IReadOnlyCollection<DmaMapping> Mappings => _mappings.Values;
    public string Name => Master.Name;
    public uint StreamId => Master.StreamId;

    /// <summary>
    /// Maps [<paramref name="physicalAddress"/>, + <paramref name="size"/>) for the device (dma_map_single):
    /// the IOVA keeps the buffer's offset in its first page. Null when the IOVA space is exhausted.
    /// </summary>
    public DmaMapping? Map(ulong physicalAddress, ulong size, DmaDirection direction = DmaDirection.Bidirectional)
    {
        if (size == 0) throw new ArgumentOutOfRangeException(nameof(size), "A DMA mapping needs at least one byte.");
        ulong offset = physicalAddress & (PageSize - 1);
        ulong pa = physicalAddress - offset;
        ulong length = (offset + size + PageSize - 1) & ~(PageSize - 1);
        if (Iova.Allocate(length) is not ulong iova) return null;
        var leaves = new List<DmaLeaf>();
        bool writable = direction != DmaDirection.ToDevice;
        ulong done = 0;
        while (done < length)
        {
            ulong leaf = PickPageSize(iova + done, pa + done, length - done);
            Domain.PageTable.Map(iova + done, pa + done, LevelOf(leaf), writable: writable, notGlobal: true);
            leaves.Add(new DmaLeaf(iova + done, pa + done, leaf));
            Count(leaf);
            done += leaf;
        }
        var mapping = new DmaMapping(iova + offset, physicalAddress, size, direction, leaves);
        _mappings[mapping.Iova] = mapping;
        Counters.Maps++;
        Counters.BytesMapped += (long)size;
        return mapping;
    }

    /// <summary>
    /// Maps a reserved region one to one (IOVA = physical address), as Linux's
    /// iommu_create_device_direct_mappings does for IOMMU_RESV_DIRECT regions such as IORT RMR ranges.
    /// False when the range is outside the IOVA space or already in use.
    /// </summary>
    public bool MapDirect(ulong physicalAddress, ulong size, DmaDirection direction = DmaDirection.Bidirectional)
    {
        ulong start = physicalAddress & ~(PageSize - 1);
        ulong length = ((physicalAddress + size + PageSize - 1) & ~(PageSize - 1)) - start;
        if (start < Iova.Start || start + length > Iova.End || !Iova.Reserve(start, length)) return false;
        var leaves = new List<DmaLeaf>();
        for (ulong done = 0; done < length;)
        {
            ulong leaf = PickPageSize(start + done, start + done, length - done);
            Domain.PageTable.Map(start + done, start + done, LevelOf(leaf), writable: direction != DmaDirection.ToDevice, notGlobal: true);
            leaves.Add(new DmaLeaf(start + done, start + done, leaf));
            Count(leaf);
            done += leaf;
        }
        _direct.Add(new DmaMapping(start, start, length, direction, leaves));
        return true;
    }

    /// <summary>The one-to-one mappings of reserved regions (never unmapped while the device lives).</summary>
    public IReadOnlyList<DmaMapping> DirectMappings => _direct;

    /// <summary>
    /// Removes a mapping (dma_unmap_single): clears its leaves, invalidates the TLB for each run of
    /// equal-sized leaves (the iotlb gather is flushed when the page size changes), ATC_INV for ATS,
    /// then frees the IOVA. False when an invalidation did not complete.
    /// </summary>
    public bool Unmap(DmaMapping mapping)
    {
        ArgumentNullException.ThrowIfNull(mapping);
        if (!_mappings.Remove(mapping.Iova)) throw new InvalidOperationException($"{Name}: IOVA 0x{mapping.Iova:X} is not mapped.");
        foreach (var leaf in mapping.Leaves) Domain.PageTable.Unmap(leaf.Iova, LevelOf(leaf.Size));
        bool ok = true;
        int i = 0;
        while (i < mapping.Leaves.Count)
        {
            int j = i;
            while (j + 1 < mapping.Leaves.Count && mapping.Leaves[j + 1].Size == mapping.Leaves[i].Size) j++;
            ulong start = mapping.Leaves[i].Iova;
            ulong end = mapping.Leaves[j].Iova + mapping.Leaves[j].Size;
            ok &= Smmu.InvalidateRange(Domain, start, end - start, mapping.Leaves[i].Size, leaf: true);
            Counters.Invalidations++;
            i = j + 1;
        }
        var first = mapping.Leaves[0];
        var last = mapping.Leaves[^1];
        Iova.Free(first.Iova, last.Iova + last.Size - first.Iova);
        Counters.Unmaps++;
        return ok;
    }

    /// <summary>
    /// Tears the device down (hot-unplug, driver unbind): its STE goes to abort, every mapping is
    /// removed, the domain's ASID is invalidated (TLBI_NH_ASID) and freed. The device must not be used after.
    /// </summary>
    public bool Detach()
    {
        Smmu.AttachAbort(Master);
        foreach (var m in _mappings.Values.Concat(_direct).ToList())
        {
            foreach (var leaf in m.Leaves) Domain.PageTable.Unmap(leaf.Iova, LevelOf(leaf.Size));
            _mappings.Remove(m.Iova);
        }
        _direct.Clear();
        return Smmu.FreeDomain(Domain);
    }

    /// <summary>Invalidates everything of the domain's ASID (iommu_flush_iotlb_all): TLBI_NH_ASID, then ATC_INV for ATS.</summary>
    public bool FlushAll()
    {
        Counters.Invalidations++;
        return Smmu.InvalidateAsid(Domain);
    }

    /// <summary>
    /// iommu_pgsize: the largest supported page size that both addresses are aligned to and that
    /// fits in what is left.
    /// </summary>
    public static ulong PickPageSize(ulong iova, ulong pa, ulong remaining)
    {
        ulong addrMerge = iova | pa;
        foreach (ulong size in PageSizes)
        {
            if (size <= remaining && (addrMerge & (size - 1)) == 0) return size;
        }
        throw new ArgumentException($"0x{iova:X} -> 0x{pa:X} (0x{remaining:X} bytes) is not 4 KiB aligned.");
    }

    /// <summary>Table level of a leaf of this size in a 4 KiB-granule table (3 = page, 2 = 2 MiB, 1 = 1 GiB).</summary>
    private static int LevelOf(ulong size) => PageLevel - (BitOperations.Log2(size) - BitOperations.Log2(PageSize)) / 9;

    private void Count(ulong leaf)
    {
        switch (leaf)
        {
            case 1UL << 30: Counters.Blocks1G++; break;
            case 1UL << 21: Counters.Blocks2M++; break;
            default: Counters.Pages4K++; break;
        }
    }
}

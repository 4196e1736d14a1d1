using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// A VMSAv8-64 stage-2 translation table with the 4 KiB granule, built in host memory by the
/// emulated kernel (the part io-pgtable-arm plays in Linux): IPA (the IOAS's IOVA) to host PA,
/// with 1 GiB / 2 MiB blocks where a mapping is aligned and large enough, page descriptors
/// elsewhere. The SMMU walks it through the S2TTB and VTCR fields of an STE
/// (<see cref="MakeSte"/>). Table pages come from the host allocator, are zeroed, and go back when
/// they empty; TLB invalidation is the caller's, who knows which VMIDs use the table.
/// </summary>
internal sealed class Stage2PageTable
{
    /// <summary>The granule: 4 KiB pages, 512 descriptors per table.</summary>
    public const Granule TableGranule = Granule.G4K;
    public const int PageShift = 12;
    public const ulong PageSize = 1UL << PageShift;
    private const int DescriptorSize = 8;
    /// <summary>Most concatenated start tables stage 2 allows (Arm ARM D8.2.x; Linux's ARM_LPAE_S2_MAX_CONCAT_PAGES).</summary>
    private const int MaxConcatenatedTables = 16;

    // Descriptor fields for stage 2 (Arm ARM D8.3).
    private const ulong DescValid = 1UL << 0;
    /// <summary>[1]: table (levels 0-2) or page (level 3); clear for a block.</summary>
    private const ulong DescTableOrPage = 1UL << 1;
    /// <summary>MemAttr [5:2] = 0b1111: Normal, outer and inner write-back cacheable.</summary>
    private const ulong MemAttrNormalWriteBack = 0xFUL << 2;
    /// <summary>S2AP [7:6]: bit 6 read, bit 7 write.</summary>
    private const ulong S2ApRead = 1UL << 6, S2ApWrite = 1UL << 7;
    /// <summary>SH [9:8] = 0b11: inner shareable.</summary>
    private const ulong ShInnerShareable = 3UL << 8;
    /// <summary>AF [10]: access flag set, so walks never fault on it.</summary>
    private const ulong AccessFlag = 1UL << 10;
    /// <summary>Output address [47:12] with the 4 KiB granule.</summary>
    private static readonly ulong OutputAddressMask = Bits.Mask(47, PageShift);

    // STE VTCR encodings (IHI 0070 5.2, STE.S2* fields; Linux ARM_LPAE_TCR_*).
    private const uint VtcrIrgnWriteBack = 1, VtcrOrgnWriteBack = 1, VtcrShInner = 3, VtcrTg4K = 0;

    private readonly HostMemoryAllocator _allocator;
    private readonly SparseMemory _memory;
    private readonly string _owner;
    // Live descriptors per (non-root) table page, so empty tables can be freed.
    private readonly Dictionary<ulong, int> _tables = new();

    /// <param name="allocator">Where table pages come from.</param>
    /// <param name="memory">Host physical memory.</param>
    /// <param name="inputBits">IPA size (64 - T0SZ), 25..48.</param>
    /// <param name="outputBits">Output address size (S2PS).</param>
    /// <param name="owner">A label for the allocator's diagnostics.</param>
    /// <returns>Null when the root table cannot be allocated.</returns>
    public static Stage2PageTable? TryCreate(HostMemoryAllocator allocator, SparseMemory memory, int inputBits, int outputBits, string owner)
    {
        int stride = GranuleGeometry.Stride(TableGranule);
        // The fewest levels that cover the input, then concatenate start tables (up to 16) to save a level.
        int start = GranuleGeometry.Stage1StartLevel(TableGranule, inputBits);
        int bitsAtStart = inputBits - GranuleGeometry.LevelShift(TableGranule, start);
        if (start < 2 && bitsAtStart <= Log2(MaxConcatenatedTables))
        {
            start++;
            bitsAtStart += stride;
        }
        int concatLog2 = Math.Max(0, bitsAtStart - stride);
        ulong rootBytes = PageSize << concatLog2;
        ulong? root = allocator.TryAllocate(rootBytes, rootBytes, owner);
        if (root is null) return null;
        return new Stage2PageTable(allocator, memory, owner, root.Value, inputBits, outputBits, start, concatLog2);
    }

    private Stage2PageTable(HostMemoryAllocator allocator, SparseMemory memory, string owner, ulong root, int inputBits,
        int outputBits, int startLevel, int concatLog2)
    {
        _allocator = allocator;
        _memory = memory;
        _owner = owner;
        RootAddress = root;
        InputBits = inputBits;
        OutputBits = outputBits;
        StartLevel = startLevel;
        ConcatLog2 = concatLog2;
    }

    /// <summary>Host PA of the start table(s): STE.S2TTB.</summary>
    public ulong RootAddress { get; }
    public int InputBits { get; }
    public int OutputBits { get; }
    public int StartLevel { get; }
    /// <summary>log2 of the concatenated start tables (0: one table).</summary>
    public int ConcatLog2 { get; }
    /// <summary>Table pages besides the root.</summary>
    public int TablePages => _tables.Count;
    /// <summary>Leaf descriptors written (pages and blocks), for diagnostics.</summary>
    public long LeafCount { get; private set; }
    public bool IsDestroyed { get; private set; }

    /// <summary>VTCR.T0SZ.</summary>
    public uint T0sz => (uint)(64 - InputBits);

    /// <summary>VTCR.SL0 for the 4 KiB granule: 0 starts at level 2, 1 at level 1, 2 at level 0.</summary>
    public uint Sl0 => (uint)(2 - StartLevel);

    /// <summary>
    /// A stage-2 STE for this table (Linux's arm_smmu_make_s2_domain_ste): Config = S2, the
    /// VMID, VTCR, S2TTB, AArch64 tables, record faults, protected table walks, and EATS = full
    /// ATS when <paramref name="ats"/>.
    /// </summary>
    public StreamTableEntry MakeSte(ushort vmid, bool ats) => StreamTableEntry.Create(
        SteConfig.Stage2,
        eats: ats ? ArmSmmuDevice.SteEatsTrans : 0,
        s2Vmid: vmid,
        s2T0sz: T0sz,
        s2Sl0: Sl0,
        s2Tg: VtcrTg4K,
        s2Ps: AddressSize.Encode(OutputBits),
        s2Ir0: VtcrIrgnWriteBack,
        s2Or0: VtcrOrgnWriteBack,
        s2Sh0: VtcrShInner,
        s2Ptw: true,
        s2R: true,
        s2Ttb: RootAddress);

    /// <summary>
    /// Maps <c>[ipa, ipa + length)</c> to <c>[pa, pa + length)</c>; both page aligned. Returns
    /// ENOMEM when a table page cannot be allocated (the part already mapped stays; the caller
    /// unmaps it), EINVAL when the range leaves the input or output size.
    /// </summary>
    public Errno Map(ulong ipa, ulong pa, ulong length, bool read, bool write)
    {
        ObjectDisposedException.ThrowIf(IsDestroyed, this);
        if (((ipa | pa | length) & (PageSize - 1)) != 0 || length == 0) return Errno.EINVAL;
        if (!Bits.FitsIn(ipa + length - 1, InputBits) || !Bits.FitsIn(pa + length - 1, OutputBits)) return Errno.EINVAL;
        ulong attrs = DescValid | MemAttrNormalWriteBack | ShInnerShareable | AccessFlag
            | (read ? S2ApRead : 0) | (write ? S2ApWrite : 0);
        return MapRange(RootAddress, StartLevel, ipa, pa, length, attrs, root: true);
    }

    /// <summary>
    /// Removes every translation in <c>[ipa, ipa + length)</c> and frees tables that empty.
    /// Returns the bytes unmapped. A block the range covers only in part stays mapped and counts
    /// nothing, as in io-pgtable-arm.c's __arm_lpae_unmap since Linux 6.13 ("iommu/io-pgtable-arm:
    /// Remove split on unmap behavior": it warns "Unmap of a partial large IOPTE is not allowed"
    /// and returns 0 instead of replacing the block with a table); see
    /// <see cref="PartialBlockUnmapsRefused"/>. iommufd never asks for that: it unmaps whole areas.
    /// </summary>
    public ulong Unmap(ulong ipa, ulong length)
    {
        ObjectDisposedException.ThrowIf(IsDestroyed, this);
        if (length == 0) return 0;
        return UnmapRange(RootAddress, StartLevel, ipa, ipa + length - 1, root: true);
    }

    /// <summary>Unmaps that covered part of a block and so left it in place (the kernel's WARN_ONCE).</summary>
    public long PartialBlockUnmapsRefused { get; private set; }

    /// <summary>The host PA <paramref name="ipa"/> maps to, or null (a software walk, for diagnostics).</summary>
    public ulong? Lookup(ulong ipa)
    {
        if (IsDestroyed || !Bits.FitsIn(ipa, InputBits)) return null;
        ulong table = RootAddress;
        for (int level = StartLevel; level <= 3; level++)
        {
            ulong desc = _memory.ReadUInt64(DescriptorAddress(table, level, ipa, level == StartLevel));
            if ((desc & DescValid) == 0) return null;
            int shift = GranuleGeometry.LevelShift(TableGranule, level);
            if (level < 3 && (desc & DescTableOrPage) != 0)
            {
                table = desc & OutputAddressMask;
                continue;
            }
            return (desc & OutputAddressMask & ~((1UL << shift) - 1)) | (ipa & ((1UL << shift) - 1));
        }
        return null;
    }

    /// <summary>Frees every table page (the domain is gone and no STE points here any more).</summary>
    public void Destroy()
    {
        if (IsDestroyed) return;
        IsDestroyed = true;
        foreach (ulong t in _tables.Keys) _allocator.Free(t);
        _tables.Clear();
        _allocator.Free(RootAddress);
    }

    private Errno MapRange(ulong table, int level, ulong ipa, ulong pa, ulong length, ulong attrs, bool root)
    {
        int shift = GranuleGeometry.LevelShift(TableGranule, level);
        ulong blockSize = 1UL << shift;
        while (length > 0)
        {
            ulong descAddress = DescriptorAddress(table, level, ipa, root);
            ulong desc = _memory.ReadUInt64(descAddress);
            ulong chunk = Math.Min(length, blockSize - (ipa & (blockSize - 1)));
            bool leafHere = level == 3
                || (GranuleGeometry.BlockAllowed(TableGranule, level, lpa: false) && chunk == blockSize && ((ipa | pa) & (blockSize - 1)) == 0);
            if (leafHere)
            {
                if ((desc & DescValid) != 0)
                    throw new InvalidOperationException($"Stage-2 table of {_owner}: IPA 0x{ipa:X} is already mapped (the IOAS must prevent overlaps).");
                ulong leaf = (pa & OutputAddressMask) | attrs | (level == 3 ? DescTableOrPage : 0);
                _memory.WriteUInt64(descAddress, leaf);
                CountEntry(table, root, +1);
                LeafCount++;
            }
            else
            {
                ulong next;
                if ((desc & DescValid) == 0)
                {
                    ulong? page = _allocator.TryAllocate(PageSize, PageSize, _owner);
                    if (page is null) return Errno.ENOMEM;
                    next = page.Value;
                    _tables.Add(next, 0);
                    _memory.WriteUInt64(descAddress, next | DescValid | DescTableOrPage);
                    CountEntry(table, root, +1);
                }
                else if ((desc & DescTableOrPage) == 0)
                {
                    throw new InvalidOperationException($"Stage-2 table of {_owner}: IPA 0x{ipa:X} lies in a block mapping (the IOAS must prevent overlaps).");
                }
                else
                {
                    next = desc & OutputAddressMask;
                }
                Errno e = MapRange(next, level + 1, ipa, pa, chunk, attrs, root: false);
                if (e != Errno.None) return e;
            }
            ipa += chunk;
            pa += chunk;
            length -= chunk;
        }
        return Errno.None;
    }

    private ulong UnmapRange(ulong table, int level, ulong first, ulong last, bool root)
    {
        int shift = GranuleGeometry.LevelShift(TableGranule, level);
        ulong blockSize = 1UL << shift;
        ulong ipa = first;
        ulong unmapped = 0;
        while (true)
        {
            ulong descAddress = DescriptorAddress(table, level, ipa, root);
            ulong desc = _memory.ReadUInt64(descAddress);
            ulong blockStart = ipa & ~(blockSize - 1);
            ulong blockLast = blockStart + blockSize - 1;
            ulong chunkLast = Math.Min(last, blockLast);
            if ((desc & DescValid) != 0)
            {
                bool isTable = level < 3 && (desc & DescTableOrPage) != 0;
                if (isTable)
                {
                    ulong next = desc & OutputAddressMask;
                    unmapped += UnmapRange(next, level + 1, ipa, chunkLast, root: false);
                    if (_tables[next] == 0)
                    {
                        _memory.WriteUInt64(descAddress, 0);
                        CountEntry(table, root, -1);
                        _tables.Remove(next);
                        _allocator.Free(next);
                    }
                }
                else if (ipa != blockStart || chunkLast != blockLast)
                {
                    PartialBlockUnmapsRefused++;
                }
                else
                {
                    _memory.WriteUInt64(descAddress, 0);
                    CountEntry(table, root, -1);
                    LeafCount--;
                    unmapped += blockSize;
                }
            }
            if (chunkLast == last) return unmapped;
            ipa = chunkLast + 1;
        }
    }

    private ulong DescriptorAddress(ulong table, int level, ulong ipa, bool root)
    {
        int shift = GranuleGeometry.LevelShift(TableGranule, level);
        int indexBits = root ? InputBits - shift : GranuleGeometry.Stride(TableGranule);
        ulong index = (ipa >> shift) & ((1UL << indexBits) - 1);
        return table + index * DescriptorSize;
    }

    private void CountEntry(ulong table, bool root, int delta)
    {
        if (!root) _tables[table] += delta;
    }

    private static int Log2(int value) => System.Numerics.BitOperations.Log2((uint)value);
}

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// A space of TLB tags the host driver hands out lowest free first from 1, as arm-smmu-v3.c does
/// for both: ASIDs of stage-1 paging domains (arm_smmu_asid_xa, xa_alloc with XA_LIMIT(1, max),
/// one space for every SMMU of the host) and VMIDs of stage-2 domains and vIOMMUs
/// (smmu->vmid_map, ida_alloc_range(1, max), one space per SMMU). Tag 0 stays unused.
/// </summary>
internal sealed class TagAllocator
{
    private readonly SortedSet<ushort> _used = new();

    /// <summary>Tags in use, ascending.</summary>
    public IReadOnlyCollection<ushort> InUse => _used;

    /// <summary>The lowest free tag in [1, <paramref name="max"/>], or null when all are taken (the allocator's -EBUSY / -ENOSPC).</summary>
    public ushort? Allocate(ushort max)
    {
        uint candidate = 1;
        foreach (ushort used in _used)
        {
            if (used < candidate) continue;
            if (used != candidate) break;
            candidate++;
        }
        if (candidate > max) return null;
        _used.Add((ushort)candidate);
        return (ushort)candidate;
    }

    /// <summary>Returns a tag (xa_erase / ida_free); the caller has flushed its TLB entries.</summary>
    public void Free(ushort tag) => _used.Remove(tag);
}

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The ASIDs of the host's stage-1 paging domains (arm_smmu_asid_xa in arm-smmu-v3.c): one
/// space for every SMMU of the host, lowest free first from 1 (xa_alloc with XA_LIMIT(1, ...)),
/// bounded by the allocating SMMU's ASID size. ASID 0 stays unused.
/// </summary>
internal sealed class AsidAllocator
{
    private readonly SortedSet<ushort> _used = new();

    /// <summary>ASIDs in use, ascending.</summary>
    public IReadOnlyCollection<ushort> InUse => _used;

    /// <summary>The lowest free ASID in [1, 2^<paramref name="asidBits"/> - 1], or null when all are taken (xa_alloc's -EBUSY).</summary>
    public ushort? Allocate(int asidBits)
    {
        uint max = (1u << asidBits) - 1;
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

    /// <summary>Returns an ASID (xa_erase); its TLB entries were flushed when its last master left.</summary>
    public void Free(ushort asid) => _used.Remove(asid);
}

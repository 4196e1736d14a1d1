namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// A vIOMMU's driver operations (Linux's iommufd_viommu_ops). The iommufd core checks the
/// generic arguments and calls these; an operation a driver does not have gives EOPNOTSUPP in
/// the core (its Has* property is false). <see cref="ArmVsmmu"/> implements the SMMUv3 ones;
/// implementations beside an SMMU (Tegra241 CMDQV) and the selftest type extend it.
/// </summary>
internal abstract class ViommuDriver
{
    /// <summary>The iommufd vIOMMU object this driver serves.</summary>
    public ViommuObject Core { get; set; } = null!;

    /// <summary>alloc_domain_nested exists.</summary>
    public virtual bool HasAllocDomainNested => false;

    /// <summary>alloc_domain_nested: a nested domain from driver data (flags without FAULT_ID_VALID).</summary>
    public virtual Errno AllocDomainNested(uint flags, in UserData data, out NestedDomain? domain)
    {
        domain = null;
        return Errno.EOPNOTSUPP;
    }

    /// <summary>cache_invalidate exists.</summary>
    public virtual bool HasCacheInvalidate => false;

    /// <summary>cache_invalidate: runs the entries in order; <paramref name="handled"/> is how many were handled.</summary>
    public virtual Errno CacheInvalidate(in UserDataArray array, out uint handled)
    {
        handled = 0;
        return Errno.EOPNOTSUPP;
    }

    /// <summary>get_hw_queue_size: non-zero when the driver supports HW queues of <paramref name="type"/>.</summary>
    public virtual ulong GetHwQueueSize(uint type) => 0;

    /// <summary>hw_queue_init_phys: programs a queue whose memory starts at host PA <paramref name="basePhysicalAddress"/>.</summary>
    public virtual Errno HwQueueInitPhys(HwQueueObject queue, uint index, ulong basePhysicalAddress) => Errno.EOPNOTSUPP;

    /// <summary>The queue is going away (undo <see cref="HwQueueInitPhys"/>).</summary>
    public virtual void HwQueueDestroy(HwQueueObject queue) { }

    /// <summary>vdevice_init: driver work for a new vDEVICE (a CMDQV SID slot, say).</summary>
    public virtual Errno VdeviceInit(VdeviceObject vdevice) => Errno.None;

    /// <summary>The vDEVICE is going away.</summary>
    public virtual void VdeviceDestroy(VdeviceObject vdevice) { }

    /// <summary>The vIOMMU is going away: release what the driver holds (its VMID, say).</summary>
    public virtual void Destroy() { }
}

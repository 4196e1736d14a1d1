using System.Globalization;

namespace NestedSmmu.Iommufd;

// Object ids of one iommufd context. The kernel hands them out from one space starting at 1
// (0 is IOMMUFD_INVALID_ID), so any id converts to ObjectId for calls that accept several
// kinds (DESTROY, HWPT_ALLOC's pt_id, attach, invalidate). Typed ids keep a HWPT id from being
// passed where a vIOMMU id is meant; tests that need a wrong kind build one explicitly.

/// <summary>Any iommufd object id; 0 (<see cref="Invalid"/>) names nothing.</summary>
public readonly record struct ObjectId(uint Value)
{
    /// <summary>IOMMUFD_INVALID_ID.</summary>
    public static readonly ObjectId Invalid = default;

    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>An IO address space (IOMMU_IOAS_ALLOC).</summary>
public readonly record struct IoasId(uint Value)
{
    public static implicit operator ObjectId(IoasId id) => new(id.Value);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A hardware page table, paging or nested (IOMMU_HWPT_ALLOC).</summary>
public readonly record struct HwptId(uint Value)
{
    public static implicit operator ObjectId(HwptId id) => new(id.Value);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A device bound to the iommufd (the <c>dev_id</c> of VFIO_DEVICE_BIND_IOMMUFD).</summary>
public readonly record struct DeviceId(uint Value)
{
    public static implicit operator ObjectId(DeviceId id) => new(id.Value);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A vIOMMU (IOMMU_VIOMMU_ALLOC).</summary>
public readonly record struct ViommuId(uint Value)
{
    public static implicit operator ObjectId(ViommuId id) => new(id.Value);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A vDEVICE: a device's virtual id in a vIOMMU (IOMMU_VDEVICE_ALLOC).</summary>
public readonly record struct VdeviceId(uint Value)
{
    public static implicit operator ObjectId(VdeviceId id) => new(id.Value);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A vEVENTQ (IOMMU_VEVENTQ_ALLOC).</summary>
public readonly record struct VeventqId(uint Value)
{
    public static implicit operator ObjectId(VeventqId id) => new(id.Value);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A hardware queue such as a Tegra241 VCMDQ (IOMMU_HW_QUEUE_ALLOC).</summary>
public readonly record struct HwQueueId(uint Value)
{
    public static implicit operator ObjectId(HwQueueId id) => new(id.Value);
    public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
}

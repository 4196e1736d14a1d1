using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The hook for hardware that sits beside a physical SMMU and extends what its vIOMMUs can do
/// (Linux's arm_smmu_impl_ops; today: the Tegra241 CMDQV). The host driver consults it for
/// whatever the SMMUv3 driver itself does not answer:
/// <list type="bullet">
/// <item><see cref="GetHwInfo"/>: IOMMU_GET_HW_INFO of a type other than DEFAULT/ARM_SMMUV3.</item>
/// <item><see cref="SupportsViommuType"/>: get_viommu_size for a type other than ARM_SMMUV3
/// (false: EOPNOTSUPP).</item>
/// <item><see cref="InitViommu"/>: vsmmu_init for such a type, returning the vIOMMU's driver (an
/// <see cref="ArmVsmmu"/> subclass that adds HW queues, vDEVICE slots, mmap regions and the
/// extra vEVENT type).</item>
/// </list>
/// One instance serves one SMMU; <see cref="EmulatedHost"/> creates it from the profile
/// (<see cref="SmmuProfile.Cmdqv"/>) and assigns it to the driver.
/// </summary>
internal abstract class SmmuImplementation(ArmSmmuDevice smmu)
{
    public ArmSmmuDevice Smmu { get; } = smmu;

    /// <summary>Driver data for <paramref name="type"/>, or EOPNOTSUPP.</summary>
    public virtual Errno GetHwInfo(HwInfoType type, out byte[] data)
    {
        data = [];
        return Errno.EOPNOTSUPP;
    }

    /// <summary>Whether vIOMMUs of <paramref name="type"/> can be made here.</summary>
    public virtual bool SupportsViommuType(uint type) => false;

    /// <summary>
    /// Creates the vIOMMU driver for <paramref name="type"/> on the nest parent
    /// <paramref name="parent"/>. The core fills <see cref="ViommuDriver.Core"/> afterwards and
    /// then calls <see cref="InitViommuData"/> with the user's driver data.
    /// </summary>
    public virtual Errno InitViommu(uint type, PagingDomain parent, out ArmVsmmu? driver)
    {
        driver = null;
        return Errno.EOPNOTSUPP;
    }

    /// <summary>Second half of vsmmu_init, once the object exists: reads and answers the driver data.</summary>
    public virtual Errno InitViommuData(ArmVsmmu driver, in UserData? data) => Errno.None;
}

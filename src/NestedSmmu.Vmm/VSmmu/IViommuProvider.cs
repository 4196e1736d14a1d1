using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Vmm.VSmmu;

/// <summary>
/// How an accelerated vSMMU gets its vIOMMU: plain ARM_SMMUV3 by default; a Tegra241 CMDQV
/// vSMMU passes a provider that allocates TEGRA241_CMDQV and builds the guest-visible CMDQV from
/// the <see cref="ViommuAllocation"/> (QEMU's tegra241_cmdqv_alloc_viommu hook).
/// </summary>
public interface IViommuProvider
{
    /// <summary>IOMMU_VIOMMU_ALLOC for <paramref name="device"/> on <paramref name="nestParent"/>.</summary>
    ViommuAllocation Allocate(IIommufd iommufd, DeviceId device, HwptId nestParent);

    /// <summary>
    /// Called before the vSMMU destroys the vIOMMU (its last device left, or the vSMMU is disposed):
    /// release whatever keeps it busy (mmaps of the VINTF page, HW queues).
    /// </summary>
    void Releasing(IIommufd iommufd, ViommuAllocation viommu);
}

/// <summary>The default provider: an IOMMU_VIOMMU_TYPE_ARM_SMMUV3 vIOMMU with no driver data.</summary>
public sealed class ArmSmmuV3ViommuProvider : IViommuProvider
{
    /// <summary>The one instance.</summary>
    public static ArmSmmuV3ViommuProvider Instance { get; } = new();

    private ArmSmmuV3ViommuProvider() { }

    /// <inheritdoc/>
    public ViommuAllocation Allocate(IIommufd iommufd, DeviceId device, HwptId nestParent) =>
        iommufd.AllocViommu(device, nestParent, ViommuType.ArmSmmuV3);

    /// <inheritdoc/>
    public void Releasing(IIommufd iommufd, ViommuAllocation viommu) { }
}

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

/// <summary>
/// The provider of a vSMMU with <c>cmdqv=on</c>: an IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV vIOMMU, which
/// also takes a VINTF on the host CMDQV and says where its page can be mmap'ed
/// (<see cref="ViommuAllocation.AsTegra241Cmdqv"/>). The guest-visible CMDQV is built from that
/// allocation by whoever listens to <see cref="AcceleratedVSmmu.ViommuCreated"/>.
/// </summary>
public sealed class Tegra241CmdqvViommuProvider : IViommuProvider
{
    /// <summary>The one instance.</summary>
    public static Tegra241CmdqvViommuProvider Instance { get; } = new();

    private Tegra241CmdqvViommuProvider() { }

    /// <inheritdoc/>
    /// <exception cref="IommufdException">EOPNOTSUPP without a CMDQV beside the device's SMMU; ENOSPC no free VINTF.</exception>
    public ViommuAllocation Allocate(IIommufd iommufd, DeviceId device, HwptId nestParent) =>
        iommufd.AllocTegra241CmdqvViommu(device, nestParent).Viommu;

    /// <inheritdoc/>
    public void Releasing(IIommufd iommufd, ViommuAllocation viommu) { }
}

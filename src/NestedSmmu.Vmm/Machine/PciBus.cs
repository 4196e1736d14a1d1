using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Machine;

/// <summary>What kind of PCI bus a <see cref="PciBus"/> is.</summary>
public enum PciBusKind
{
    /// <summary>pcie.0, the root bus of the virt board's GPEX host bridge.</summary>
    Root,
    /// <summary>The root bus of a pxb-pcie expander bridge (a root bus of its own, numbered by bus_nr).</summary>
    Expander,
    /// <summary>The secondary bus of a bridge (pcie-root-port, pci-bridge, ...), named by the bridge's id.</summary>
    Secondary,
}

/// <summary>One PCI bus of the machine.</summary>
/// <param name="Name">The bus id: <c>pcie.0</c>, a pxb-pcie's id, or a bridge's id.</param>
/// <param name="Kind">Root, expander or secondary.</param>
/// <param name="Owner">The device that provides it (pxb-pcie or the bridge), null for pcie.0.</param>
/// <param name="ParentBus">The bus its owner sits on, null for pcie.0.</param>
/// <param name="RootBus">The root bus above it (itself for pcie.0 and expander buses).</param>
public sealed record PciBus(string Name, PciBusKind Kind, DeviceSpec? Owner, string? ParentBus, string RootBus)
{
    /// <summary>The virt board's default PCIe root bus.</summary>
    public const string DefaultRootName = "pcie.0";

    /// <summary>True for pcie.0 and pxb-pcie buses: the buses a vSMMU can be attached to.</summary>
    public bool IsRootBus => Kind is PciBusKind.Root or PciBusKind.Expander;
}

/// <summary>One PCI function placed on a bus.</summary>
/// <param name="Device">The -device it is.</param>
/// <param name="Bus">The bus it sits on.</param>
/// <param name="Devfn">Its slot and function there.</param>
/// <param name="SecondaryBus">The bus it provides (pxb-pcie and bridges), or null.</param>
public sealed record PciFunction(DeviceSpec Device, string Bus, PciDevfn Devfn, string? SecondaryBus)
{
    /// <summary>True for a bridge whose secondary bus takes a bus number from the firmware (not pxb-pcie, whose bus is a root bus).</summary>
    public bool IsBridge => SecondaryBus is not null && Device is not PxbPcieDevice;
}

/// <summary>Who translates a root bus's DMA.</summary>
/// <param name="Name">The vSMMU's id (or driver name), or <c>iommu=smmuv3</c> for the legacy machine-wide SMMU.</param>
/// <param name="Device">The -device arm-smmuv3, or null for the legacy SMMU.</param>
public sealed record PciIommuOwner(string Name, ArmSmmuV3Device? Device)
{
    /// <summary>How the legacy machine-wide SMMU is named.</summary>
    public const string LegacyName = "iommu=smmuv3";

    /// <summary>True for the machine-wide <c>iommu=smmuv3</c>.</summary>
    public bool IsLegacy => Device is null;
}

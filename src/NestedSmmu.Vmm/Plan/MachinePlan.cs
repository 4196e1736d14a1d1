using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Plan;

/// <summary>
/// A planned machine: the <see cref="MachineSpec"/> (what validation accepted), and the same
/// topology as plain records, one <see cref="PlannedVsmmu"/> per physical SMMU in use, for the
/// output formats (QEMU arguments, libvirt XML, JSON) and for people.
/// </summary>
/// <param name="Host">The host planned for (its description).</param>
/// <param name="Spec">The machine, parsed back from the planned QEMU arguments and accepted by <see cref="MachineValidator"/>.</param>
/// <param name="Vsmmus">One per physical SMMU in use, in bus-number order.</param>
/// <param name="GuestNumaNodes">The guest NUMA nodes declared (0 when no device reported one).</param>
/// <param name="Notes">Functions left out when all were asked for, each with why.</param>
public sealed record MachinePlan(string Host, MachineSpec Spec, IReadOnlyList<PlannedVsmmu> Vsmmus, int GuestNumaNodes, IReadOnlyList<string> Notes)
{
    /// <summary>The QEMU arguments (without the program word), pasteable after <c>qemu-system-aarch64</c>.</summary>
    public IReadOnlyList<string> QemuArguments => QemuCommandLine.Format(Spec);
}

/// <summary>One physical SMMU's share of the machine: its pxb-pcie, its vSMMU and its devices.</summary>
/// <param name="PhysicalSmmu">The host SMMU's name.</param>
/// <param name="PxbId">The pxb-pcie's id (its root bus's name).</param>
/// <param name="BusNr">The pxb-pcie's root bus number.</param>
/// <param name="LastBus">The highest bus number its hierarchy takes (one per root port).</param>
/// <param name="NumaNode">The pxb-pcie's NUMA node (its devices' host node), or null.</param>
/// <param name="VsmmuId">The arm-smmuv3's id.</param>
/// <param name="Cmdqv">The arm-smmuv3's cmdqv property.</param>
/// <param name="HasCmdqv">Whether the physical SMMU has a usable Tegra241 CMDQV.</param>
/// <param name="Devices">The devices, one root port each.</param>
public sealed record PlannedVsmmu(string PhysicalSmmu, string PxbId, byte BusNr, byte LastBus, int? NumaNode, string VsmmuId,
    OnOffAuto Cmdqv, bool HasCmdqv, IReadOnlyList<PlannedDevice> Devices);

/// <summary>One passed-through function and its root port.</summary>
/// <param name="HostAddress">The host PCI address.</param>
/// <param name="Id">The vfio-pci's id.</param>
/// <param name="RootPortId">The pcie-root-port's id.</param>
/// <param name="Chassis">The root port's chassis number (unique in the machine).</param>
/// <param name="Slot">The root port's slot on the pxb-pcie's root bus (where QEMU places it: the first free).</param>
/// <param name="Bus">The root port's secondary bus number (where the device sits after firmware enumeration).</param>
/// <param name="IommuGroup">Its host IOMMU group.</param>
/// <param name="NumaNode">Its host NUMA node, or null.</param>
/// <param name="AtsCapability">Whether its config space has ATS, or null when not readable.</param>
public sealed record PlannedDevice(string HostAddress, string Id, string RootPortId, byte Chassis, byte Slot, byte Bus, string IommuGroup,
    int? NumaNode, bool? AtsCapability);

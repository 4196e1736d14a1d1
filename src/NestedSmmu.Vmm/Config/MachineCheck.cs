using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// The verdict on a <see cref="MachineSpec"/> (<see cref="MachineValidator"/>): accepted or
/// QEMU's first error, the warnings QEMU prints, and for what was built before the verdict the
/// vSMMUs with their resolved properties and every PCI device with its place and StreamID.
/// </summary>
/// <param name="Spec">The spec checked.</param>
/// <param name="Topology">Its PCI tree, or null when placing a device already failed.</param>
/// <param name="Vsmmus">Each -device arm-smmuv3 that was checked, in creation order.</param>
/// <param name="Devices">Each PCI function placed, in creation order.</param>
/// <param name="Warnings">QEMU's warnings, each as QEMU prints it (option quoted, "warning: ...").</param>
/// <param name="Error">The refusal, or null when accepted.</param>
public sealed record MachineCheck(
    MachineSpec Spec,
    PciTopology? Topology,
    IReadOnlyList<VsmmuCheck> Vsmmus,
    IReadOnlyList<DeviceCheck> Devices,
    IReadOnlyList<string> Warnings,
    QemuConfigException? Error)
{
    /// <summary>True when QEMU 11.1 would accept the line (and the host can back it).</summary>
    public bool Accepted => Error is null;
}

/// <summary>One vSMMU after checking.</summary>
/// <param name="Name">Its id (or driver name), or <c>iommu=smmuv3</c> for the legacy machine-wide SMMU.</param>
/// <param name="Device">The -device arm-smmuv3, or null for the legacy SMMU.</param>
/// <param name="RootBus">Its primary bus (pcie.0 for the legacy SMMU, which also covers every non-bypass pxb-pcie bus).</param>
/// <param name="BusRange">The bus numbers (firmware-enumerated view) of its primary bus's hierarchy.</param>
/// <param name="Resolved">Its properties with auto resolved; null while an accel vSMMU has no device (nothing to resolve from).</param>
public sealed record VsmmuCheck(string Name, ArmSmmuV3Device? Device, string RootBus, PciBusRange BusRange, ResolvedSmmuProperties? Resolved)
{
    /// <summary>accel=on.</summary>
    public bool Accel => Device?.Accel ?? false;
}

/// <summary>One PCI function after checking.</summary>
/// <param name="Name">Its id (or driver name).</param>
/// <param name="Device">The -device.</param>
/// <param name="Bus">The bus it sits on.</param>
/// <param name="Devfn">Its slot and function.</param>
/// <param name="StreamId">Its requester ID in the firmware-enumerated view: the StreamID its vSMMU sees.</param>
/// <param name="Vsmmu">The vSMMU translating it, or null.</param>
/// <param name="HostAddress">vfio devices: the host function.</param>
/// <param name="PhysicalSmmu">vfio devices: the host SMMU serving it.</param>
/// <param name="AtsExposed">vfio devices: whether its ATS capability is shown to the guest.</param>
public sealed record DeviceCheck(string Name, DeviceSpec Device, string Bus, PciDevfn Devfn, ushort StreamId, string? Vsmmu,
    string? HostAddress, string? PhysicalSmmu, bool? AtsExposed);

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// The checks that go past QEMU (which fails late in a kernel ioctl, or not at all), as pure
/// functions returning the message (or null when the rule holds): each names the device, its
/// physical SMMU and the vSMMU's. Validation runs them over the command line's cold-plugged
/// devices; the vSMMU can run them again for a hot-plugged one.
/// </summary>
public static class VsmmuBindingRules
{
    /// <summary>A device must have an IOMMU on the host to be nested by an accel vSMMU.</summary>
    public static string? HasIommu(string device, HostDeviceInfo host, string vsmmu, string hostDescription) =>
        host.PhysicalSmmu is null
            ? $"{device} (host {host.Address}) has no IOMMU on {hostDescription}, so vSMMU {vsmmu} (accel=on) cannot nest it"
            : null;

    /// <summary>
    /// One vSMMU nests the devices of one physical SMMU: its vIOMMU lives on the physical SMMU of
    /// the device that created it (seed 003's 1:1 pSMMU-vSMMU matching).
    /// </summary>
    /// <param name="device">The device being attached and its host function.</param>
    /// <param name="host">Its host function.</param>
    /// <param name="vsmmu">The vSMMU's name.</param>
    /// <param name="boundBy">The device that bound the vSMMU and its host function.</param>
    /// <param name="boundHost">That device's host function (its PhysicalSmmu is the vSMMU's).</param>
    public static string? SamePhysicalSmmu(string device, HostDeviceInfo host, string vsmmu, string boundBy, HostDeviceInfo boundHost) =>
        host.PhysicalSmmu == boundHost.PhysicalSmmu
            ? null
            : $"{device} (host {host.Address}) is behind physical SMMU {host.PhysicalSmmu}, but vSMMU {vsmmu} is bound to physical SMMU " +
              $"{boundHost.PhysicalSmmu} (by {boundBy}, host {boundHost.Address}): one vSMMU nests devices of one physical SMMU only";

    /// <summary>The functions of one IOMMU group share one DMA context, so they cannot sit behind two vSMMUs.</summary>
    /// <param name="device">The device being attached.</param>
    /// <param name="host">Its host function.</param>
    /// <param name="vsmmu">The vSMMU it sits behind.</param>
    /// <param name="groupMate">A device of the same group already attached, or null.</param>
    /// <param name="groupMateVsmmu">The vSMMU that one sits behind.</param>
    public static string? GroupNotSplit(string device, HostDeviceInfo host, string vsmmu, string? groupMate, string? groupMateVsmmu) =>
        groupMate is null || groupMateVsmmu == vsmmu
            ? null
            : $"{device} (host {host.Address}, physical SMMU {host.PhysicalSmmu}) shares IOMMU group {host.IommuGroup} with {groupMate} " +
              $"behind vSMMU {groupMateVsmmu}, but sits behind vSMMU {vsmmu}: a group's devices must share one vSMMU";

    /// <summary>cmdqv=on needs a Tegra241 CMDQV beside the physical SMMU (QEMU's "CMDQV requested but not supported", with names).</summary>
    public static string? CmdqvAvailable(ArmSmmuV3Device smmu, string device, HostDeviceInfo host, HostSmmuInfo physical)
    {
        if (smmu.Cmdqv != OnOffAuto.On) return null;
        if (physical.Cmdqv is not { } c)
            return $"CMDQV requested but not supported: vSMMU {smmu.Name} (cmdqv=on) is bound by {device} (host {host.Address}) " +
                   $"to physical SMMU {physical.Name}, which has no Tegra241 CMDQV";
        return SmmuResolution.CmdqvProblem(c);
    }
}

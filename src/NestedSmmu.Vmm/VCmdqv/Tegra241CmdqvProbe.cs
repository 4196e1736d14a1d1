using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Vmm.VCmdqv;

/// <summary>The outcome of probing a device's host CMDQV.</summary>
/// <param name="Info">The host's TEGRA241_CMDQV hw_info, when the kernel gave one.</param>
/// <param name="Error">Why the host CMDQV cannot back the guest's (QEMU's message), or null when it can.</param>
public sealed record CmdqvProbeResult(Tegra241CmdqvHwInfo? Info, string? Error)
{
    /// <summary>The host CMDQV can serve the guest's one VINTF with two VCMDQs and sixteen SIDs.</summary>
    public bool Supported => Error is null;
}

/// <summary>
/// QEMU's tegra241_cmdqv_probe: IOMMU_GET_HW_INFO of type TEGRA241_CMDQV for the first device,
/// checked against what the guest is shown (version 1, at least 2 VCMDQs and 16 SIDs per VINTF).
/// What to do with a failure (cmdqv=auto: no CMDQV; cmdqv=on: "CMDQV requested but not
/// supported") is the vSMMU's decision.
/// </summary>
public static class Tegra241CmdqvProbe
{
    /// <summary>QEMU's check of a hw_info answer; null when it is good.</summary>
    public static string? Validate(HwInfoType type, Tegra241CmdqvHwInfo info)
    {
        if (type != HwInfoType.Tegra241Cmdqv)
            return $"Host CMDQV: unexpected data type {(uint)type} (expected {(uint)HwInfoType.Tegra241Cmdqv})";
        if (info.Version != GuestCmdqvLayout.Version)
            return $"Host CMDQV: unsupported version {info.Version} (expected {GuestCmdqvLayout.Version})";
        if (info.Log2Vcmdqs < GuestCmdqvLayout.NumVcmdqLog2)
            return $"Host CMDQV: insufficient vCMDQs log2={info.Log2Vcmdqs} (need >= {GuestCmdqvLayout.NumVcmdqLog2})";
        if (info.Log2Vsids < GuestCmdqvLayout.NumSidPerViLog2)
            return $"Host CMDQV: insufficient SIDs log2={info.Log2Vsids} (need >= {GuestCmdqvLayout.NumSidPerViLog2})";
        return null;
    }

    /// <summary>Asks the kernel about <paramref name="device"/>'s CMDQV and validates the answer.</summary>
    /// <param name="iommufd">The VM's iommufd.</param>
    /// <param name="device">A bound device behind the physical SMMU.</param>
    /// <returns>The answer; a kernel refusal (no CMDQV: EOPNOTSUPP) is an unsupported result carrying the errno's message.</returns>
    public static CmdqvProbeResult Probe(IIommufd iommufd, DeviceId device)
    {
        ArgumentNullException.ThrowIfNull(iommufd);
        HwInfo info;
        try
        {
            info = iommufd.GetHwInfo(device, HwInfoType.Tegra241Cmdqv);
        }
        catch (IommufdException e)
        {
            return new CmdqvProbeResult(null, e.Message);
        }
        if (info.Type != HwInfoType.Tegra241Cmdqv) return new CmdqvProbeResult(null, Validate(info.Type, default));
        Tegra241CmdqvHwInfo cmdqv = info.AsTegra241Cmdqv();
        return new CmdqvProbeResult(cmdqv, Validate(info.Type, cmdqv));
    }
}

using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Cli;

/// <summary>
/// The read-only host view of an emulated host, straight from its profile (no kernel, nothing
/// bound): what GET_HW_INFO would report for each SMMU (its ID registers, as arm_smmu_hw_info
/// copies them) and its CMDQV (PARAM's version, VCMDQs and SIDs per VINTF), and per device
/// the SMMU behind it, IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED and its PASID width. Each function is
/// its own IOMMU group (the profile models functions behind ACS).
/// </summary>
public static class ProfileHostView
{
    /// <summary>Builds the view of <paramref name="profile"/>.</summary>
    public static HostView From(HostProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        var smmus = profile.Smmus.Select(s => new HostSmmuInfo(s.Name, HwInfoType.ArmSmmuV3,
            new ArmSmmuV3HwInfo(HwInfoArmSmmuV3Flags.None, s.Features.Idr0, s.Features.Idr1, s.Features.Idr2, s.Features.Idr3,
                s.Features.Idr4, s.Features.Idr5, s.Features.Iidr, s.Features.Aidr),
            s.Cmdqv is { } c
                ? new Tegra241CmdqvHwInfo(0, (byte)c.Version, (byte)(c.NumVcmdqLog2 - c.NumVintfLog2), (byte)c.NumSidPerVmLog2)
                : null)).ToList();
        var devices = profile.Devices.Select(d =>
        {
            SmmuProfile smmu = profile.FindSmmu(d.Smmu)!;
            string address = d.Address.ToString();
            return new HostDeviceInfo(address, d.Smmu, address, !d.AtsCapable,
                (byte)Math.Max(0, Math.Min(d.PasidBits, smmu.Features.SsidBits)), null);
        }).ToList();
        return new HostView($"emulated host '{profile.Name}'", smmus, devices);
    }
}

using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>A master attached to a nested domain that has a vSID: events go to its vIOMMU (arm_smmu_vmaster).</summary>
internal sealed record Vmaster(ArmVsmmu Vsmmu, uint Vsid);

/// <summary>
/// One device behind an SMMU, as the host driver tracks it (arm_smmu_master): which domain its
/// STE points at, whether ATS is on, and the vmaster for event forwarding.
/// </summary>
internal sealed class ArmSmmuMaster(ArmSmmuDevice smmu, HostPciDevice device)
{
    /// <summary>STE word 1 bit 19 MEV: merge events, set on nested STEs to blunt event floods (arm_smmu_make_nested_domain_ste, arm-smmu-v3-iommufd.c).</summary>
    private const int SteMevBit = 19;
    /// <summary>STE word 0 [3:1] Config.</summary>
    private static readonly ulong SteConfigMask = Bits.Mask(3, 1);

    public ArmSmmuDevice Smmu { get; } = smmu;
    public HostPciDevice Device { get; } = device;
    public uint Sid => Device.Profile.StreamId;

    /// <summary>The domain the STE points at; null when DMA is blocked (abort STE).</summary>
    public IommuDomain? Domain { get; private set; }

    public Vmaster? Vmaster { get; private set; }

    /// <summary>PCIe ATS Control.Enable of the endpoint, which the host driver owns.</summary>
    public bool AtsEnabled => Device.Endpoint.AtsEnabled;

    /// <summary>ATS may be used: the device has the capability and the SMMU supports ATS.</summary>
    public bool AtsSupported => Device.Profile.AtsCapable && Smmu.Features.Ats;

    /// <summary>Blocks DMA: the abort STE, ATS off.</summary>
    public void AttachBlocked()
    {
        Install(ArmSmmuDevice.AbortSte, ats: false);
        SetDomain(null, null);
    }

    /// <summary>Points the STE at a paging domain's stage-2 table with the domain's VMID on this SMMU.</summary>
    /// <returns>EINVAL when the domain belongs to another SMMU (arm_smmu_attach_dev); ENOSPC when VMIDs ran out.</returns>
    public Errno AttachPaging(PagingDomain domain)
    {
        if (!domain.IsCompatible(Smmu)) return Errno.EINVAL;
        if (domain.VmidOn(Smmu) is not { } vmid) return Errno.ENOSPC;
        bool ats = AtsSupported;
        Install(domain.Table.MakeSte(vmid, ats), ats);
        SetDomain(domain, null);
        return Errno.None;
    }

    /// <summary>
    /// arm_smmu_attach_dev_nested: EINVAL when the vIOMMU is on another SMMU, ENOENT when the vSTE
    /// translates (Config = S1) but the device has no vDEVICE in the vIOMMU. Builds the physical
    /// STE (<see cref="MakeNestedSte"/>) and records the vmaster when there is a vSID.
    /// </summary>
    public Errno AttachNested(NestedDomain domain)
    {
        ArmVsmmu vsmmu = domain.Vsmmu;
        if (vsmmu.Smmu != Smmu) return Errno.EINVAL;
        uint? vsid = vsmmu.VsidOf(Device);
        if (vsid is null && domain.Config is not (SteConfig.Abort or SteConfig.Bypass)) return Errno.ENOENT;
        bool ats = domain.EnableAts && AtsSupported;
        Install(MakeNestedSte(domain, ats), ats);
        SetDomain(domain, vsid is { } v ? new Vmaster(vsmmu, v) : null);
        return Errno.None;
    }

    /// <summary>
    /// arm_smmu_make_nested_domain_ste (arm-smmu-v3-iommufd.c): S1 translate starts from the parent's S2 STE
    /// (the vIOMMU's VMID, VTCR, S2TTB, EATS from the ATS state), then word 0 = V | Config nested |
    /// the vSTE's word 0 without Config, word 1 |= the vSTE's word 1 | MEV. Bypass is the plain
    /// S2 STE; abort or an invalid vSTE is the abort STE.
    /// </summary>
    public static StreamTableEntry MakeNestedSte(NestedDomain domain, bool ats)
    {
        ArmVsmmu vsmmu = domain.Vsmmu;
        switch (domain.Config)
        {
            case SteConfig.Stage1:
            {
                StreamTableEntry s2 = vsmmu.S2Parent.Table.MakeSte(vsmmu.Vmid, ats);
                ulong w0 = 1UL | ((ulong)SteConfig.Nested << 1) | (domain.Ste0 & ~SteConfigMask);
                ulong w1 = s2.W1 | domain.Ste1 | (1UL << SteMevBit);
                return s2 with { W0 = w0, W1 = w1 };
            }
            case SteConfig.Bypass:
                return vsmmu.S2Parent.Table.MakeSte(vsmmu.Vmid, ats);
            default:
                return ArmSmmuDevice.AbortSte;
        }
    }

    /// <summary>Re-installs the STE for the current domain (after the domain's view of the device changed).</summary>
    private void Install(in StreamTableEntry ste, bool ats)
    {
        // ATS off before the STE stops allowing it; on after the STE allows it (arm_smmu_attach_commit).
        if (!ats && AtsEnabled)
        {
            Device.Endpoint.AtsEnabled = false;
            Smmu.InstallSte(Sid, ste);
            Smmu.InvalidateAtc(Sid);
            return;
        }
        Smmu.InstallSte(Sid, ste);
        if (ats && !AtsEnabled)
        {
            Smmu.InvalidateAtc(Sid);
            Device.Endpoint.AtsEnabled = true;
        }
    }

    private void SetDomain(IommuDomain? domain, Vmaster? vmaster)
    {
        Domain?.Masters.Remove(this);
        Domain = domain;
        domain?.Masters.Add(this);
        Vmaster = vmaster;
    }
}

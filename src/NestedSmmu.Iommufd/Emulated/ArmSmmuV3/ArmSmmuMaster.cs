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

    /// <summary>STE.S1DSS = 0b10: a transaction without a substream uses CD 0 (STRTAB_STE_1_S1DSS_SSID0).</summary>
    private const uint SteS1DssSsid0 = 2;
    /// <summary>STE.STRW: NS-EL1, or EL2 (with CR2.E2H, the EL2-E2H regime) (STRTAB_STE_1_STRW_*).</summary>
    private const uint SteStrwNsEl1 = 0, SteStrwEl2 = 2;
    /// <summary>STE.S1CIR/S1COR = 0b01 write-back read-allocate, S1CSH = 0b11 inner shareable: how the SMMU fetches CDs.</summary>
    private const uint SteS1CacheWbra = 1, SteS1ShInner = 3;
    /// <summary>IOMMU_NO_PASID: the substream of DMA without a PASID.</summary>
    private const uint NoPasid = 0;

    /// <summary>The master's CD table, made by the first stage-1 attachment; null before.</summary>
    public ArmSmmuCdTable? CdTable { get; private set; }

    /// <summary>
    /// The master's SSID width (master->ssid_bits): the device's PASID width capped by the SMMU's
    /// SSIDSIZE, and by a linear CD table's 1024 entries without 2-level CD tables (CTXDESC_LINEAR_CDMAX).
    /// </summary>
    public int SsidBits
    {
        get
        {
            int bits = Math.Max(0, Math.Min(Device.Profile.PasidBits, Smmu.Features.SsidBits));
            return Smmu.Features.TwoLevelCd ? bits : Math.Min(bits, LinearCdMaxLog2);
        }
    }

    private const int LinearCdMaxLog2 = 10;

    /// <summary>
    /// Blocks DMA as arm_smmu_attach_dev_ste does: the abort STE with ATS off, the old domain let
    /// go (a stage-1 domain's ASID flushed when it was the last master), then CD 0 cleared.
    /// </summary>
    public void AttachBlocked()
    {
        Install(ArmSmmuDevice.AbortSte, ats: false);
        SetDomain(null, null);
        CdTable?.Clear(NoPasid);
    }

    /// <summary>
    /// arm_smmu_attach_dev for a paging domain. Stage 1: the CD table is made if needed, CD 0
    /// gets the domain's table and ASID (<see cref="LpaePageTable.MakeContextDescriptor"/>) and
    /// the STE points at the CD table (<see cref="MakeCdTableSte"/>). Stage 2: the STE points at
    /// the table with the domain's VMID on this SMMU, and CD 0 is cleared.
    /// </summary>
    /// <returns>EINVAL when the domain belongs to another SMMU or its table does not fit this one; ENOMEM without memory for the CD table; ENOSPC when VMIDs ran out.</returns>
    public Errno AttachPaging(PagingDomain domain)
    {
        if (!domain.IsCompatible(Smmu)) return Errno.EINVAL;
        bool ats = AtsSupported;
        if (domain.IsStage1)
        {
            CdTable ??= ArmSmmuCdTable.TryCreate(Smmu, Sid, SsidBits);
            if (CdTable is null || CdTable.CdAddress(NoPasid) is null) return Errno.ENOMEM;
            CdTable.Write(NoPasid, domain.Table.MakeContextDescriptor(domain.Asid, Smmu.Features.CoherentWalk, Smmu.StallForce));
            Install(MakeCdTableSte(ats), ats);
            SetDomain(domain, null);
            return Errno.None;
        }
        if (domain.VmidOn(Smmu) is not { } vmid) return Errno.ENOSPC;
        Install(domain.Table.MakeSte(vmid, ats), ats);
        CdTable?.Clear(NoPasid);
        SetDomain(domain, null);
        return Errno.None;
    }

    /// <summary>
    /// arm_smmu_make_cdtable_ste with S1DSS = SSID0: Config = S1 translate, the CD table's
    /// format, address and S1CDMax; CDs fetched write-back inner shareable; S1STALLD when the
    /// SMMU could stall but the master does not; EATS from the ATS state; STRW = EL2 with E2H,
    /// else NS-EL1 with S2VMID 0.
    /// </summary>
    public StreamTableEntry MakeCdTableSte(bool ats)
    {
        ArmSmmuCdTable table = CdTable ?? throw new InvalidOperationException($"SID 0x{Sid:X} has no CD table.");
        return StreamTableEntry.Create(SteConfig.Stage1,
            s1ContextPtr: table.BaseAddress,
            s1Fmt: table.S1Fmt,
            s1CdMax: (uint)table.S1CdMax,
            s1Dss: SteS1DssSsid0,
            s1Cir: SteS1CacheWbra,
            s1Cor: SteS1CacheWbra,
            s1Csh: SteS1ShInner,
            s1Stalld: Smmu.Stalls && !Smmu.StallForce,
            eats: ats ? ArmSmmuDevice.SteEatsTrans : 0,
            shcfg: 0,
            strw: Smmu.E2h ? SteStrwEl2 : SteStrwNsEl1,
            s2Vmid: ArmSmmuDevice.Stage1Vmid);
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
        IommuDomain? old = Domain;
        old?.Masters.Remove(this);
        Domain = domain;
        domain?.Masters.Add(this);
        Vmaster = vmaster;
        if (old != domain && old is PagingDomain paging) paging.MasterLeft();
    }
}

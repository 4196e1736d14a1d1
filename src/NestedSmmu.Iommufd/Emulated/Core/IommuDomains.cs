using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>An IOMMU domain of the emulated host driver (Linux's iommu_domain): what a master is attached to.</summary>
internal abstract class IommuDomain
{
    /// <summary>Masters whose STE currently points at this domain.</summary>
    public HashSet<ArmSmmuMaster> Masters { get; } = [];

    /// <summary>A label for messages and allocator diagnostics.</summary>
    public abstract string Label { get; }
}

/// <summary>
/// A paging domain: one table in host memory, kept identical to its IOAS's mappings. As
/// arm_smmu_domain_alloc_paging_flags (arm-smmu-v3.c) decides, a domain asked for without flags
/// (or with DIRTY_TRACKING / PASID) is a stage-1 domain when the SMMU has stage 1: its table is
/// walked through a CD the host driver writes into the master's CD table, tagged with an ASID
/// from the host-wide allocator. A nest parent, or any paging domain on an SMMU without stage 1,
/// is a stage-2 domain. Either way the domain belongs to the SMMU it was allocated for
/// (arm_smmu_domain_finalise uses the master's SMMU): only masters and vIOMMUs of that SMMU may
/// use it (arm_smmu_attach_dev and arm_vsmmu_init answer EINVAL otherwise, arm-smmu-v3.c and
/// arm-smmu-v3-iommufd.c). Direct attachments tag a stage-2 domain's TLB entries with a VMID
/// held here, each vIOMMU with one of its own.
/// </summary>
internal sealed class PagingDomain : IommuDomain
{
    /// <summary>
    /// The kernel's VA_BITS (CONFIG_ARM64_VA_BITS_48, the arm64 default with 4 KiB pages): a
    /// stage-1 domain's input size is min(VAX ? 52 : 48, VA_BITS) (arm_smmu_domain_finalise).
    /// </summary>
    public const int KernelVaBits = 48;
    /// <summary>The stage-1 input size without IDR5.VAX, and with it.</summary>
    private const int Stage1InputBits = 48, Stage1InputBitsVax = 52;

    private readonly Dictionary<ArmSmmuDevice, ushort> _vmids = new();
    private readonly EmulatedHost _host;

    private PagingDomain(EmulatedHost host, LpaePageTable table, bool nestParent, string label, ArmSmmuDevice owner, ushort asid)
    {
        _host = host;
        Table = table;
        NestParent = nestParent;
        Label = label;
        Owner = owner;
        Asid = asid;
    }

    public LpaePageTable Table { get; }
    public bool NestParent { get; }
    public override string Label { get; }

    /// <summary>Stage 1 (a CD with <see cref="Asid"/>) or stage 2 (an STE with a VMID).</summary>
    public bool IsStage1 => Table.Format == LpaeFormat.Stage1;

    /// <summary>The SMMU the domain was finalised for (smmu_domain->smmu), the only one that may use it.</summary>
    public ArmSmmuDevice Owner { get; }

    /// <summary>The ASID of a stage-1 domain (cd.asid); 0 for stage 2.</summary>
    public ushort Asid { get; }

    /// <summary>vIOMMUs using this domain as their stage 2.</summary>
    public List<ArmVsmmu> Vsmmus { get; } = [];

    /// <summary>
    /// Allocates the domain for a device behind <paramref name="smmu"/>, sized for that SMMU
    /// (arm_smmu_domain_finalise). Stage 1: input min(VAX ? 52 : 48, VA_BITS), output the SMMU's
    /// OAS, an ASID (EBUSY when none is free). Stage 2: the SMMU's IAS and OAS. ENOMEM when host
    /// memory is exhausted.
    /// </summary>
    public static Errno TryCreate(ArmSmmuDevice smmu, bool stage1, bool nestParent, string label, out PagingDomain? domain)
    {
        domain = null;
        EmulatedHost host = smmu.Host;
        if (stage1)
        {
            int input = Math.Min(smmu.Features.Vax != 0 ? Stage1InputBitsVax : Stage1InputBits, KernelVaBits);
            LpaePageTable? s1 = LpaePageTable.TryCreate(host.Allocator, host.Memory, LpaeFormat.Stage1, input, smmu.Features.OasBits, label);
            if (s1 is null) return Errno.ENOMEM;
            if (host.Asids.Allocate(smmu.MaxAsid) is not { } asid)
            {
                s1.Destroy();
                return Errno.EBUSY;
            }
            domain = new PagingDomain(host, s1, nestParent: false, label, smmu, asid);
            return Errno.None;
        }
        int ias = smmu.Features.IasBits, oas = smmu.Features.OasBits;
        LpaePageTable? table = LpaePageTable.TryCreate(host.Allocator, host.Memory, LpaeFormat.Stage2, Math.Min(ias, MaxStage2InputBits), oas, label);
        if (table is null) return Errno.ENOMEM;
        domain = new PagingDomain(host, table, nestParent, label, smmu, asid: 0);
        return Errno.None;
    }

    /// <summary>The largest IPA size the 4 KiB-granule table takes without 52-bit extensions.</summary>
    private const int MaxStage2InputBits = 48;

    /// <summary>True when <paramref name="smmu"/> may use this domain: it is the one the domain was allocated for.</summary>
    public bool IsCompatible(ArmSmmuDevice smmu) => smmu == Owner;

    /// <summary>The VMID of direct attachments on <paramref name="smmu"/>, allocated on first use; null when VMIDs ran out.</summary>
    public ushort? VmidOn(ArmSmmuDevice smmu)
    {
        if (IsStage1) throw new InvalidOperationException($"{Label}: a stage-1 domain has an ASID, not a VMID.");
        if (_vmids.TryGetValue(smmu, out ushort vmid)) return vmid;
        if (smmu.AllocVmid() is not { } fresh) return null;
        _vmids.Add(smmu, fresh);
        return fresh;
    }

    /// <summary>Adds a mapping to the table (no invalidation needed: nothing caches a missing translation).</summary>
    public Errno Map(ulong iova, ulong pa, ulong length, bool read, bool write) => Table.Map(iova, pa, length, read, write);

    /// <summary>
    /// Removes a mapping, then invalidates every TLB that may hold it and the ATC of every ATS
    /// master translating through it. Stage 1: by ASID on the owning SMMU while masters are
    /// attached (TLBI_NH_VA, or TLBI_EL2_VA with E2H; the invalidation array is empty without
    /// them, their entries were flushed when the last one left). Stage 2: per SMMU and VMID,
    /// with TLBI_NH_ALL as well for a nest parent.
    /// </summary>
    public void Unmap(ulong iova, ulong length)
    {
        Table.Unmap(iova, length);
        // Plain loops over the tags and masters, no LINQ: this runs once per IOAS area unmapped
        // (a million times for a million-page IOAS), and enumerator chains allocate.
        if (IsStage1)
        {
            if (Masters.Count > 0) Owner.InvalidateStage1(Asid, iova, length);
        }
        else
        {
            foreach (var (smmu, vmid) in _vmids) smmu.InvalidateStage2(vmid, iova, length, NestParent);
            foreach (ArmVsmmu v in Vsmmus) v.Smmu.InvalidateStage2(v.Vmid, iova, length, NestParent);
        }
        foreach (ArmSmmuMaster m in Masters)
        {
            if (m.AtsEnabled) m.Smmu.InvalidateAtc(m.Sid);
        }
        foreach (ArmVsmmu v in Vsmmus)
        {
            foreach (NestedDomain d in v.NestedDomains)
            {
                foreach (ArmSmmuMaster m in d.Masters)
                {
                    // A master on a nested domain is not also on this one (a master has one domain).
                    if (m.AtsEnabled) m.Smmu.InvalidateAtc(m.Sid);
                }
            }
        }
    }

    /// <summary>
    /// A master left this domain. When a stage-1 domain loses its last master, its ASID is no
    /// longer invalidated by unmaps, so the host flushes it now (arm_smmu_install_old_domain_invs
    /// and arm_smmu_inv_flush_iotlb_tag: TLBI_NH_ASID, or TLBI_EL2_ASID with E2H, then CMD_SYNC).
    /// </summary>
    public void MasterLeft()
    {
        if (IsStage1 && Masters.Count == 0) Owner.FlushAsid(Asid);
    }

    /// <summary>
    /// Frees the VMIDs (flushing their TLB entries) or the ASID (xa_erase; flushed when the last
    /// master left), and the table. No master may be attached.
    /// </summary>
    public void Free()
    {
        foreach (var (smmu, vmid) in _vmids) smmu.FreeVmid(vmid);
        _vmids.Clear();
        if (IsStage1 && !Table.IsDestroyed) _host.Asids.Free(Asid);
        Table.Destroy();
    }
}

/// <summary>
/// A nested domain of an SMMUv3 vIOMMU (arm_smmu_nested_domain): the guest's vSTE words 0 and
/// 1 after validation, EATS stripped (it decides <see cref="EnableAts"/> instead).
/// </summary>
internal sealed class NestedDomain(ArmVsmmu vsmmu, ulong ste0, ulong ste1, bool enableAts) : IommuDomain
{
    public ArmVsmmu Vsmmu { get; } = vsmmu;
    public ulong Ste0 { get; } = ste0;
    public ulong Ste1 { get; } = ste1;
    public bool EnableAts { get; } = enableAts;

    /// <summary>The vSTE's Config, as the physical STE is built from it (abort when V = 0).</summary>
    public SteConfig Config
    {
        get
        {
            var v = new StreamTableEntry(Ste0, Ste1, 0, 0);
            return v.V ? v.Config : SteConfig.Abort;
        }
    }

    public override string Label => $"nested domain of vIOMMU {Vsmmu.Core.Id}";
}

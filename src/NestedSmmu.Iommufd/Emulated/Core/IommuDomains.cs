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
/// A paging domain: one stage-2 table in host memory, kept identical to its IOAS's mappings.
/// The host driver uses stage 2 for every paging domain (Linux prefers stage 1 for plain DMA
/// domains where it can; through iommufd the difference is invisible). As in Linux, a domain
/// belongs to the SMMU it was allocated for (arm_smmu_domain_alloc_paging_flags finalises it
/// with the master's SMMU): only masters and vIOMMUs of that SMMU may use it
/// (arm_smmu_attach_dev and arm_vsmmu_init answer EINVAL otherwise, arm-smmu-v3.c and
/// arm-smmu-v3-iommufd.c). Direct attachments tag its TLB entries with a VMID held here, each
/// vIOMMU with one of its own.
/// </summary>
internal sealed class PagingDomain : IommuDomain
{
    private readonly Dictionary<ArmSmmuDevice, ushort> _vmids = new();

    private PagingDomain(ArmSmmuDevice smmu, Stage2PageTable table, bool nestParent, string label)
    {
        Smmu = smmu;
        Table = table;
        NestParent = nestParent;
        Label = label;
    }

    /// <summary>The SMMU the domain was allocated for, the only one that may use it.</summary>
    public ArmSmmuDevice Smmu { get; }

    public Stage2PageTable Table { get; }
    public bool NestParent { get; }
    public override string Label { get; }

    /// <summary>vIOMMUs using this domain as their stage 2.</summary>
    public List<ArmVsmmu> Vsmmus { get; } = [];

    /// <summary>
    /// Allocates the domain for a device behind <paramref name="smmu"/>, sized for that SMMU
    /// (arm_smmu_domain_finalise). Null when host memory is exhausted.
    /// </summary>
    public static PagingDomain? TryCreate(ArmSmmuDevice smmu, bool nestParent, string label)
    {
        int ias = smmu.Features.IasBits, oas = smmu.Features.OasBits;
        Stage2PageTable? table = Stage2PageTable.TryCreate(smmu.Host.Allocator, smmu.Host.Memory, Math.Min(ias, MaxStage2InputBits), oas, label);
        return table is null ? null : new PagingDomain(smmu, table, nestParent, label);
    }

    /// <summary>The largest IPA size the 4 KiB-granule table takes without 52-bit extensions.</summary>
    private const int MaxStage2InputBits = 48;

    /// <summary>True when <paramref name="smmu"/> may use this domain: it is the one the domain was allocated for.</summary>
    public bool IsCompatible(ArmSmmuDevice smmu) => smmu == Smmu;

    /// <summary>The VMID of direct attachments on <paramref name="smmu"/>, allocated on first use; null when VMIDs ran out.</summary>
    public ushort? VmidOn(ArmSmmuDevice smmu)
    {
        if (_vmids.TryGetValue(smmu, out ushort vmid)) return vmid;
        if (smmu.AllocVmid() is not { } fresh) return null;
        _vmids.Add(smmu, fresh);
        return fresh;
    }

    /// <summary>Every (SMMU, VMID) whose TLB may hold translations through this table.</summary>
    public IEnumerable<(ArmSmmuDevice Smmu, ushort Vmid)> TlbTags =>
        _vmids.Select(kv => (kv.Key, kv.Value)).Concat(Vsmmus.Select(v => (v.Smmu, v.Vmid)));

    /// <summary>Adds a mapping to the table (no invalidation needed: nothing caches a missing translation).</summary>
    public Errno Map(ulong iova, ulong pa, ulong length, bool read, bool write) => Table.Map(iova, pa, length, read, write);

    /// <summary>
    /// Removes a mapping, then invalidates every TLB that may hold it (per SMMU and VMID, with
    /// TLBI_NH_ALL as well for a nest parent) and the ATC of every ATS master translating
    /// through it.
    /// </summary>
    public void Unmap(ulong iova, ulong length)
    {
        Table.Unmap(iova, length);
        // Loops rather than TlbTags / MastersTranslatingThrough: this runs once per IOAS area
        // unmapped (a million times for a million-page IOAS) and those allocate.
        foreach (var (smmu, vmid) in _vmids) smmu.InvalidateStage2(vmid, iova, length, NestParent);
        foreach (ArmVsmmu v in Vsmmus) v.Smmu.InvalidateStage2(v.Vmid, iova, length, NestParent);
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

    /// <summary>Masters attached to this domain, or to a nested domain on top of it.</summary>
    public IEnumerable<ArmSmmuMaster> MastersTranslatingThrough() =>
        Masters.Concat(Vsmmus.SelectMany(v => v.NestedDomains).SelectMany(d => d.Masters)).Distinct();

    /// <summary>Frees the VMIDs (flushing their TLB entries) and the table. No master may be attached.</summary>
    public void Free()
    {
        foreach (var (smmu, vmid) in _vmids) smmu.FreeVmid(vmid);
        _vmids.Clear();
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

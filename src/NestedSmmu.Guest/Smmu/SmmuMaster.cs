namespace NestedSmmu.Guest.Smmu;

/// <summary>What a master's STE currently says.</summary>
public enum MasterAttachment { None, Abort, Bypass, Stage1 }

/// <summary>
/// One device behind an SMMU (Linux's arm_smmu_master): its StreamID, whether its PCIe function
/// has ATS enabled, its CD table, and the domain its STE points at.
/// </summary>
public sealed class SmmuMaster
{
    internal SmmuMaster(string name, uint streamId, bool ats)
    {
        Name = name;
        StreamId = streamId;
        AtsEnabled = ats;
    }

    public string Name { get; }
    public uint StreamId { get; }
    /// <summary>ATS in use: STE.EATS = 1 and ATC_INV after every TLB invalidation of its domain.</summary>
    public bool AtsEnabled { get; }
    public MasterAttachment Attachment { get; internal set; }
    public SmmuDomain? Domain { get; internal set; }
    /// <summary>Guest-physical address of the master's (single-entry, linear) CD table; 0 until first stage-1 attach.</summary>
    public ulong CdTable { get; internal set; }

    public override string ToString() => $"{Name} (sid 0x{StreamId:X})";
}

/// <summary>
/// A stage-1 translation domain (Linux's arm_smmu_domain with ARM_SMMU_DOMAIN_S1): an ASID and a
/// VMSAv8-64 4 KiB-granule page table in guest RAM, shared by the masters attached to it.
/// </summary>
public sealed class SmmuDomain
{
    private readonly List<SmmuMaster> _masters = new();

    internal SmmuDomain(ArmSmmuV3Driver smmu, ushort asid, TranslationTables pageTable, int inputBits)
    {
        Smmu = smmu;
        Asid = asid;
        PageTable = pageTable;
        InputBits = inputBits;
    }

    public ArmSmmuV3Driver Smmu { get; }
    public ushort Asid { get; }
    /// <summary>The domain's stage-1 tables (the product's one VMSAv8-64 table writer).</summary>
    public TranslationTables PageTable { get; }
    public int InputBits { get; }
    public IReadOnlyList<SmmuMaster> Masters => _masters;

    internal void Add(SmmuMaster m) { if (!_masters.Contains(m)) _masters.Add(m); }
    internal void Remove(SmmuMaster m) => _masters.Remove(m);
}

using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Smmu;
using static NestedSmmu.Guest.Smmu.LinuxSmmuV3Constants;

namespace NestedSmmu.Guest.Smmu;

public sealed partial class ArmSmmuV3Driver
{
    private bool _twoLevel;
    private ulong _strtabBase;
    private uint _strtabCfg;
    private int _l1Entries;
    private readonly Dictionary<uint, ulong> _l2Tables = new();
    private readonly Dictionary<uint, SmmuMaster> _masters = new();
    private readonly HashSet<ushort> _asids = new();
    private GuestTableSpace? _tableSpace;

    /// <summary>Whether the stream table is 2-level (IDR0.ST_LEVEL and no override).</summary>
    public bool TwoLevelStreamTable => _twoLevel;
    public ulong StreamTableBase => _strtabBase;
    public IReadOnlyCollection<SmmuMaster> Masters => _masters.Values;
    public GuestTableSpace TableSpace => _tableSpace ??= new GuestTableSpace(_ram, _pages);

    /// <summary>
    /// arm_smmu_init_strtab: a 2-level table (SPLIT = 8, level-2 tables allocated as devices appear)
    /// when IDR0.ST_LEVEL offers it and the StreamID space is larger than one level-2 table, else a
    /// linear table of 2^SIDSIZE STEs, every one an abort STE until a device is attached.
    /// </summary>
    private void InitStreamTable()
    {
        if (_strtabBase != 0) return;
        int sidBits = Features.SidBits;
        _twoLevel = Features.TwoLevelStreamTable && !Options.ForceLinearStreamTable && sidBits > STRTAB_SPLIT;
        if (_twoLevel)
        {
            _l1Entries = 1 << (sidBits - STRTAB_SPLIT);
            _strtabBase = _pages.Allocate((ulong)_l1Entries * L1StreamTableDescriptor.Size);
            _strtabCfg = (uint)(SmmuModel.STRTAB_BASE_CFG_FMT.Encode(SmmuModel.STRTAB_FMT_2LEVEL) | SmmuModel.STRTAB_BASE_CFG_SPLIT.Encode(STRTAB_SPLIT)
                | SmmuModel.STRTAB_BASE_CFG_LOG2SIZE.Encode((ulong)sidBits));
        }
        else
        {
            ulong entries = 1UL << sidBits;
            _strtabBase = _pages.Allocate(entries * StreamTableEntry.Size);
            _strtabCfg = (uint)(SmmuModel.STRTAB_BASE_CFG_FMT.Encode(SmmuModel.STRTAB_FMT_LINEAR) | SmmuModel.STRTAB_BASE_CFG_LOG2SIZE.Encode((ulong)sidBits));
            WriteInitialStes(_strtabBase, entries);
        }
    }

    /// <summary>arm_smmu_init_initial_stes: valid abort STEs (disable_bypass, Linux's default).</summary>
    private void WriteInitialStes(ulong table, ulong count)
    {
        var abort = StreamTableEntry.Create(SteConfig.Abort);
        for (ulong i = 0; i < count; i++) WriteSteWords(table + i * StreamTableEntry.Size, abort);
    }

    /// <summary>Guest-physical address of the STE for <paramref name="sid"/>, allocating its level-2 table if needed.</summary>
    private ulong SteAddress(uint sid)
    {
        if (!_twoLevel) return _strtabBase + (ulong)sid * StreamTableEntry.Size;
        uint l1 = sid >> STRTAB_SPLIT;
        if (!_l2Tables.TryGetValue(l1, out ulong l2))
        {
            // arm_smmu_init_l2_strtab: a level-2 table of 2^SPLIT abort STEs, then its L1 descriptor (Span = SPLIT + 1).
            ulong entries = 1UL << STRTAB_SPLIT;
            l2 = _pages.Allocate(entries * StreamTableEntry.Size);
            WriteInitialStes(l2, entries);
            _ram.WriteUInt64(_strtabBase + l1 * L1StreamTableDescriptor.Size, L1StreamTableDescriptor.Create(l2, STRTAB_SPLIT + 1).Word);
            _l2Tables[l1] = l2;
        }
        return l2 + (ulong)(sid & ((1u << STRTAB_SPLIT) - 1)) * StreamTableEntry.Size;
    }

    /// <summary>Reads back the STE the driver wrote for <paramref name="sid"/>.</summary>
    public StreamTableEntry ReadSte(uint sid)
    {
        Span<ulong> w = stackalloc ulong[StreamTableEntry.Words];
        _ram.ReadUInt64s(SteAddress(sid), w);
        return StreamTableEntry.FromWords(w);
    }

    /// <summary>
    /// A bypass STE for a StreamID that has no device yet (arm_smmu_rmr_install_bypass_ste): IORT RMR
    /// StreamIDs keep reaching their reserved memory from boot until a driver attaches a domain.
    /// </summary>
    public void InstallBypassSte(uint streamId)
    {
        if (!Enabled) throw new InvalidOperationException($"{Name}: bypass STEs after Reset().");
        if (!Bits.FitsIn(streamId, Features.SidBits))
        {
            Log.Error(Name, $"RMR StreamID 0x{streamId:X} is beyond SIDSIZE {Features.SidBits}");
            return;
        }
        ulong address = SteAddress(streamId);
        if ((_ram.ReadUInt64(address) & 1) != 0)
        {
            _ram.WriteUInt64(address, 0);
            IssueCommandsWithSync([Command.CfgiSte(streamId)]);
        }
        WriteSteWords(address, StreamTableEntry.Create(SteConfig.Bypass));
        IssueCommandsWithSync([Command.CfgiSte(streamId)]);
    }

    /// <summary>
    /// Registers a device (arm_smmu_probe_device): checks its StreamID against IDR1.SIDSIZE, makes
    /// sure its STE exists, and leaves it aborting until a domain is attached.
    /// </summary>
    public SmmuMaster AddMaster(string name, uint streamId, bool ats = false)
    {
        if (!Enabled) throw new InvalidOperationException($"{Name}: add '{name}' after Reset().");
        if (!Bits.FitsIn(streamId, Features.SidBits))
            throw new ArgumentOutOfRangeException(nameof(streamId), $"{Name}: StreamID 0x{streamId:X} of '{name}' is beyond SIDSIZE {Features.SidBits}.");
        if (_masters.ContainsKey(streamId)) throw new InvalidOperationException($"{Name}: StreamID 0x{streamId:X} is already '{_masters[streamId].Name}'.");
        if (ats && !Features.Ats) throw new ArgumentException($"{Name}: '{name}' wants ATS but IDR0.ATS is 0.", nameof(ats));
        SteAddress(streamId);
        var m = new SmmuMaster(name, streamId, ats);
        _masters[streamId] = m;
        return m;
    }

    public bool TryGetMaster(uint streamId, out SmmuMaster master) => _masters.TryGetValue(streamId, out master!);

    /// <summary>
    /// A new stage-1 domain: a free ASID (16 bits with IDR0.ASID16, else 8; 0 left unused as Linux
    /// does) and an empty page table in guest RAM.
    /// </summary>
    public SmmuDomain AllocateStage1Domain()
    {
        int asidBits = Features.Asid16 ? 16 : 8;
        ushort asid = 0;
        for (int a = 1; a < 1 << asidBits; a++)
        {
            if (!_asids.Contains((ushort)a)) { asid = (ushort)a; break; }
        }
        if (asid == 0) throw new InvalidOperationException($"{Name}: no free ASID ({asidBits}-bit ASIDs).");
        _asids.Add(asid);
        int inputBits = Math.Min(Options.Stage1InputBits, Features.IasBits);
        var pt = TranslationTables.ForStage1(TableSpace, GuestPageAllocator.PageShift, inputBits);
        return new SmmuDomain(this, asid, pt, inputBits);
    }

    /// <summary>Releases a domain's ASID after its last master left (the caller invalidates its TLB entries).</summary>
    public bool FreeDomain(SmmuDomain domain)
    {
        if (domain.Masters.Count != 0) throw new InvalidOperationException($"{Name}: ASID {domain.Asid} still has masters attached.");
        bool ok = IssueCommandsWithSync([Command.TlbiNhAsid(0, domain.Asid)]);
        _asids.Remove(domain.Asid);
        return ok;
    }

    /// <summary>
    /// Points the master's STE at a stage-1 domain: the CD (ASID, TTB0, T0SZ, 4K granule, WBWA inner
    /// shareable walks, IPS = OAS, R and A set) is written and invalidated with CFGI_CD first, then the STE
    /// (S1 translate, linear single-CD table, EATS when ATS is on) with CFGI_STE, each followed by CMD_SYNC.
    /// </summary>
    public void AttachStage1(SmmuMaster master, SmmuDomain domain)
    {
        ArgumentNullException.ThrowIfNull(master);
        ArgumentNullException.ThrowIfNull(domain);
        if (!ReferenceEquals(domain.Smmu, this)) throw new ArgumentException($"{Name}: the domain belongs to {domain.Smmu.Name}.", nameof(domain));
        if (master.CdTable == 0) master.CdTable = _pages.Allocate(ContextDescriptor.Size);
        var cd = ContextDescriptor.Create(domain.PageTable.Root, domain.Asid, t0sz: (uint)(64 - domain.InputBits), tg0: 0,
            ips: AddressSize.Encode(Features.OasBits), aset: true);
        WriteCd(master, cd);
        // S1DSS = SSID0 as Linux's arm_smmu_make_cdtable_ste (ignored with one CD); S1STALLD when the SMMU
        // could stall (IDR0.STALL_MODEL = 0) but this master does not take stall faults.
        const uint s1dssSsid0 = 2;
        const int stallAndTerminate = 0;
        var ste = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: master.CdTable, s1Fmt: 0, s1CdMax: 0, s1Dss: s1dssSsid0,
            eats: master.AtsEnabled ? 1u : 0u, s1Stalld: Features.StallModel == stallAndTerminate);
        InstallSte(master, ste);
        master.Domain?.Remove(master);
        master.Domain = domain;
        master.Attachment = MasterAttachment.Stage1;
        domain.Add(master);
    }

    /// <summary>STE.Config = bypass (an identity domain).</summary>
    public void AttachBypass(SmmuMaster master) => AttachConfig(master, SteConfig.Bypass, MasterAttachment.Bypass);

    /// <summary>STE.Config = abort (a blocked domain): every transaction of the master is terminated.</summary>
    public void AttachAbort(SmmuMaster master) => AttachConfig(master, SteConfig.Abort, MasterAttachment.Abort);

    private void AttachConfig(SmmuMaster master, SteConfig config, MasterAttachment attachment)
    {
        InstallSte(master, StreamTableEntry.Create(config));
        master.Domain?.Remove(master);
        master.Domain = null;
        master.Attachment = attachment;
    }

    private void WriteCd(SmmuMaster master, in ContextDescriptor cd)
    {
        Span<ulong> w = [cd.W0, cd.W1, cd.W2, cd.W3, cd.W4, cd.W5, cd.W6, cd.W7];
        // Words 1..7 before word 0, which holds V: the SMMU never sees a half-written valid CD.
        _ram.WriteUInt64s(master.CdTable + sizeof(ulong), w[1..]);
        _ram.WriteUInt64(master.CdTable, w[0]);
        IssueCommandsWithSync([Command.CfgiCd(master.StreamId, 0)]);
    }

    /// <summary>
    /// Installs an STE without the SMMU ever fetching a torn entry: when the old STE is valid and the
    /// new one changes more than word 0 allows, it is first made invalid (V = 0) and invalidated, then the
    /// upper words are written, then word 0, each step followed by CFGI_STE + CMD_SYNC (the
    /// break-before-make form of Linux's arm_smmu_write_entry).
    /// </summary>
    private void InstallSte(SmmuMaster master, in StreamTableEntry ste)
    {
        ulong address = SteAddress(master.StreamId);
        ulong oldW0 = _ram.ReadUInt64(address);
        if ((oldW0 & 1) != 0)
        {
            _ram.WriteUInt64(address, 0);
            IssueCommandsWithSync([Command.CfgiSte(master.StreamId)]);
        }
        WriteSteWords(address, ste);
        IssueCommandsWithSync([Command.CfgiSte(master.StreamId)]);
    }

    private void WriteSteWords(ulong address, in StreamTableEntry ste)
    {
        Span<ulong> w = stackalloc ulong[StreamTableEntry.Words];
        ste.CopyTo(w);
        _ram.WriteUInt64s(address + sizeof(ulong), w[1..]);
        _ram.WriteUInt64(address, w[0]);
    }
}

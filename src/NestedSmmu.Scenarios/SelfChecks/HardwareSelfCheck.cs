using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Guest.PageTables;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Scenarios.SelfChecks;

/// <summary>
/// The hardware half of `nestedsmmu run`: a miniature SMMU driver (registers, stream table, CDs,
/// command and event queues) and a PCI endpoint, with stage-1, stage-2 and nested DMA, a TLBI,
/// a fault reaching the event queue and an illegal command, checked at each step.
/// </summary>
public sealed class HardwareSelfCheck
{
    private const ulong StrtabBase = 0x4000_0000, CmdqBase = 0x4010_0000, EventqBase = 0x4011_0000;
    private const ulong CdBase = 0x4020_0000, S1Tables = 0x4100_0000, S2Tables = 0x4200_0000, Ram = 0x8000_0000;
    private const int CmdqLog2 = 8, EventqLog2 = 6, StrtabLog2 = 8;
    private const uint Sid = 0x10;

    private readonly CheckList _checks;
    private readonly SparseMemory _mem = new();
    private readonly SmmuV3 _smmu;
    private readonly MemoryTableSpace _s1Space, _s2Space;
    private uint _cmdProd;

    public HardwareSelfCheck(TextWriter log)
    {
        _checks = new CheckList(log);
        _smmu = new SmmuV3(_mem, SmmuFeatures.QemuVirtNested with { Ats = true, Msi = true });
        _s1Space = new MemoryTableSpace(_mem, S1Tables);
        _s2Space = new MemoryTableSpace(_mem, S2Tables);
    }

    public int Passed => _checks.Passed;
    public IReadOnlyList<string> Failures => _checks.Failures;
    public SmmuCounters Counters => _smmu.Counters;
    public long TlbHits => _smmu.Tlb.Hits;
    public long TlbMisses => _smmu.Tlb.Misses;

    /// <summary>Runs every step; returns the number of failed checks.</summary>
    public int Run()
    {
        EnableSmmu();
        var dev = new PciEndpoint("nic0", RequesterId.Create(1, 0, 0), Sid, _smmu, _mem, atsCapable: true);

        // Stage 1 only: IOVA 0x1000_0000 -> PA Ram + 0x5000.
        var s1 = Stage1Tables();
        s1.Map(0x1000_0000, Ram + 0x5000);
        WriteCd(0, ContextDescriptor.Create(s1.Root, asid: 7, t0sz: 16));
        WriteSte(Sid, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: CdBase));
        Issue(Command.CfgiSte(Sid), Command.Sync());
        Check("stage-1 DMA write lands at the mapped PA", DmaWriteLands(dev, 0x1000_0040, Ram + 0x5040));

        // Stage 2 only: IPA 0x2000_0000 -> PA Ram + 0x9000 (VMID 3).
        var s2 = Stage2Tables();
        s2.Map(0x2000_0000, Ram + 0x9000);
        WriteSte(Sid, Stage2Ste(s2.Root, SteConfig.Stage2, 0, vmid: 3));
        Issue(Command.CfgiSte(Sid), Command.Sync());
        Check("stage-2 DMA write lands at the mapped PA", DmaWriteLands(dev, 0x2000_0010, Ram + 0x9010));

        // Nested: stage 1 (IPA tables) through stage 2 (identity-mapped table memory).
        var s2n = Stage2Tables();
        var s1n = Stage1Tables();
        s1n.Map(0x7000_0000, 0x3000_0000);
        // Identity-map the CD and the first stage-1 table pages through stage 2, then the data IPA.
        for (ulong page = S1Tables; page < S1Tables + 0x8000; page += 0x1000) s2n.Map(page, page);
        s2n.Map(CdBase, CdBase);
        s2n.Map(0x3000_0000, Ram + 0xC000);
        WriteCd(0, ContextDescriptor.Create(s1n.Root, asid: 9, t0sz: 16));
        WriteSte(Sid, Stage2Ste(s2n.Root, SteConfig.Nested, CdBase, vmid: 4));
        Issue(Command.CfgiSte(Sid), Command.CfgiCdAll(Sid), Command.Sync());
        Check("nested DMA write lands at the mapped PA", DmaWriteLands(dev, 0x7000_0123, Ram + 0xC123));
        Check("the translation is cached in the IOTLB", _smmu.Tlb.TryLookup(TlbRegime.NonHyp, 4, 9, 0x7000_0000, out _));

        // Unmap at stage 1, invalidate by VA: the next access faults with F_TRANSLATION in the event queue.
        s1n.Unmap(0x7000_0000);
        Issue(Command.TlbiNhVa(4, 9, 0x7000_0000, leaf: true), Command.Sync());
        Check("TLBI_NH_VA removed the entry", !_smmu.Tlb.TryLookup(TlbRegime.NonHyp, 4, 9, 0x7000_0000, out _));
        var fault = dev.Resolve(0x7000_0000, AccessKind.Read);
        Check("an unmapped IOVA faults with F_TRANSLATION", !fault.IsSuccess && fault.Translation.Event.Type == EventType.F_TRANSLATION);
        Check("the event reached the event queue", EventQueueHolds(EventType.F_TRANSLATION, Sid));

        // An illegal command stops the queue with CERROR_ILL until acknowledged.
        Issue(new Command(0xFF, 0));
        uint cons = (uint)_smmu.ReadRegister(SmmuRegister.CMDQ_CONS);
        Check("an illegal command sets CMDQ_CONS.ERR = CERROR_ILL", ((cons >> 24) & 0x7F) == (uint)CommandError.CERROR_ILL);
        // Replace the bad command with a CMD_SYNC and acknowledge GERROR.CMDQ_ERR.
        _mem.WriteUInt64s(CmdqBase + (cons & 0xFF) * Command.Size, [Command.Sync().W0, Command.Sync().W1]);
        _smmu.WriteRegister(SmmuRegister.GERRORN, _smmu.ReadRegister(SmmuRegister.GERROR));
        Check("acknowledging GERROR resumes the queue", _smmu.CommandQueueError == CommandError.None &&
              (_smmu.ReadRegister(SmmuRegister.CMDQ_CONS) & 0x1FF) == (_smmu.ReadRegister(SmmuRegister.CMDQ_PROD) & 0x1FF));
        return Failures.Count;
    }

    private void Check(string what, bool ok) => _checks.Check(what, ok);

    private bool DmaWriteLands(PciEndpoint dev, ulong iova, ulong pa)
    {
        var r = dev.Write(iova, BitConverter.GetBytes(0xC0FFEE00u + (uint)iova));
        return r.IsSuccess && r.Translation.PhysicalAddress == pa && _mem.ReadUInt32(pa) == 0xC0FFEE00u + (uint)iova;
    }

    private bool EventQueueHolds(EventType type, uint sid)
    {
        uint prod = (uint)_smmu.ReadRegister(SmmuRegister.EVENTQ_PROD) & ((2u << EventqLog2) - 1);
        if (prod == 0) return false;
        ulong slot = (prod - 1) & ((1u << EventqLog2) - 1);
        ulong w0 = _mem.ReadUInt64(EventqBase + slot * EventRecord.Size);
        return (byte)w0 == (byte)type && (uint)(w0 >> 32) == sid;
    }

    private void EnableSmmu()
    {
        _smmu.WriteRegister(SmmuRegister.STRTAB_BASE, StrtabBase);
        _smmu.WriteRegister(SmmuRegister.STRTAB_BASE_CFG, StrtabLog2);
        _smmu.WriteRegister(SmmuRegister.CMDQ_BASE, CmdqBase | CmdqLog2);
        _smmu.WriteRegister(SmmuRegister.EVENTQ_BASE, EventqBase | EventqLog2);
        _smmu.WriteRegister(SmmuRegister.CR0, SmmuV3.CR0_CMDQEN | SmmuV3.CR0_EVENTQEN);
        _smmu.WriteRegister(SmmuRegister.CR0, SmmuV3.CR0_CMDQEN | SmmuV3.CR0_EVENTQEN | SmmuV3.CR0_SMMUEN);
    }

    private void Issue(params Command[] cmds)
    {
        uint mask = (1u << CmdqLog2) - 1;
        foreach (var c in cmds)
        {
            _mem.WriteUInt64s(CmdqBase + (_cmdProd & mask) * Command.Size, [c.W0, c.W1]);
            _cmdProd = (_cmdProd + 1) & ((2u << CmdqLog2) - 1);
        }
        _smmu.WriteRegister(SmmuRegister.CMDQ_PROD, _cmdProd);
    }

    private void WriteSte(uint sid, StreamTableEntry ste)
    {
        Span<ulong> w = stackalloc ulong[StreamTableEntry.Words];
        ste.CopyTo(w);
        _mem.WriteUInt64s(StrtabBase + sid * (ulong)StreamTableEntry.Size, w);
    }

    private void WriteCd(uint ssid, ContextDescriptor cd) =>
        _mem.WriteUInt64s(CdBase + ssid * (ulong)ContextDescriptor.Size, [cd.W0, cd.W1, cd.W2, cd.W3, 0, 0, 0, 0]);

    private static StreamTableEntry Stage2Ste(ulong root, SteConfig config, ulong cdPtr, ushort vmid) =>
        // 4K granule, 40-bit IPA (T0SZ 24) starting at level 1 (SL0 = 1), 44-bit output.
        StreamTableEntry.Create(config, s1ContextPtr: cdPtr, s2Vmid: vmid, s2T0sz: 24, s2Sl0: 1, s2Tg: 0, s2Ps: 4, s2Ttb: root);

    /// <summary>4K stage 1 with a 48-bit VA: four levels from level 0.</summary>
    private TranslationTables Stage1Tables() => new(_s1Space, 12, 48, 0, stage2: false);

    /// <summary>4K stage 2 with a 40-bit IPA from level 1: the root is two concatenated tables.</summary>
    private TranslationTables Stage2Tables() => new(_s2Space, 12, 40, 1, stage2: true);
}

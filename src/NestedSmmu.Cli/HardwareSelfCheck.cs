using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Cli;

/// <summary>The self-check behind `run`: a miniature SMMU driver and device, checked at each step.</summary>
internal sealed class HardwareSelfCheck
{
    private const ulong StrtabBase = 0x4000_0000, CmdqBase = 0x4010_0000, EventqBase = 0x4011_0000;
    private const ulong CdBase = 0x4020_0000, S1Tables = 0x4100_0000, S2Tables = 0x4200_0000, Ram = 0x8000_0000;
    private const int CmdqLog2 = 8, EventqLog2 = 6, StrtabLog2 = 8;
    private const uint Sid = 0x10;

    private readonly TextWriter _log;
    private readonly SparseMemory _mem = new();
    private readonly Smmu _smmu;
    private readonly List<string> _failures = new();
    private ulong _nextS1 = S1Tables, _nextS2 = S2Tables;
    private uint _cmdProd;

    public HardwareSelfCheck(TextWriter log)
    {
        _log = log;
        _smmu = new Smmu(_mem, SmmuFeatures.QemuVirtNested with { Ats = true, Msi = true });
    }

    public int Passed { get; private set; }
    public IReadOnlyList<string> Failures => _failures;
    public SmmuCounters Counters => _smmu.Counters;
    public long TlbHits => _smmu.Tlb.Hits;
    public long TlbMisses => _smmu.Tlb.Misses;

    public int Run()
    {
        EnableSmmu();
        var dev = new PciEndpoint("nic0", RequesterId.Create(1, 0, 0), Sid, _smmu, _mem, atsCapable: true);

        // Stage 1 only: IOVA 0x1000_0000 -> PA Ram + 0x5000.
        ulong s1Root = NewS1Table();
        MapS1(s1Root, 0x1000_0000, Ram + 0x5000, writable: true);
        WriteCd(0, ContextDescriptor.Create(s1Root, asid: 7, t0sz: 16));
        WriteSte(Sid, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: CdBase));
        Issue(Command.CfgiSte(Sid), Command.Sync());
        Check("stage-1 DMA write lands at the mapped PA", DmaWriteLands(dev, 0x1000_0040, Ram + 0x5040));

        // Stage 2 only: IPA 0x2000_0000 -> PA Ram + 0x9000 (VMID 3).
        ulong s2Root = NewS2Table();
        MapS2(s2Root, 0x2000_0000, Ram + 0x9000);
        WriteSte(Sid, Stage2Ste(s2Root, SteConfig.Stage2, 0, vmid: 3));
        Issue(Command.CfgiSte(Sid), Command.Sync());
        Check("stage-2 DMA write lands at the mapped PA", DmaWriteLands(dev, 0x2000_0010, Ram + 0x9010));

        // Nested: stage 1 (IPA tables) through stage 2 (identity-mapped table memory).
        ulong s2n = NewS2Table();
        foreach (ulong page in new[] { CdBase, S1Tables, S1Tables + 0x1000, S1Tables + 0x2000, S1Tables + 0x3000, S1Tables + 0x4000, S1Tables + 0x5000, S1Tables + 0x6000, S1Tables + 0x7000 })
            MapS2(s2n, page, page);
        MapS2(s2n, 0x3000_0000, Ram + 0xC000);
        ulong s1n = NewS1Table();
        MapS1(s1n, 0x7000_0000, 0x3000_0000, writable: true);
        WriteCd(0, ContextDescriptor.Create(s1n, asid: 9, t0sz: 16));
        WriteSte(Sid, Stage2Ste(s2n, SteConfig.Nested, CdBase, vmid: 4));
        Issue(Command.CfgiSte(Sid), Command.CfgiCdAll(Sid), Command.Sync());
        Check("nested DMA write lands at the mapped PA", DmaWriteLands(dev, 0x7000_0123, Ram + 0xC123));
        Check("the translation is cached in the IOTLB", _smmu.Tlb.TryLookup(TlbRegime.NonHyp, 4, 9, 0x7000_0000, out _));

        // Unmap at stage 1, invalidate by VA: the next access faults with F_TRANSLATION in the event queue.
        UnmapS1(s1n, 0x7000_0000);
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
        return _failures.Count;
    }

    private void Check(string what, bool ok)
    {
        _log.WriteLine($"  [{(ok ? "ok" : "FAIL")}] {what}");
        if (ok) Passed++;
        else _failures.Add(what);
    }

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
        _smmu.WriteRegister(SmmuRegister.CR0, Smmu.CR0_CMDQEN | Smmu.CR0_EVENTQEN);
        _smmu.WriteRegister(SmmuRegister.CR0, Smmu.CR0_CMDQEN | Smmu.CR0_EVENTQEN | Smmu.CR0_SMMUEN);
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

    private ulong NewS1Table() { ulong t = _nextS1; _nextS1 += 0x1000; return t; }
    /// <summary>A stage-2 root: two concatenated level-1 tables (8 KiB, aligned to 8 KiB).</summary>
    private ulong NewS2Table()
    {
        const ulong rootSize = 0x2000;
        ulong t = (_nextS2 + rootSize - 1) & ~(rootSize - 1);
        _nextS2 = t + rootSize;
        return t;
    }

    // 4K stage 1, 48-bit VA: four levels. Page descriptor: AF, AP[1] (EL0 access), AP[2] read-only.
    private void MapS1(ulong root, ulong va, ulong pa, bool writable)
    {
        ulong table = root;
        for (int level = 0; level < 3; level++)
            table = NextTable(table, (va >> (39 - 9 * level)) & 0x1FF, ref _nextS1);
        _mem.WriteUInt64(table + ((va >> 12) & 0x1FF) * 8, pa | 0x3 | (1UL << 10) | (1UL << 6) | (writable ? 0 : 1UL << 7));
    }

    private void UnmapS1(ulong root, ulong va)
    {
        ulong table = root;
        for (int level = 0; level < 3; level++)
            table = _mem.ReadUInt64(table + ((va >> (39 - 9 * level)) & 0x1FF) * 8) & 0x000F_FFFF_FFFF_F000;
        _mem.WriteUInt64(table + ((va >> 12) & 0x1FF) * 8, 0);
    }

    // 4K stage 2, 40-bit IPA starting at level 1: level 1 resolves IPA[39:30], 10 bits, so the root is two
    // concatenated 512-entry tables.
    private void MapS2(ulong root, ulong ipa, ulong pa)
    {
        ulong table = NextTable(root, (ipa >> 30) & 0x3FF, ref _nextS2);
        table = NextTable(table, (ipa >> 21) & 0x1FF, ref _nextS2);
        _mem.WriteUInt64(table + ((ipa >> 12) & 0x1FF) * 8, pa | 0x3 | (1UL << 10) | (3UL << 6));
    }

    private ulong NextTable(ulong table, ulong index, ref ulong allocator)
    {
        ulong slot = table + index * 8;
        ulong desc = _mem.ReadUInt64(slot);
        if ((desc & 1) != 0) return desc & 0x000F_FFFF_FFFF_F000;
        ulong next = allocator;
        allocator += 0x1000;
        _mem.WriteUInt64(slot, next | 0x3);
        return next;
    }
}

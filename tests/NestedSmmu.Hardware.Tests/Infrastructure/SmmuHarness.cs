using System.Buffers.Binary;

namespace NestedSmmu.Hardware.Tests.Infrastructure;

/// <summary>
/// Drives an SMMU the way a driver does: every setting goes through the MMIO frame
/// (STRTAB_BASE, STRTAB_BASE_CFG, CMDQ_*, EVENTQ_*, CR2, CR0), structures are written to
/// memory, commands are queued in memory and published by a CMDQ_PROD write, and events are
/// consumed from the event queue by EVENTQ_PROD/CONS.
/// </summary>
public sealed class SmmuHarness
{
    public const ulong StrtabBase = 0x1000_0000;
    public const ulong CmdqBase = 0x1100_0000;
    public const ulong EventqBase = 0x1200_0000;
    public const ulong L2StrtabArea = 0x1400_0000;

    // Register fields used here, spelled as in IHI 0070 6.3 (independent of the model's constants).
    public const uint CR0_SMMUEN = 1 << 0, CR0_EVENTQEN = 1 << 2, CR0_CMDQEN = 1 << 3;
    public const uint CR2_E2H = 1 << 0, CR2_RECINVSID = 1 << 1, CR2_PTM = 1 << 2;
    public const uint GERROR_CMDQ_ERR = 1 << 0;
    public const uint Q_OVFLG = 1u << 31;

    private readonly TestAllocator _l2Allocator = new(L2StrtabArea);

    public SmmuHarness(SmmuFeatures? features = null, bool twoLevelStreamTable = false, int streamIdBits = 8, int split = 8,
        int cmdqLog2 = 6, int eventqLog2 = 6, uint cr2 = CR2_RECINVSID | CR2_PTM, bool enable = true)
    {
        Features = features ?? new SmmuFeatures { OasBits = 48 };
        Smmu = new SmmuV3(Memory, Features);
        TwoLevel = twoLevelStreamTable;
        StreamIdBits = streamIdBits;
        Split = split;
        CmdqLog2 = cmdqLog2;
        EventqLog2 = eventqLog2;
        // Reset: everything off, then the base registers, then CR2, then CR0 (IHI 0070 3.11).
        Write(SmmuRegister.CR0, 0);
        Write64(SmmuRegister.STRTAB_BASE, StrtabBase);
        Write(SmmuRegister.STRTAB_BASE_CFG, (uint)streamIdBits | ((uint)split << 6) | ((twoLevelStreamTable ? 1u : 0u) << 16));
        Write64(SmmuRegister.CMDQ_BASE, CmdqBase | (uint)cmdqLog2);
        Write(SmmuRegister.CMDQ_PROD, 0);
        Write(SmmuRegister.CMDQ_CONS, 0);
        Write64(SmmuRegister.EVENTQ_BASE, EventqBase | (uint)eventqLog2);
        Write(SmmuRegister.EVENTQ_PROD_PAGE1, 0);
        Write(SmmuRegister.EVENTQ_CONS_PAGE1, 0);
        Write(SmmuRegister.CR2, cr2);
        if (enable) Write(SmmuRegister.CR0, CR0_SMMUEN | CR0_EVENTQEN | CR0_CMDQEN);
    }

    public SparseMemory Memory { get; } = new();
    public SmmuFeatures Features { get; }
    public SmmuV3 Smmu { get; }
    public bool TwoLevel { get; }
    public int StreamIdBits { get; }
    public int Split { get; }
    public int CmdqLog2 { get; }
    public int EventqLog2 { get; }

    public uint Read(SmmuRegister r) => (uint)Smmu.Read((ulong)r, 4);
    public ulong Read64(SmmuRegister r) => Smmu.Read((ulong)r, 8);
    public void Write(SmmuRegister r, uint value) => Smmu.Write((ulong)r, 4, value);
    public void Write64(SmmuRegister r, ulong value) => Smmu.Write((ulong)r, 8, value);

    // ---- Stream table ----

    /// <summary>Physical address of the STE for <paramref name="sid"/>; for a 2-level table the L1STD and a full-span L2 table are created on demand.</summary>
    public ulong SteAddress(uint sid)
    {
        if (!TwoLevel) return StrtabBase + (ulong)sid * 64;
        ulong l1 = StrtabBase + (ulong)(sid >> Split) * 8;
        ulong desc = Memory.ReadUInt64(l1);
        if ((desc & 0x1F) == 0)
        {
            ulong size = 64UL << Split;
            ulong l2 = _l2Allocator.Allocate(size, size);
            desc = l2 | (uint)(Split + 1); // Span = SPLIT + 1: 2^SPLIT STEs
            Memory.WriteUInt64(l1, desc);
        }
        return (desc & 0x000F_FFFF_FFFF_FFC0) + (sid & ((1UL << Split) - 1)) * 64;
    }

    public void WriteL1Std(uint l1Index, ulong l2Ptr, uint span) => Memory.WriteUInt64(StrtabBase + l1Index * 8UL, l2Ptr | span);

    public void WriteSte(uint sid, in StreamTableEntry ste)
    {
        Span<ulong> w = stackalloc ulong[8];
        ste.CopyTo(w);
        Memory.WriteUInt64s(SteAddress(sid), w);
    }

    public void WriteCd(ulong pa, in ContextDescriptor cd) =>
        Memory.WriteUInt64s(pa, [cd.W0, cd.W1, cd.W2, cd.W3, cd.W4, cd.W5, cd.W6, cd.W7]);

    // ---- Command queue ----

    public uint CmdqProd => Read(SmmuRegister.CMDQ_PROD);
    public uint CmdqCons => Read(SmmuRegister.CMDQ_CONS);
    public uint CmdqMask => (2u << CmdqLog2) - 1;

    /// <summary>Writes commands at PROD and publishes them with one CMDQ_PROD write.</summary>
    public void Submit(params Command[] commands)
    {
        uint prod = CmdqProd & CmdqMask;
        foreach (var c in commands)
        {
            WriteCommandAt(prod, c);
            prod = (prod + 1) & CmdqMask;
        }
        Write(SmmuRegister.CMDQ_PROD, prod);
    }

    public ulong CommandSlotAddress(uint pointer) => CmdqBase + (pointer & ((1u << CmdqLog2) - 1)) * 16UL;

    public void WriteCommandAt(uint pointer, Command c) => Memory.WriteUInt64s(CommandSlotAddress(pointer), [c.W0, c.W1]);

    /// <summary>Runs <paramref name="commands"/> followed by a CMD_SYNC; asserts nothing went wrong.</summary>
    public void SubmitAndSync(params Command[] commands)
    {
        Submit([.. commands, Command.Sync()]);
        uint err = (CmdqCons >> 24) & 0x7F;
        if (err != 0) throw new InvalidOperationException($"command queue stopped with CERROR {err} at CONS 0x{CmdqCons & CmdqMask:X}");
        (CmdqCons & CmdqMask).ShouldBe(CmdqProd & CmdqMask, "the command queue drained");
    }

    // ---- Event queue ----

    public uint EventqMask => (2u << EventqLog2) - 1;
    public ulong EventSlotAddress(uint pointer) => EventqBase + (pointer & ((1u << EventqLog2) - 1)) * 32UL;

    /// <summary>Reads every new event record (EVENTQ_PROD/CONS on page 1) and consumes it.</summary>
    public List<EventRecord> TakeEvents()
    {
        var list = new List<EventRecord>();
        uint prod = Read(SmmuRegister.EVENTQ_PROD_PAGE1);
        uint consReg = Read(SmmuRegister.EVENTQ_CONS_PAGE1);
        uint cons = consReg & EventqMask;
        Span<ulong> w = stackalloc ulong[4];
        while (cons != (prod & EventqMask))
        {
            Memory.ReadUInt64s(EventSlotAddress(cons), w);
            list.Add(new EventRecord(w[0], w[1], w[2], w[3]));
            cons = (cons + 1) & EventqMask;
        }
        // Acknowledge an overflow by copying OVFLG into OVACKFLG.
        Write(SmmuRegister.EVENTQ_CONS_PAGE1, cons | (prod & Q_OVFLG));
        return list;
    }

    public EventRecord SingleEvent()
    {
        var events = TakeEvents();
        events.Count.ShouldBe(1, $"exactly one event: {string.Join(", ", events)}");
        return events[0];
    }

    public void NoEvents()
    {
        var events = TakeEvents();
        events.ShouldBeEmpty($"no event expected: {string.Join(", ", events)}");
    }

    public TranslationResult Translate(uint sid, ulong iova, AccessKind access = AccessKind.Read, uint? ssid = null) =>
        Smmu.Translate(sid, ssid, iova, access);

    public ulong TranslateOk(uint sid, ulong iova, AccessKind access = AccessKind.Read, uint? ssid = null)
    {
        var r = Smmu.Translate(sid, ssid, iova, access);
        r.Status.ShouldBe(TranslationStatus.Success, $"translation of 0x{iova:X} for SID {sid}: {r}");
        return r.PhysicalAddress;
    }

    public static uint ReadLe32(IPhysicalMemory m, ulong address)
    {
        Span<byte> b = stackalloc byte[4];
        m.Read(address, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }
}

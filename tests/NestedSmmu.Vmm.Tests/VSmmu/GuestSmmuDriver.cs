using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Scenarios;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Vmm.Tests.VSmmu;

/// <summary>
/// The guest side of the tests: programs a vSMMU only through MMIO on the VM's bus and through
/// guest RAM, as a guest's SMMUv3 driver would (linear stream table, command and event queues,
/// STEs, CDs and stage-1 tables written into guest memory). Deliberately small and explicit.
/// </summary>
internal sealed class GuestSmmuDriver
{
    public const int StreamTableLog2 = 10;   // 1024 StreamIDs, linear
    public const int CmdqLog2 = 8;           // 256 commands
    public const int T0sz = 25;              // 39-bit VA, start level 1 with 4 KiB pages

    private readonly MmioBus _bus;
    private readonly IPhysicalMemory _ram;
    private readonly MemoryTableSpace _tables;

    public GuestSmmuDriver(MmioBus bus, ulong frameBase, IPhysicalMemory ram, ulong tableArea, int eventqLog2 = 6)
    {
        _bus = bus;
        _ram = ram;
        Frame = frameBase;
        EventqLog2 = eventqLog2;
        _tables = new MemoryTableSpace(ram, tableArea);
        StreamTable = _tables.AllocTable((ulong)StreamTableEntry.Size << StreamTableLog2);
        Cmdq = _tables.AllocTable((ulong)Command.Size << CmdqLog2);
        Eventq = _tables.AllocTable((ulong)EventRecord.Size << eventqLog2);
    }

    public ulong Frame { get; }
    public int EventqLog2 { get; }
    public ulong StreamTable { get; }
    public ulong Cmdq { get; }
    public ulong Eventq { get; }
    public int MmioReads { get; private set; }
    public int MmioWrites { get; private set; }
    public MemoryTableSpace TableSpace => _tables;

    public uint Read32(SmmuRegister r) { MmioReads++; return (uint)_bus.Read(Frame + (ulong)r, 4); }
    public ulong Read64(SmmuRegister r) { MmioReads++; return _bus.Read(Frame + (ulong)r, 8); }
    public void Write32(SmmuRegister r, uint v) { MmioWrites++; _bus.Write(Frame + (ulong)r, 4, v); }
    public void Write64(SmmuRegister r, ulong v) { MmioWrites++; _bus.Write(Frame + (ulong)r, 8, v); }

    /// <summary>The probe and reset sequence of a Linux-like driver, ending with the SMMU enabled.</summary>
    public void Init(bool enable = true)
    {
        Write64(SmmuRegister.STRTAB_BASE, StreamTable);
        Write32(SmmuRegister.STRTAB_BASE_CFG, StreamTableLog2); // FMT linear
        Write64(SmmuRegister.CMDQ_BASE, Cmdq | CmdqLog2);
        Write32(SmmuRegister.CMDQ_PROD, 0);
        Write32(SmmuRegister.CMDQ_CONS, 0);
        Write64(SmmuRegister.EVENTQ_BASE, Eventq | (uint)EventqLog2);
        Write32(SmmuRegister.EVENTQ_PROD, 0);
        Write32(SmmuRegister.EVENTQ_CONS, 0);
        Write32(SmmuRegister.IRQ_CTRL, Smmu.IRQ_CTRL_EVENTQ_IRQEN | Smmu.IRQ_CTRL_GERROR_IRQEN);
        Write32(SmmuRegister.CR0, Smmu.CR0_CMDQEN | Smmu.CR0_EVENTQEN);
        Submit(Command.CfgiAll(), Command.TlbiNsnhAll(), Command.Sync());
        if (enable) Write32(SmmuRegister.CR0, Smmu.CR0_CMDQEN | Smmu.CR0_EVENTQEN | Smmu.CR0_SMMUEN);
    }

    /// <summary>Writes commands at PROD and publishes them with one CMDQ_PROD write.</summary>
    public void Submit(params Command[] commands)
    {
        uint prod = Read32(SmmuRegister.CMDQ_PROD);
        uint mask = (2u << CmdqLog2) - 1;
        foreach (Command c in commands)
        {
            ulong slot = Cmdq + (ulong)(prod & ((1u << CmdqLog2) - 1)) * Command.Size;
            _ram.WriteUInt64(slot, c.W0);
            _ram.WriteUInt64(slot + 8, c.W1);
            prod = (prod + 1) & mask;
        }
        Write32(SmmuRegister.CMDQ_PROD, prod);
    }

    public void WriteSte(uint sid, StreamTableEntry ste)
    {
        Span<ulong> w = stackalloc ulong[StreamTableEntry.Words];
        ste.CopyTo(w);
        _ram.WriteUInt64s(StreamTable + (ulong)sid * StreamTableEntry.Size, w);
    }

    /// <summary>A stage-1 address space: its own tables (VMSAv8-64, 4 KiB, 39-bit VA) and a one-entry CD table.</summary>
    public (Tables Tables, ulong CdTable) AddressSpace(ushort asid)
    {
        var tables = new Tables(_tables, pageShift: 12, inputBits: 64 - T0sz, startLevel: 1, stage2: false);
        ContextDescriptor cd = ContextDescriptor.Create(tables.Root, asid, T0sz, tg0: 0, ips: AddressSize.Encode(48));
        ulong cdTable = _tables.AllocTable(ContextDescriptor.Size);
        _ram.WriteUInt64s(cdTable, [cd.W0, cd.W1, cd.W2, cd.W3, 0, 0, 0, 0]);
        return (tables, cdTable);
    }

    /// <summary>An S1 STE for the CD table, installed with CFGI_STE + CMD_SYNC.</summary>
    public void TranslateStream(uint sid, ulong cdTable)
    {
        WriteSte(sid, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: cdTable));
        Submit(Command.CfgiSte(sid), Command.Sync());
    }

    /// <summary>The event records between CONS and PROD, consumed (CONS moved to PROD).</summary>
    public List<EventRecord> DrainEvents()
    {
        var events = new List<EventRecord>();
        uint prod = Read32(SmmuRegister.EVENTQ_PROD), cons = Read32(SmmuRegister.EVENTQ_CONS);
        uint mask = (2u << EventqLog2) - 1, index = (1u << EventqLog2) - 1;
        Span<ulong> w = stackalloc ulong[4];
        while (((prod ^ cons) & mask) != 0)
        {
            _ram.ReadUInt64s(Eventq + (ulong)(cons & index) * EventRecord.Size, w);
            events.Add(new EventRecord(w[0], w[1], w[2], w[3]));
            cons = (cons + 1) & mask;
        }
        Write32(SmmuRegister.EVENTQ_CONS, cons | (prod & Smmu.QUEUE_OVFLG));
        return events;
    }
}

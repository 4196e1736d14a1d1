using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Guest.Smmu;

/// <summary>Choices a guest makes when it brings an SMMU up (Linux's defaults unless a test asks otherwise).</summary>
public sealed record ArmSmmuV3Options
{
    /// <summary>log2 of command-queue entries wanted; the driver takes min(this, IDR1.CMDQS).</summary>
    public int CmdqLog2Entries { get; init; } = 8;
    /// <summary>log2 of event-queue entries wanted; the driver takes min(this, IDR1.EVENTQS).</summary>
    public int EvtqLog2Entries { get; init; } = 7;
    /// <summary>Use a linear stream table even when IDR0.ST_LEVEL offers two levels.</summary>
    public bool ForceLinearStreamTable { get; init; }
    /// <summary>Input address bits of stage-1 domains (Linux: VA_BITS, 48, capped by the SMMU's IAS).</summary>
    public int Stage1InputBits { get; init; } = 48;

    public static ArmSmmuV3Options Default { get; } = new();
}

/// <summary>
/// A guest's SMMUv3 driver, written as Linux's drivers/iommu/arm/arm-smmu-v3/arm-smmu-v3.c behaves:
/// probe the ID registers, reset the SMMU (command queue, stream table, event queue, CR0/CR0ACK
/// handshakes), install STEs and CDs with CFGI_* + CMD_SYNC, issue invalidation batches (through a
/// CMDQV's VCMDQ when one accepts them), and drain the event queue and GERROR. It reaches the SMMU
/// only through its register window and guest RAM.
/// Split by concern: ArmSmmuV3Driver.StreamTable.cs (STEs, CDs, masters, domains),
/// ArmSmmuV3Driver.Commands.cs (batches, invalidation, queue errors), ArmSmmuV3Driver.Events.cs.
/// </summary>
public sealed partial class ArmSmmuV3Driver
{
    private readonly IPhysicalMemory _ram;
    private readonly GuestPageAllocator _pages;
    private GuestCommandQueue? _cmdq;
    private ulong _evtqBase;
    private int _evtqLog2;
    private uint _evtqCons;

    /// <param name="name">Device name for messages and reports (Linux prints the platform device, e.g. "arm-smmu-v3.0.auto").</param>
    /// <param name="bus">The guest's MMIO bus.</param>
    /// <param name="baseAddress">Register frame base from the IORT SMMUv3 node or the DT reg.</param>
    /// <param name="ram">Guest RAM by guest-physical address.</param>
    /// <param name="pages">Where queues, tables and page tables come from.</param>
    public ArmSmmuV3Driver(string name, MmioBus bus, ulong baseAddress, IPhysicalMemory ram, GuestPageAllocator pages,
        GuestLog? log = null, ArmSmmuV3Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(bus);
        ArgumentNullException.ThrowIfNull(ram);
        ArgumentNullException.ThrowIfNull(pages);
        Name = name;
        Registers = new RegisterWindow(bus, baseAddress);
        _ram = ram;
        _pages = pages;
        Log = log ?? new GuestLog();
        Options = options ?? ArmSmmuV3Options.Default;
    }

    public string Name { get; }
    public RegisterWindow Registers { get; }
    public GuestLog Log { get; }
    public ArmSmmuV3Options Options { get; }
    public ulong BaseAddress => Registers.Base;
    public IPhysicalMemory Ram => _ram;
    public GuestPageAllocator Pages => _pages;

    /// <summary>Traces every register access and every command this driver issues (a -v trace); null for none.</summary>
    public Action<string>? Trace
    {
        get => Registers.Trace;
        set
        {
            Registers.Trace = value;
            if (_cmdq is not null) _cmdq.Trace = value;
        }
    }

    /// <summary>What IDR0-5 said at probe (decoded with the Hardware codec).</summary>
    public SmmuFeatures Features { get; private set; } = new();
    public bool Probed { get; private set; }
    public bool Enabled { get; private set; }

    /// <summary>The SMMU's own command queue (null before <see cref="Reset"/>).</summary>
    public GuestCommandQueue? CommandQueue => _cmdq;

    /// <summary>A CMDQV (or other implementation) offering secondary queues; Linux's impl_ops->get_secondary_cmdq.</summary>
    public ISecondaryCommandQueues? SecondaryQueues { get; set; }

    /// <summary>
    /// Reads the ID registers (arm_smmu_device_hw_probe). False, with the reason logged, when this
    /// guest cannot use the SMMU (no stage 1, no AArch64 tables, no 4 KiB granule).
    /// </summary>
    public bool Probe()
    {
        uint idr0 = Registers.Read32((ulong)SmmuRegister.IDR0);
        uint idr1 = Registers.Read32((ulong)SmmuRegister.IDR1);
        uint idr3 = Registers.Read32((ulong)SmmuRegister.IDR3);
        uint idr5 = Registers.Read32((ulong)SmmuRegister.IDR5);
        uint iidr = Registers.Read32((ulong)SmmuRegister.IIDR);
        uint aidr = Registers.Read32((ulong)SmmuRegister.AIDR);
        Features = SmmuFeatures.FromIdrs(idr0, idr1, idr3, idr5, iidr, aidr);
        // IDR0.TTF [3:2]: bit 1 of the field (0b1x) means AArch64 tables are supported.
        if ((SmmuFeatures.IDR0_TTF.Get(idr0) & SmmuFeatures.TTF_AARCH64) == 0)
        {
            Log.Error(Name, "AArch64 table format not supported!");
            return false;
        }
        if (!Features.Stage1)
        {
            // This guest builds stage-1 domains only (what a VM's vSMMU offers, IDR0.S1P).
            Log.Error(Name, "no stage-1 translation support");
            return false;
        }
        if (!Features.Gran4K)
        {
            Log.Error(Name, "no 4K translation granule support");
            return false;
        }
        if (Features.SsidBits == 0) Log.Info(Name, "no substream (PASID) support");
        Log.Info(Name, $"ias {Features.IasBits}-bit, oas {Features.OasBits}-bit (features 0x{idr0:X8})");
        Probed = true;
        return true;
    }

    /// <summary>
    /// Brings the SMMU up as arm_smmu_device_reset does: disable, program CR1/CR2, the stream table,
    /// the command queue (enabled first so configuration and TLBs can be invalidated), the event
    /// queue, IRQ_CTRL, ATS checking, then SMMUEN. Allocates queues and the stream table on first use.
    /// </summary>
    public bool Reset()
    {
        if (!Probed && !Probe()) return false;
        uint cr0 = Registers.Read32((ulong)SmmuRegister.CR0);
        if ((cr0 & SmmuModel.CR0_SMMUEN) != 0)
        {
            Log.Warn(Name, "SMMU currently enabled! Resetting...");
            UpdateGbpa(SmmuModel.GBPA_ABORT, 0);
        }
        if (!WriteCr0(0)) return false;

        uint cr1 = (uint)(SmmuModel.CR1_TABLE_IC.Encode(SmmuModel.CR1_CACHE_WB) | SmmuModel.CR1_TABLE_OC.Encode(SmmuModel.CR1_CACHE_WB)
            | SmmuModel.CR1_TABLE_SH.Encode(SmmuModel.CR1_SH_ISH) | SmmuModel.CR1_QUEUE_IC.Encode(SmmuModel.CR1_CACHE_WB)
            | SmmuModel.CR1_QUEUE_OC.Encode(SmmuModel.CR1_CACHE_WB) | SmmuModel.CR1_QUEUE_SH.Encode(SmmuModel.CR1_SH_ISH));
        Registers.Write32((ulong)SmmuRegister.CR1, cr1);
        Registers.Write32((ulong)SmmuRegister.CR2, SmmuModel.CR2_PTM | SmmuModel.CR2_RECINVSID);

        InitStreamTable();
        Registers.Write64((ulong)SmmuRegister.STRTAB_BASE, (_strtabBase & SmmuModel.STRTAB_BASE_ADDR.Mask) | SmmuModel.STRTAB_BASE_RA);
        Registers.Write32((ulong)SmmuRegister.STRTAB_BASE_CFG, _strtabCfg);

        // Command queue.
        int cmdqLog2 = Math.Min(Options.CmdqLog2Entries, Features.CmdqLog2Max);
        if (_cmdq is null || _cmdq.Log2Entries != cmdqLog2)
        {
            ulong cmdqBase = _pages.Allocate((ulong)Command.Size << cmdqLog2);
            _cmdq = new GuestCommandQueue("cmdq", CommandPath.SmmuQueue, Registers, (ulong)SmmuRegister.CMDQ_PROD,
                (ulong)SmmuRegister.CMDQ_CONS, _ram, cmdqBase, cmdqLog2) { ErrorHandler = OnCommandQueueError, Trace = Registers.Trace };
        }
        _cmdq.ResetPointers();
        Registers.Write64((ulong)SmmuRegister.CMDQ_BASE, SmmuModel.Q_BASE_RA | (_cmdq.BaseAddress & SmmuModel.Q_BASE_ADDR.Mask) | SmmuModel.Q_BASE_LOG2SIZE.Encode((ulong)cmdqLog2));
        Registers.Write32((ulong)SmmuRegister.CMDQ_PROD, 0);
        Registers.Write32((ulong)SmmuRegister.CMDQ_CONS, 0);
        uint enables = SmmuModel.CR0_CMDQEN;
        if (!WriteCr0(enables)) return false;

        // Invalidate any cached configuration, then every TLB entry this SMMU may hold for us.
        IssueCommandsWithSync([Command.CfgiAll()]);
        if (Features.Hyp) IssueCommandsWithSync([Command.TlbiEl2All()]);
        IssueCommandsWithSync([Command.TlbiNsnhAll()]);

        // Event queue (PROD and CONS through page 1, as Linux addresses them).
        int evtqLog2 = Math.Min(Options.EvtqLog2Entries, Features.EventqLog2Max);
        if (_evtqBase == 0 || _evtqLog2 != evtqLog2)
        {
            _evtqLog2 = evtqLog2;
            _evtqBase = _pages.Allocate((ulong)EventRecord.Size << evtqLog2);
        }
        _evtqCons = 0;
        Registers.Write64((ulong)SmmuRegister.EVENTQ_BASE, SmmuModel.Q_BASE_RA | (_evtqBase & SmmuModel.Q_BASE_ADDR.Mask) | SmmuModel.Q_BASE_LOG2SIZE.Encode((ulong)evtqLog2));
        Registers.Write32((ulong)SmmuRegister.EVENTQ_PROD_PAGE1, 0);
        Registers.Write32((ulong)SmmuRegister.EVENTQ_CONS_PAGE1, 0);
        enables |= SmmuModel.CR0_EVENTQEN;
        if (!WriteCr0(enables)) return false;

        // Interrupts: wired, no MSI (arm_smmu_setup_irqs disables, then enables GERROR and EVTQ).
        Registers.Write32((ulong)SmmuRegister.IRQ_CTRL, 0);
        Registers.Write32((ulong)SmmuRegister.IRQ_CTRL, SmmuModel.IRQ_CTRL_GERROR_IRQEN | SmmuModel.IRQ_CTRL_EVENTQ_IRQEN);

        if (Features.Ats)
        {
            enables |= SmmuModel.CR0_ATSCHK;
            if (!WriteCr0(enables)) return false;
        }
        enables |= SmmuModel.CR0_SMMUEN;
        if (!WriteCr0(enables)) return false;
        Enabled = true;
        Log.Info(Name, $"enabled: {(_twoLevel ? "2-level" : "linear")} stream table, cmdq 2^{cmdqLog2}, evtq 2^{evtqLog2}");
        return true;
    }

    /// <summary>CR0 then poll CR0ACK (arm_smmu_write_reg_sync).</summary>
    private bool WriteCr0(uint value)
    {
        Registers.Write32((ulong)SmmuRegister.CR0, value);
        if (Registers.Poll32((ulong)SmmuRegister.CR0ACK, ack => ack == value, out uint ack)) return true;
        Log.Error(Name, $"CR0 update timed out: wrote 0x{value:X8}, CR0ACK 0x{ack:X8}");
        return false;
    }

    /// <summary>GBPA read-modify-write with the UPDATE handshake (arm_smmu_update_gbpa).</summary>
    private bool UpdateGbpa(uint set, uint clear)
    {
        const ulong gbpa = (ulong)SmmuRegister.GBPA;
        if (!Registers.Poll32(gbpa, v => (v & SmmuModel.GBPA_UPDATE) == 0, out uint reg))
        {
            Log.Error(Name, "GBPA not responding to update");
            return false;
        }
        reg = (reg & ~clear) | set;
        Registers.Write32(gbpa, reg | SmmuModel.GBPA_UPDATE);
        if (Registers.Poll32(gbpa, v => (v & SmmuModel.GBPA_UPDATE) == 0, out _)) return true;
        Log.Error(Name, "GBPA not responding to update");
        return false;
    }

    /// <summary>Turns translation off and sets GBPA to abort, as a driver's shutdown does.</summary>
    public void Disable()
    {
        WriteCr0(0);
        UpdateGbpa(SmmuModel.GBPA_ABORT, 0);
        Enabled = false;
    }
}

/// <summary>
/// Secondary command queues beside the SMMU's own (Linux's arm_smmu_impl_ops.get_secondary_cmdq):
/// the queue to carry a batch that starts with a given command, or null for the SMMU's queue.
/// </summary>
public interface ISecondaryCommandQueues
{
    GuestCommandQueue? GetSecondaryQueue(in Command first);
}

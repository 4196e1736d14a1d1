using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Vmm.VSmmu;

public sealed partial class AcceleratedVSmmu
{
    // Queue BASE registers (IHI 0070 6.3.25, 6.3.28): LOG2SIZE [4:0].
    private const int QUEUE_LOG2SIZE_HI = 4;
    private static readonly ulong QueueLog2SizeMask = Bits.Mask(QUEUE_LOG2SIZE_HI, 0);
    private static readonly ulong QueueBaseWritable = Smmu.QUEUE_BASE_ADDR_MASK | Smmu.QUEUE_BASE_RA | QueueLog2SizeMask;
    // CR1 (6.3.10): the queue and table cacheability/shareability fields [21:0]; CR2 (6.3.12): E2H, RECINVSID, PTM.
    private static readonly uint Cr1Writable = (uint)Bits.Mask(21, 0);
    private const uint Cr2Writable = Smmu.CR2_E2H | Smmu.CR2_RECINVSID | Smmu.CR2_PTM;
    private const uint IrqCtrlWritable = Smmu.IRQ_CTRL_GERROR_IRQEN | Smmu.IRQ_CTRL_PRIQ_IRQEN | Smmu.IRQ_CTRL_EVENTQ_IRQEN;
    // *_IRQ_CFG2 (6.3.19): MemAttr [3:0].
    private static readonly uint IrqCfg2Writable = (uint)Bits.Mask(3, 0);
    // QEMU's model decodes offset & 0xFFFF: page 1 mirrors every page-0 register (hw/arm/smmuv3.c smmu_read_mmio).
    private const ulong PageOffsetMask = MmioTrapCounters.PageSize - 1;

    private uint _cr0, _cr1, _cr2, _gbpa, _irqCtrl, _gerror, _gerrorn;
    private ulong _gerrorIrqCfg0; private uint _gerrorIrqCfg1, _gerrorIrqCfg2;
    private ulong _strtabBase; private uint _strtabBaseCfg;
    private ulong _cmdqBase, _eventqBase;
    private readonly SmmuQueue _cmdq = new(Command.Size);
    private readonly SmmuQueue _eventq = new(EventRecord.Size);
    private CommandError _cmdqErr;
    private bool _eventqOverflow, _eventqOverflowAck;
    private ulong _eventqIrqCfg0; private uint _eventqIrqCfg1, _eventqIrqCfg2;

    /// <summary>CR0.SMMUEN.</summary>
    public bool Enabled => (_cr0 & Smmu.CR0_SMMUEN) != 0;
    /// <summary>CR0.CMDQEN.</summary>
    public bool CommandQueueEnabled => (_cr0 & Smmu.CR0_CMDQEN) != 0;
    /// <summary>CR0.EVENTQEN.</summary>
    public bool EventQueueEnabled => (_cr0 & Smmu.CR0_EVENTQEN) != 0;
    /// <summary>Active, unacknowledged global errors (GERROR ^ GERRORN).</summary>
    public uint GlobalErrors => _gerror ^ _gerrorn;
    /// <summary>CMDQ_CONS.ERR.</summary>
    public CommandError CommandQueueError => _cmdqErr;
    /// <summary>GBPA.ABORT: with the SMMU disabled, incoming traffic aborts rather than bypasses.</summary>
    public bool GbpaAbort => (_gbpa & Smmu.GBPA_ABORT) != 0;

    private void ResetRegisters()
    {
        _cr0 = _cr1 = _cr2 = 0;
        _gbpa = Smmu.GbpaResetValue;
        _irqCtrl = 0;
        _gerror = _gerrorn = 0;
        _gerrorIrqCfg0 = 0; _gerrorIrqCfg1 = _gerrorIrqCfg2 = 0;
        _strtabBase = 0; _strtabBaseCfg = 0;
        _cmdqBase = _eventqBase = 0;
        _cmdq.Configure(0, 0, Features.CmdqLog2Max); _cmdq.Prod = _cmdq.Cons = 0; _cmdqErr = CommandError.None;
        _eventq.Configure(0, 0, Features.EventqLog2Max); _eventq.Prod = _eventq.Cons = 0;
        _eventqOverflow = _eventqOverflowAck = false;
        _eventqIrqCfg0 = 0; _eventqIrqCfg1 = _eventqIrqCfg2 = 0;
    }

    /// <summary>A guest read of the frame (a trap). Undefined offsets and widths read as zero; never throws.</summary>
    public ulong Read(ulong offset, int width)
    {
        if (offset >= Size) return 0;
        Traps.Record(offset, write: false);
        ServiceHostEvents();
        offset &= PageOffsetMask;
        if (width == 8)
        {
            // A 64-bit access to a pair of 32-bit registers is allowed (IHI 0070 6.2).
            if ((offset & 7) != 0) return 0;
            if (Is64Bit(offset)) return Read64(offset);
            return Read32(offset) | ((ulong)Read32(offset + 4) << 32);
        }
        if (width != 4 || (offset & 3) != 0) return 0;
        if (Is64Bit(offset & ~7UL)) return (uint)(Read64(offset & ~7UL) >> (int)((offset & 4) * 8));
        return Read32(offset);
    }

    /// <summary>A guest write to the frame (a trap). Read-only and undefined offsets ignore it; never throws.</summary>
    public void Write(ulong offset, int width, ulong value)
    {
        if (offset >= Size) return;
        Traps.Record(offset, write: true);
        ServiceHostEvents();
        offset &= PageOffsetMask;
        if (width == 8)
        {
            if ((offset & 7) != 0) return;
            if (Is64Bit(offset)) { Write64(offset, value); return; }
            Write32(offset, (uint)value);
            Write32(offset + 4, (uint)(value >> 32));
            return;
        }
        if (width != 4 || (offset & 3) != 0) return;
        ulong reg = offset & ~7UL;
        if (Is64Bit(reg))
        {
            int shift = (int)((offset & 4) * 8);
            Write64(reg, (Read64(reg) & ~(0xFFFF_FFFFUL << shift)) | ((value & 0xFFFF_FFFF) << shift));
            return;
        }
        Write32(offset, (uint)value);
    }

    private static bool Is64Bit(ulong offset) => SmmuRegisters.Is64Bit((SmmuRegister)offset);

    private ulong Read64(ulong offset) => (SmmuRegister)offset switch
    {
        SmmuRegister.GERROR_IRQ_CFG0 => _gerrorIrqCfg0,
        SmmuRegister.STRTAB_BASE => _strtabBase,
        SmmuRegister.CMDQ_BASE => _cmdqBase,
        SmmuRegister.EVENTQ_BASE => _eventqBase,
        SmmuRegister.EVENTQ_IRQ_CFG0 => _eventqIrqCfg0,
        _ => 0, // PRIQ_*: IDR0.PRI = 0, the PRI queue registers are RES0 (6.3.30).
    };

    private uint Read32(ulong offset) => (SmmuRegister)offset switch
    {
        SmmuRegister.IDR0 => Features.Idr0,
        SmmuRegister.IDR1 => Features.Idr1,
        SmmuRegister.IDR2 => Features.Idr2,
        SmmuRegister.IDR3 => Features.Idr3,
        SmmuRegister.IDR4 => Features.Idr4,
        SmmuRegister.IDR5 => Features.Idr5,
        SmmuRegister.IIDR => Features.Iidr,
        SmmuRegister.AIDR => Features.Aidr,
        SmmuRegister.CR0 => _cr0,
        // Every update completes inside the trap, so the ACK registers always match.
        SmmuRegister.CR0ACK => _cr0,
        SmmuRegister.CR1 => _cr1,
        SmmuRegister.CR2 => _cr2,
        SmmuRegister.GBPA => _gbpa,
        SmmuRegister.IRQ_CTRL => _irqCtrl,
        SmmuRegister.IRQ_CTRLACK => _irqCtrl,
        SmmuRegister.GERROR => _gerror,
        SmmuRegister.GERRORN => _gerrorn,
        SmmuRegister.GERROR_IRQ_CFG1 => _gerrorIrqCfg1,
        SmmuRegister.GERROR_IRQ_CFG2 => _gerrorIrqCfg2,
        SmmuRegister.STRTAB_BASE_CFG => _strtabBaseCfg,
        SmmuRegister.CMDQ_PROD => _cmdq.Prod,
        SmmuRegister.CMDQ_CONS => _cmdq.Cons | ((uint)_cmdqErr << Smmu.CONS_ERR_LO),
        SmmuRegister.EVENTQ_PROD => _eventq.Prod | (_eventqOverflow ? Smmu.QUEUE_OVFLG : 0),
        SmmuRegister.EVENTQ_CONS => _eventq.Cons | (_eventqOverflowAck ? Smmu.QUEUE_OVFLG : 0),
        SmmuRegister.EVENTQ_IRQ_CFG1 => _eventqIrqCfg1,
        SmmuRegister.EVENTQ_IRQ_CFG2 => _eventqIrqCfg2,
        _ => 0,
    };

    private void Write64(ulong offset, ulong value)
    {
        switch ((SmmuRegister)offset)
        {
            case SmmuRegister.GERROR_IRQ_CFG0: _gerrorIrqCfg0 = value & Smmu.IRQ_CFG0_ADDR_MASK; break;
            case SmmuRegister.STRTAB_BASE:
                // Writable only while the SMMU is disabled (IHI 0070 6.3.23).
                if (!Enabled) _strtabBase = value & (Smmu.STRTAB_BASE_ADDR_MASK | Smmu.QUEUE_BASE_RA);
                break;
            case SmmuRegister.CMDQ_BASE:
                if (!CommandQueueEnabled)
                {
                    _cmdqBase = value & QueueBaseWritable;
                    // LOG2SIZE beyond IDR1.CMDQS (19) behaves as the maximum (6.3.25).
                    _cmdq.Configure(value & Smmu.QUEUE_BASE_ADDR_MASK, (int)(value & QueueLog2SizeMask), Features.CmdqLog2Max);
                }
                break;
            case SmmuRegister.EVENTQ_BASE:
                if (!EventQueueEnabled)
                {
                    _eventqBase = value & QueueBaseWritable;
                    _eventq.Configure(value & Smmu.QUEUE_BASE_ADDR_MASK, (int)(value & QueueLog2SizeMask), Features.EventqLog2Max);
                }
                break;
            case SmmuRegister.EVENTQ_IRQ_CFG0: _eventqIrqCfg0 = value & Smmu.IRQ_CFG0_ADDR_MASK; break;
        }
    }

    private void Write32(ulong offset, uint value)
    {
        switch ((SmmuRegister)offset)
        {
            case SmmuRegister.CR0: WriteCr0(value & Smmu.CR0_WritableMask); break;
            case SmmuRegister.CR1:
                // Writable only while the SMMU and every queue are disabled (6.3.10).
                if ((_cr0 & (Smmu.CR0_SMMUEN | Smmu.CR0_CMDQEN | Smmu.CR0_EVENTQEN | Smmu.CR0_PRIQEN)) == 0) _cr1 = value & Cr1Writable;
                break;
            case SmmuRegister.CR2: if (!Enabled) _cr2 = value & Cr2Writable; break;
            case SmmuRegister.GBPA: WriteGbpa(value); break;
            case SmmuRegister.IRQ_CTRL: _irqCtrl = value & IrqCtrlWritable; break;
            case SmmuRegister.GERRORN: WriteGerrorn(value & Smmu.GERROR_Mask); break;
            case SmmuRegister.GERROR_IRQ_CFG1: _gerrorIrqCfg1 = value; break;
            case SmmuRegister.GERROR_IRQ_CFG2: _gerrorIrqCfg2 = value & IrqCfg2Writable; break;
            case SmmuRegister.STRTAB_BASE_CFG: if (!Enabled) _strtabBaseCfg = value & GuestStreamTable.WritableMask; break;
            case SmmuRegister.CMDQ_PROD:
                _cmdq.Prod = value & _cmdq.PointerMask;
                ConsumeCommands();
                break;
            case SmmuRegister.CMDQ_CONS:
                // CONS is the SMMU's pointer: software may set it only while the queue is disabled (6.3.27).
                if (!CommandQueueEnabled) { _cmdq.Cons = value & _cmdq.PointerMask; _cmdqErr = CommandError.None; }
                break;
            case SmmuRegister.EVENTQ_PROD:
                if (!EventQueueEnabled) { _eventq.Prod = value & _eventq.PointerMask; _eventqOverflow = (value & Smmu.QUEUE_OVFLG) != 0; }
                break;
            case SmmuRegister.EVENTQ_CONS:
                _eventq.Cons = value & _eventq.PointerMask;
                _eventqOverflowAck = (value & Smmu.QUEUE_OVFLG) != 0;
                break;
            case SmmuRegister.EVENTQ_IRQ_CFG1: _eventqIrqCfg1 = value; break;
            case SmmuRegister.EVENTQ_IRQ_CFG2: _eventqIrqCfg2 = value & IrqCfg2Writable; break;
        }
    }

    private void WriteCr0(uint value)
    {
        uint old = _cr0;
        _cr0 = value;
        uint changed = old ^ value;
        if ((changed & Smmu.CR0_EVENTQEN) != 0)
        {
            // smmuv3_accel_alloc_veventq: the vEVENTQ follows the guest's event queue, sized like it.
            if (EventQueueEnabled) EnsureVeventq();
            else FreeVeventq();
        }
        if ((changed & Smmu.CR0_SMMUEN) != 0)
        {
            // Enabling or disabling the SMMU changes what every STE means: each device goes to its
            // guest STE's HWPT (enabled) or to the GBPA HWPT (disabled).
            InstallAll();
        }
        if ((value & Smmu.CR0_CMDQEN) != 0 && (old & Smmu.CR0_CMDQEN) == 0) ConsumeCommands();
    }

    private void WriteGbpa(uint value)
    {
        // Software sets UPDATE with the new value; the update completes in the trap and UPDATE reads 0 (6.3.14).
        if ((value & Smmu.GBPA_UPDATE) == 0) return;
        _gbpa = value & Smmu.GBPA_WritableMask;
        // smmuv3_accel_attach_gbpa_hwpt: with the SMMU disabled, GBPA is what the devices see.
        if (!Enabled) InstallAll();
    }

    private void WriteGerrorn(uint value)
    {
        uint acked = (_gerror ^ _gerrorn) & ~(_gerror ^ value);
        _gerrorn = value;
        // Acknowledging CMDQ_ERR lets the command queue run again from CONS (IHI 0070 7.1).
        if ((acked & Smmu.GERROR_CMDQ_ERR) != 0 && _cmdqErr != CommandError.None)
        {
            _cmdqErr = CommandError.None;
            ConsumeCommands();
        }
    }

    /// <summary>Flags a global error: toggles its GERROR bit so it differs from GERRORN, and signals it.</summary>
    private void SetGlobalError(uint bit)
    {
        if (((_gerror ^ _gerrorn) & bit) != 0) return; // already active and unacknowledged
        _gerror ^= bit;
        if ((_irqCtrl & Smmu.IRQ_CTRL_GERROR_IRQEN) != 0) Raise(SmmuInterrupt.GlobalError, _gerrorIrqCfg0, _gerrorIrqCfg1);
    }
}

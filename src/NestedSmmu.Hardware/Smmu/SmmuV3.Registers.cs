namespace NestedSmmu.Hardware.Smmu;

public sealed partial class SmmuV3
{
    // Register fields (IHI 0070 6.3): single bits as constants, multi-bit fields as RegisterFields,
    // public so that drivers (the emulated host's arm-smmu-v3) program with the same declarations.
    // CR0 (6.3.9)
    public const uint CR0_SMMUEN = 1u << 0, CR0_PRIQEN = 1u << 1, CR0_EVENTQEN = 1u << 2, CR0_CMDQEN = 1u << 3, CR0_ATSCHK = 1u << 4;
    public static readonly RegisterField CR0_VMW = new(8, 6);
    // CR1 (6.3.10): cacheability and shareability of queue and table accesses.
    public static readonly RegisterField CR1_QUEUE_IC = new(1, 0), CR1_QUEUE_OC = new(3, 2), CR1_QUEUE_SH = new(5, 4),
        CR1_TABLE_IC = new(7, 6), CR1_TABLE_OC = new(9, 8), CR1_TABLE_SH = new(11, 10);
    /// <summary>CR1 cacheability 0b01: write-back cacheable; shareability 0b11: inner shareable.</summary>
    public const uint CR1_CACHE_WB = 1, CR1_SH_ISH = 3;
    // CR2 (6.3.12): E2H [0], RECINVSID [1], PTM [2]
    public const uint CR2_E2H = 1u << 0, CR2_RECINVSID = 1u << 1, CR2_PTM = 1u << 2;
    private static readonly uint CR0_WritableMask = CR0_SMMUEN | CR0_PRIQEN | CR0_EVENTQEN | CR0_CMDQEN | CR0_ATSCHK | (uint)CR0_VMW.Mask;
    // GBPA (6.3.14): ABORT [20], UPDATE [31]; reset SHCFG = 0b01 (use incoming).
    public const uint GBPA_ABORT = 1u << 20, GBPA_UPDATE = 1u << 31;
    private const uint GbpaResetValue = 1u << 12;
    private const uint GBPA_WritableMask = 0x0FFF_FFFFu & ~(1u << 31) | GBPA_ABORT;
    // IRQ_CTRL (6.3.16)
    public const uint IRQ_CTRL_GERROR_IRQEN = 1u << 0, IRQ_CTRL_PRIQ_IRQEN = 1u << 1, IRQ_CTRL_EVENTQ_IRQEN = 1u << 2;
    // GERROR (6.3.18)
    public const uint GERROR_CMDQ_ERR = 1u << 0, GERROR_EVENTQ_ABT_ERR = 1u << 2, GERROR_PRIQ_ABT_ERR = 1u << 3,
        GERROR_MSI_CMDQ_ABT_ERR = 1u << 4, GERROR_MSI_EVENTQ_ABT_ERR = 1u << 5, GERROR_MSI_PRIQ_ABT_ERR = 1u << 6,
        GERROR_MSI_GERROR_ABT_ERR = 1u << 7, GERROR_SFM_ERR = 1u << 8;
    private const uint GERROR_Mask = 0x1FD;
    // *_IRQ_CFG0 (6.3.19): ADDR [51:2]
    public static readonly RegisterField IRQ_CFG0_ADDR = new(51, 2);
    // STRTAB_BASE (6.3.23): RA [62], ADDR [51:6]
    public const ulong STRTAB_BASE_RA = 1UL << 62;
    public static readonly RegisterField STRTAB_BASE_ADDR = new(51, 6);
    // STRTAB_BASE_CFG (6.3.24): LOG2SIZE [5:0], SPLIT [10:6], FMT [17:16]
    public static readonly RegisterField STRTAB_BASE_CFG_LOG2SIZE = new(5, 0), STRTAB_BASE_CFG_SPLIT = new(10, 6), STRTAB_BASE_CFG_FMT = new(17, 16);
    public const uint STRTAB_FMT_LINEAR = 0, STRTAB_FMT_2LEVEL = 1;
    private static readonly uint STRTAB_BASE_CFG_WritableMask =
        (uint)(STRTAB_BASE_CFG_LOG2SIZE.Mask | STRTAB_BASE_CFG_SPLIT.Mask | STRTAB_BASE_CFG_FMT.Mask);
    // Queue BASE registers (6.3.25, 6.3.27, 6.3.29): RA [62], ADDR [51:5], LOG2SIZE [4:0]
    public const ulong Q_BASE_RA = 1UL << 62;
    public static readonly RegisterField Q_BASE_ADDR = new(51, 5), Q_BASE_LOG2SIZE = new(4, 0);
    // Queue pointers: CMDQ_CONS.ERR [30:24]; EVENTQ_PROD.OVFLG and EVENTQ_CONS.OVACKFLG [31].
    public static readonly RegisterField CMDQ_CONS_ERR = new(30, 24);
    public const uint Q_OVFLG = 1u << 31;

    private uint _cr0, _cr1, _cr2, _gbpa, _irqCtrl, _gerror, _gerrorn;
    private ulong _gerrorIrqCfg0; private uint _gerrorIrqCfg1, _gerrorIrqCfg2;
    private ulong _strtabBase; private uint _strtabBaseCfg;
    private ulong _cmdqBase, _eventqBase, _priqBase;
    private readonly SmmuQueue _cmdq = new(Command.Size);
    private readonly SmmuQueue _eventq = new(EventRecord.Size);
    private CommandError _cmdqErr;
    private bool _eventqOverflow, _eventqOverflowAck;
    private ulong _eventqIrqCfg0; private uint _eventqIrqCfg1, _eventqIrqCfg2;
    // PRI queue: stored so a driver reads back what it wrote; page requests are not modelled, so nothing is ever queued.
    private uint _priqProd, _priqCons; private ulong _priqIrqCfg0; private uint _priqIrqCfg1, _priqIrqCfg2;

    public bool Enabled => (_cr0 & CR0_SMMUEN) != 0;
    public bool CommandQueueEnabled => (_cr0 & CR0_CMDQEN) != 0;
    public bool EventQueueEnabled => (_cr0 & CR0_EVENTQEN) != 0;
    public uint GlobalErrors => _gerror ^ _gerrorn;
    public CommandError CommandQueueError => _cmdqErr;

    /// <summary>Reads a register. Undefined offsets read as zero; reads have no side effects.</summary>
    public ulong Read(ulong offset, int width)
    {
        if (offset >= Size || (width != 4 && width != 8)) return 0;
        // Page 1 holds only the queue pointers (EVENTQ_PROD/CONS, PRIQ_PROD/CONS); the rest is reserved.
        if (offset >= (ulong)SmmuRegister.Page1)
        {
            ulong inPage = offset - (ulong)SmmuRegister.Page1;
            if (inPage is not ((ulong)SmmuRegister.EVENTQ_PROD or (ulong)SmmuRegister.EVENTQ_CONS
                or (ulong)SmmuRegister.PRIQ_PROD or (ulong)SmmuRegister.PRIQ_CONS)) return 0;
            offset = inPage;
        }
        if (width == 8)
        {
            // A 64-bit access to a pair of 32-bit registers reads both (IHI 0070 6.2: 64-bit accesses
            // to 64-bit registers are single-copy atomic; to 32-bit pairs they are allowed).
            if ((offset & 7) != 0) return 0;
            if (Is64BitRegister(offset)) return Read64(offset);
            return Read32(offset) | ((ulong)Read32(offset + 4) << 32);
        }
        if ((offset & 3) != 0) return 0;
        if (Is64BitRegister(offset & ~7UL)) return (uint)(Read64(offset & ~7UL) >> (int)((offset & 4) * 8));
        return Read32(offset);
    }

    /// <summary>Writes a register. Writes to read-only or undefined offsets are ignored; never throws.</summary>
    public void Write(ulong offset, int width, ulong value)
    {
        if (offset >= Size || (width != 4 && width != 8)) return;
        if (offset >= (ulong)SmmuRegister.Page1)
        {
            ulong inPage = offset - (ulong)SmmuRegister.Page1;
            if (inPage is not ((ulong)SmmuRegister.EVENTQ_PROD or (ulong)SmmuRegister.EVENTQ_CONS
                or (ulong)SmmuRegister.PRIQ_PROD or (ulong)SmmuRegister.PRIQ_CONS)) return;
            offset = inPage;
        }
        if (width == 8)
        {
            if ((offset & 7) != 0) return;
            if (Is64BitRegister(offset)) { Write64(offset, value); return; }
            Write32(offset, (uint)value);
            Write32(offset + 4, (uint)(value >> 32));
            return;
        }
        if ((offset & 3) != 0) return;
        ulong reg = offset & ~7UL;
        if (Is64BitRegister(reg))
        {
            ulong old = Read64(reg);
            int shift = (int)((offset & 4) * 8);
            ulong merged = (old & ~(0xFFFF_FFFFUL << shift)) | ((value & 0xFFFF_FFFF) << shift);
            Write64(reg, merged);
            return;
        }
        Write32(offset, (uint)value);
    }

    /// <summary>Convenience for drivers and tests: a register write by name.</summary>
    public void WriteRegister(SmmuRegister register, ulong value) =>
        Write((ulong)register, SmmuRegisters.Is64Bit(register) ? 8 : 4, value);

    public ulong ReadRegister(SmmuRegister register) =>
        Read((ulong)register, SmmuRegisters.Is64Bit(register) ? 8 : 4);

    private static bool Is64BitRegister(ulong offset) => offset is (ulong)SmmuRegister.GERROR_IRQ_CFG0 or (ulong)SmmuRegister.STRTAB_BASE
        or (ulong)SmmuRegister.CMDQ_BASE or (ulong)SmmuRegister.EVENTQ_BASE or (ulong)SmmuRegister.EVENTQ_IRQ_CFG0
        or (ulong)SmmuRegister.PRIQ_BASE or (ulong)SmmuRegister.PRIQ_IRQ_CFG0;

    private ulong Read64(ulong offset) => (SmmuRegister)offset switch
    {
        SmmuRegister.GERROR_IRQ_CFG0 => _gerrorIrqCfg0,
        SmmuRegister.STRTAB_BASE => _strtabBase,
        SmmuRegister.CMDQ_BASE => _cmdqBase,
        SmmuRegister.EVENTQ_BASE => _eventqBase,
        SmmuRegister.EVENTQ_IRQ_CFG0 => _eventqIrqCfg0,
        SmmuRegister.PRIQ_BASE => _priqBase,
        SmmuRegister.PRIQ_IRQ_CFG0 => _priqIrqCfg0,
        _ => 0,
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
        // Updates complete at once in this model, so the ACK registers always match.
        SmmuRegister.CR0ACK => _cr0,
        SmmuRegister.CR1 => _cr1,
        SmmuRegister.CR2 => _cr2,
        SmmuRegister.STATUSR => 0,
        SmmuRegister.GBPA => _gbpa,
        SmmuRegister.IRQ_CTRL => _irqCtrl,
        SmmuRegister.IRQ_CTRLACK => _irqCtrl,
        SmmuRegister.GERROR => _gerror,
        SmmuRegister.GERRORN => _gerrorn,
        SmmuRegister.GERROR_IRQ_CFG1 => _gerrorIrqCfg1,
        SmmuRegister.GERROR_IRQ_CFG2 => _gerrorIrqCfg2,
        SmmuRegister.STRTAB_BASE_CFG => _strtabBaseCfg,
        SmmuRegister.CMDQ_PROD => _cmdq.Prod,
        SmmuRegister.CMDQ_CONS => _cmdq.Cons | (uint)CMDQ_CONS_ERR.Encode((ulong)_cmdqErr),
        SmmuRegister.EVENTQ_PROD => _eventq.Prod | (_eventqOverflow ? Q_OVFLG : 0),
        SmmuRegister.EVENTQ_CONS => _eventq.Cons | (_eventqOverflowAck ? Q_OVFLG : 0),
        SmmuRegister.EVENTQ_IRQ_CFG1 => _eventqIrqCfg1,
        SmmuRegister.EVENTQ_IRQ_CFG2 => _eventqIrqCfg2,
        SmmuRegister.PRIQ_PROD => _priqProd,
        SmmuRegister.PRIQ_CONS => _priqCons,
        SmmuRegister.PRIQ_IRQ_CFG1 => _priqIrqCfg1,
        SmmuRegister.PRIQ_IRQ_CFG2 => _priqIrqCfg2,
        _ => 0,
    };

    private void Write64(ulong offset, ulong value)
    {
        switch ((SmmuRegister)offset)
        {
            case SmmuRegister.GERROR_IRQ_CFG0: _gerrorIrqCfg0 = value & IRQ_CFG0_ADDR.Mask; break;
            case SmmuRegister.STRTAB_BASE:
                // Writable only while the SMMU is disabled (6.3.23); otherwise the write is ignored.
                if (!Enabled) _strtabBase = value & (STRTAB_BASE_ADDR.Mask | STRTAB_BASE_RA);
                break;
            case SmmuRegister.CMDQ_BASE:
                if (!CommandQueueEnabled)
                {
                    _cmdqBase = value & (Q_BASE_ADDR.Mask | Q_BASE_RA | Q_BASE_LOG2SIZE.Mask);
                    _cmdq.Configure(_cmdqBase & Q_BASE_ADDR.Mask, (int)Q_BASE_LOG2SIZE.Get(value), Features.CmdqLog2Max);
                }
                break;
            case SmmuRegister.EVENTQ_BASE:
                if (!EventQueueEnabled)
                {
                    _eventqBase = value & (Q_BASE_ADDR.Mask | Q_BASE_RA | Q_BASE_LOG2SIZE.Mask);
                    _eventq.Configure(_eventqBase & Q_BASE_ADDR.Mask, (int)Q_BASE_LOG2SIZE.Get(value), Features.EventqLog2Max);
                }
                break;
            case SmmuRegister.EVENTQ_IRQ_CFG0: _eventqIrqCfg0 = value & IRQ_CFG0_ADDR.Mask; break;
            case SmmuRegister.PRIQ_BASE: if ((_cr0 & CR0_PRIQEN) == 0) _priqBase = value & (Q_BASE_ADDR.Mask | Q_BASE_RA | Q_BASE_LOG2SIZE.Mask); break;
            case SmmuRegister.PRIQ_IRQ_CFG0: _priqIrqCfg0 = value & IRQ_CFG0_ADDR.Mask; break;
        }
    }

    private void Write32(ulong offset, uint value)
    {
        switch ((SmmuRegister)offset)
        {
            case SmmuRegister.CR0: WriteCr0(value & CR0_WritableMask); break;
            case SmmuRegister.CR1: if ((_cr0 & (CR0_SMMUEN | CR0_CMDQEN | CR0_EVENTQEN | CR0_PRIQEN)) == 0) _cr1 = value & 0x3F_FFFF; break;
            case SmmuRegister.CR2: if (!Enabled) _cr2 = value & 0x7; break;
            case SmmuRegister.GBPA:
                // Software sets UPDATE with the new value; the update completes at once and UPDATE reads 0.
                if ((value & GBPA_UPDATE) != 0) _gbpa = value & GBPA_WritableMask;
                break;
            case SmmuRegister.IRQ_CTRL: _irqCtrl = value & 0x7; break;
            case SmmuRegister.GERRORN: WriteGerrorn(value & GERROR_Mask); break;
            case SmmuRegister.GERROR_IRQ_CFG1: _gerrorIrqCfg1 = value; break;
            case SmmuRegister.GERROR_IRQ_CFG2: _gerrorIrqCfg2 = value & 0xF; break;
            case SmmuRegister.STRTAB_BASE_CFG: if (!Enabled) _strtabBaseCfg = value & STRTAB_BASE_CFG_WritableMask; break;
            case SmmuRegister.CMDQ_PROD:
                _cmdq.Prod = value & _cmdq.PointerMask;
                ConsumeCommands();
                break;
            case SmmuRegister.CMDQ_CONS:
                // Software may set CONS only while the queue is disabled (it is the SMMU's pointer).
                if (!CommandQueueEnabled) { _cmdq.Cons = value & _cmdq.PointerMask; _cmdqErr = CommandError.None; }
                break;
            case SmmuRegister.EVENTQ_PROD:
                if (!EventQueueEnabled) { _eventq.Prod = value & _eventq.PointerMask; _eventqOverflow = (value & Q_OVFLG) != 0; }
                break;
            case SmmuRegister.EVENTQ_CONS:
                _eventq.Cons = value & _eventq.PointerMask;
                _eventqOverflowAck = (value & Q_OVFLG) != 0;
                break;
            case SmmuRegister.EVENTQ_IRQ_CFG1: _eventqIrqCfg1 = value; break;
            case SmmuRegister.EVENTQ_IRQ_CFG2: _eventqIrqCfg2 = value & 0xF; break;
            case SmmuRegister.PRIQ_PROD: if ((_cr0 & CR0_PRIQEN) == 0) _priqProd = value; break;
            case SmmuRegister.PRIQ_CONS: _priqCons = value; break;
            case SmmuRegister.PRIQ_IRQ_CFG1: _priqIrqCfg1 = value; break;
            case SmmuRegister.PRIQ_IRQ_CFG2: _priqIrqCfg2 = value & 0xF; break;
        }
    }

    private void WriteCr0(uint value)
    {
        uint old = _cr0;
        _cr0 = value;
        if (((old ^ value) & CR0_SMMUEN) != 0)
        {
            // Enabling or disabling the SMMU changes what every cached structure means.
            InvalidateAllConfig();
        }
        if ((value & CR0_CMDQEN) != 0 && (old & CR0_CMDQEN) == 0) ConsumeCommands();
    }

    private void WriteGerrorn(uint value)
    {
        uint acked = (_gerror ^ _gerrorn) & ~(_gerror ^ value);
        _gerrorn = value;
        // Acknowledging CMDQ_ERR lets the command queue run again from CONS (IHI 0070 7.1).
        if ((acked & GERROR_CMDQ_ERR) != 0 && _cmdqErr != CommandError.None)
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
        if ((_irqCtrl & IRQ_CTRL_GERROR_IRQEN) != 0) Raise(SmmuInterrupt.GlobalError, _gerrorIrqCfg0, _gerrorIrqCfg1);
    }
}

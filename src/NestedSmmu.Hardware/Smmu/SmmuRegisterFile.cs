using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Hardware.Smmu;

/// <summary>What the owner of an <see cref="SmmuRegisterFile"/> does when a register write has an effect beyond storing a value.</summary>
public interface ISmmuRegisterEffects
{
    /// <summary>CR0 was written (CR0ACK follows at once). Called before <see cref="CommandsPending"/> when CMDQEN rises.</summary>
    void ControlChanged(uint oldCr0, uint newCr0);

    /// <summary>GBPA was updated (a write with UPDATE set).</summary>
    void GlobalBypassChanged();

    /// <summary>
    /// The command queue may have work: CMDQ_PROD was written, CMDQEN rose, or software
    /// acknowledged a command-queue error through GERRORN (IHI 0070 7.1).
    /// </summary>
    void CommandsPending();

    /// <summary>An interrupt source fired with its IRQ enabled; <paramref name="msiAddress"/>/<paramref name="msiData"/> are its *_IRQ_CFG0/1.</summary>
    void Signal(SmmuInterrupt source, ulong msiAddress, uint msiData);
}

/// <summary>How the second 64 KiB page of the register frame decodes.</summary>
public enum SmmuPage1Decoding
{
    /// <summary>As the architecture lays it out (IHI 0070 6.1): page 1 holds only EVENTQ_PROD/CONS and PRIQ_PROD/CONS.</summary>
    QueuePointersOnly,

    /// <summary>As QEMU's model decodes it (offset &amp; 0xFFFF, hw/arm/smmuv3.c smmu_read_mmio): page 1 mirrors page 0.</summary>
    MirrorsPage0,
}

/// <summary>Why <see cref="SmmuRegisterFile.WriteEvent"/> did not record an event.</summary>
public enum EventWriteResult
{
    /// <summary>Written; EVENTQ_PROD moved on.</summary>
    Written,
    /// <summary>CR0.EVENTQEN is clear: the event is lost.</summary>
    QueueDisabled,
    /// <summary>The queue is full: the event is lost and the overflow is reported through OVFLG (IHI 0070 7.4.1).</summary>
    Overflow,
    /// <summary>The entry's address aborts: GERROR.EVENTQ_ABT_ERR is raised (IHI 0070 7.4.2).</summary>
    Abort,
}

/// <summary>
/// The SMMUv3 programming interface of one security state (IHI 0070 6.3): the register state, its
/// access rules (32/64-bit accesses, writable fields, registers writable only while disabled), the
/// command and event queue pointers, GERROR/GERRORN and interrupt signalling. The SMMUv3 model and
/// the VMM's guest-visible vSMMU both own one, so the architected register behaviour is written once;
/// what a write does beyond storing a value belongs to the owner (<see cref="ISmmuRegisterEffects"/>).
/// </summary>
/// <remarks>
/// The PRI queue registers are stored so that a driver reads back what it wrote when IDR0.PRI is
/// set; page requests are not modelled, so nothing is ever queued. With IDR0.PRI clear they are
/// RES0 (6.3.30-6.3.34). Guest or driver mistakes never throw: undefined offsets read as zero and
/// ignore writes.
/// </remarks>
public sealed class SmmuRegisterFile
{
    private readonly SmmuFeatures _features;
    private readonly ISmmuRegisterEffects _effects;
    private readonly SmmuPage1Decoding _page1;

    private uint _cr0, _cr1, _cr2, _gbpa, _irqCtrl, _gerror, _gerrorn;
    private ulong _gerrorIrqCfg0; private uint _gerrorIrqCfg1, _gerrorIrqCfg2;
    private ulong _strtabBase; private uint _strtabBaseCfg;
    private ulong _cmdqBase, _eventqBase, _priqBase;
    private bool _eventqOverflow, _eventqOverflowAck;
    private ulong _eventqIrqCfg0; private uint _eventqIrqCfg1, _eventqIrqCfg2;
    private uint _priqProd, _priqCons; private ulong _priqIrqCfg0; private uint _priqIrqCfg1, _priqIrqCfg2;

    // Writable fields: CR1 (6.3.10) the queue and table attributes [21:0]; CR2 (6.3.12) E2H, RECINVSID, PTM;
    // IRQ_CTRL (6.3.16) the three IRQENs; *_IRQ_CFG2 (6.3.19) MemAttr [3:0].
    private static readonly uint Cr1Writable = (uint)Bits.Mask(21, 0);
    private const uint Cr2Writable = SmmuV3.CR2_E2H | SmmuV3.CR2_RECINVSID | SmmuV3.CR2_PTM;
    private const uint IrqCtrlWritable = SmmuV3.IRQ_CTRL_GERROR_IRQEN | SmmuV3.IRQ_CTRL_PRIQ_IRQEN | SmmuV3.IRQ_CTRL_EVENTQ_IRQEN;
    private static readonly uint IrqCfg2Writable = (uint)Bits.Mask(3, 0);
    private static readonly uint StrtabBaseCfgWritable =
        (uint)(SmmuV3.STRTAB_BASE_CFG_LOG2SIZE.Mask | SmmuV3.STRTAB_BASE_CFG_SPLIT.Mask | SmmuV3.STRTAB_BASE_CFG_FMT.Mask);
    private static readonly ulong QueueBaseWritable = SmmuV3.Q_BASE_ADDR.Mask | SmmuV3.Q_BASE_RA | SmmuV3.Q_BASE_LOG2SIZE.Mask;
    private const ulong PageSize = (ulong)SmmuRegister.Page1;

    /// <summary>A register file in its reset state.</summary>
    public SmmuRegisterFile(SmmuFeatures features, ISmmuRegisterEffects effects, SmmuPage1Decoding page1 = SmmuPage1Decoding.QueuePointersOnly)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(effects);
        _features = features;
        _effects = effects;
        _page1 = page1;
        Reset();
    }

    /// <summary>The command queue (CMDQ_BASE, CMDQ_PROD, CMDQ_CONS); its owner consumes it and moves CONS.</summary>
    public SmmuQueue CommandQueue { get; } = new(Command.Size);

    /// <summary>The event queue (EVENTQ_BASE, EVENTQ_PROD, EVENTQ_CONS); written through <see cref="WriteEvent"/>.</summary>
    public SmmuQueue EventQueue { get; } = new(EventRecord.Size);

    /// <summary>CMDQ_CONS.ERR: set by <see cref="StopCommandQueue"/>, cleared when the error is acknowledged.</summary>
    public CommandError CommandQueueError { get; private set; }

    public uint Cr0 => _cr0;
    public uint Cr1 => _cr1;
    public uint Cr2 => _cr2;
    public uint Gbpa => _gbpa;
    public uint IrqCtrl => _irqCtrl;
    public ulong StrtabBase => _strtabBase;
    public uint StrtabBaseCfg => _strtabBaseCfg;

    /// <summary>CR0.SMMUEN.</summary>
    public bool Enabled => (_cr0 & SmmuV3.CR0_SMMUEN) != 0;
    /// <summary>CR0.CMDQEN.</summary>
    public bool CommandQueueEnabled => (_cr0 & SmmuV3.CR0_CMDQEN) != 0;
    /// <summary>CR0.EVENTQEN.</summary>
    public bool EventQueueEnabled => (_cr0 & SmmuV3.CR0_EVENTQEN) != 0;
    /// <summary>GBPA.ABORT: with the SMMU disabled, incoming transactions abort rather than bypass.</summary>
    public bool GlobalBypassAborts => (_gbpa & SmmuV3.GBPA_ABORT) != 0;
    /// <summary>Active, unacknowledged global errors (GERROR ^ GERRORN).</summary>
    public uint GlobalErrors => _gerror ^ _gerrorn;

    /// <summary>Every register to its reset value (IHI 0070 6.3: all zero but GBPA).</summary>
    public void Reset()
    {
        _cr0 = _cr1 = _cr2 = 0;
        _gbpa = SmmuV3.GbpaResetValue;
        _irqCtrl = 0;
        _gerror = _gerrorn = 0;
        _gerrorIrqCfg0 = 0; _gerrorIrqCfg1 = _gerrorIrqCfg2 = 0;
        _strtabBase = 0; _strtabBaseCfg = 0;
        _cmdqBase = _eventqBase = _priqBase = 0;
        CommandQueue.Configure(0, 0, _features.CmdqLog2Max); CommandQueue.Prod = CommandQueue.Cons = 0;
        CommandQueueError = CommandError.None;
        EventQueue.Configure(0, 0, _features.EventqLog2Max); EventQueue.Prod = EventQueue.Cons = 0;
        _eventqOverflow = _eventqOverflowAck = false;
        _eventqIrqCfg0 = 0; _eventqIrqCfg1 = _eventqIrqCfg2 = 0;
        _priqProd = _priqCons = 0; _priqIrqCfg0 = 0; _priqIrqCfg1 = _priqIrqCfg2 = 0;
    }

    /// <summary>Reads a register of the 128 KiB frame. Undefined offsets and widths read as zero; no side effects.</summary>
    public ulong Read(ulong offset, int width)
    {
        if (!TryDecode(ref offset, width)) return 0;
        if (width == 8)
        {
            // A 64-bit access to a pair of 32-bit registers reads both (IHI 0070 6.2).
            if ((offset & 7) != 0) return 0;
            if (Is64Bit(offset)) return Read64(offset);
            return Read32(offset) | ((ulong)Read32(offset + 4) << 32);
        }
        if ((offset & 3) != 0) return 0;
        if (Is64Bit(offset & ~7UL)) return (uint)(Read64(offset & ~7UL) >> (int)((offset & 4) * 8));
        return Read32(offset);
    }

    /// <summary>Writes a register. Read-only and undefined offsets ignore it; never throws.</summary>
    public void Write(ulong offset, int width, ulong value)
    {
        if (!TryDecode(ref offset, width)) return;
        if (width == 8)
        {
            if ((offset & 7) != 0) return;
            if (Is64Bit(offset)) { Write64(offset, value); return; }
            Write32(offset, (uint)value);
            Write32(offset + 4, (uint)(value >> 32));
            return;
        }
        if ((offset & 3) != 0) return;
        ulong reg = offset & ~7UL;
        if (Is64Bit(reg))
        {
            int shift = (int)((offset & 4) * 8);
            Write64(reg, (Read64(reg) & ~(0xFFFF_FFFFUL << shift)) | ((value & 0xFFFF_FFFF) << shift));
            return;
        }
        Write32(offset, (uint)value);
    }

    /// <summary>Stops the command queue at CONS with CMDQ_CONS.ERR = <paramref name="error"/> and raises GERROR.CMDQ_ERR (IHI 0070 7.1).</summary>
    public void StopCommandQueue(CommandError error)
    {
        CommandQueueError = error;
        SetGlobalError(SmmuV3.GERROR_CMDQ_ERR);
    }

    /// <summary>Flags a global error: toggles its GERROR bit so it differs from GERRORN, and signals it (IHI 0070 6.3.17).</summary>
    public void SetGlobalError(uint bit)
    {
        if (((_gerror ^ _gerrorn) & bit) != 0) return; // already active and unacknowledged
        _gerror ^= bit;
        if ((_irqCtrl & SmmuV3.IRQ_CTRL_GERROR_IRQEN) != 0) _effects.Signal(SmmuInterrupt.GlobalError, _gerrorIrqCfg0, _gerrorIrqCfg1);
    }

    /// <summary>
    /// Writes an event record at EVENTQ_PROD in <paramref name="memory"/> (IHI 0070 7.4) and signals
    /// the event queue interrupt when enabled; a full queue reports the loss through OVFLG, an
    /// aborting entry address through GERROR.EVENTQ_ABT_ERR.
    /// </summary>
    public EventWriteResult WriteEvent(IPhysicalMemory memory, in EventRecord evt)
    {
        if (!EventQueueEnabled) return EventWriteResult.QueueDisabled;
        if (EventQueue.IsFull)
        {
            SignalEventQueueOverflow();
            return EventWriteResult.Overflow;
        }
        ulong address = EventQueue.EntryAddress(EventQueue.Prod);
        if (memory.IsAbort(address, EventRecord.Size))
        {
            SetGlobalError(SmmuV3.GERROR_EVENTQ_ABT_ERR);
            return EventWriteResult.Abort;
        }
        memory.WriteUInt64s(address, [evt.W0, evt.W1, evt.W2, evt.W3]);
        EventQueue.Prod = EventQueue.Next(EventQueue.Prod);
        if ((_irqCtrl & SmmuV3.IRQ_CTRL_EVENTQ_IRQEN) != 0) _effects.Signal(SmmuInterrupt.EventQueue, _eventqIrqCfg0, _eventqIrqCfg1);
        return EventWriteResult.Written;
    }

    /// <summary>
    /// Reports lost events: a new overflow is signalled by making EVENTQ_PROD.OVFLG differ from the
    /// acknowledged EVENTQ_CONS.OVACKFLG (IHI 0070 7.4.1). False when one is already pending.
    /// </summary>
    public bool SignalEventQueueOverflow()
    {
        if (_eventqOverflow != _eventqOverflowAck) return false;
        _eventqOverflow = !_eventqOverflowAck;
        return true;
    }

    /// <summary>True when an overflow is reported and not yet acknowledged (EVENTQ_PROD.OVFLG != EVENTQ_CONS.OVACKFLG).</summary>
    public bool EventQueueOverflowPending => _eventqOverflow != _eventqOverflowAck;

    private bool TryDecode(ref ulong offset, int width)
    {
        if (offset >= SmmuRegisters.FrameSize || (width != 4 && width != 8)) return false;
        if (offset < PageSize) return true;
        ulong inPage = offset - PageSize;
        if (_page1 == SmmuPage1Decoding.QueuePointersOnly
            && inPage is not ((ulong)SmmuRegister.EVENTQ_PROD or (ulong)SmmuRegister.EVENTQ_CONS
                or (ulong)SmmuRegister.PRIQ_PROD or (ulong)SmmuRegister.PRIQ_CONS))
            return false;
        offset = inPage;
        return true;
    }

    private static bool Is64Bit(ulong offset) => SmmuRegisters.Is64Bit((SmmuRegister)offset);

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
        SmmuRegister.IDR0 => _features.Idr0,
        SmmuRegister.IDR1 => _features.Idr1,
        SmmuRegister.IDR2 => _features.Idr2,
        SmmuRegister.IDR3 => _features.Idr3,
        SmmuRegister.IDR4 => _features.Idr4,
        SmmuRegister.IDR5 => _features.Idr5,
        SmmuRegister.IIDR => _features.Iidr,
        SmmuRegister.AIDR => _features.Aidr,
        SmmuRegister.CR0 => _cr0,
        // Updates complete at once, so the ACK registers always match.
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
        SmmuRegister.CMDQ_PROD => CommandQueue.Prod,
        SmmuRegister.CMDQ_CONS => CommandQueue.Cons | (uint)SmmuV3.CMDQ_CONS_ERR.Encode((ulong)CommandQueueError),
        SmmuRegister.EVENTQ_PROD => EventQueue.Prod | (_eventqOverflow ? SmmuV3.Q_OVFLG : 0),
        SmmuRegister.EVENTQ_CONS => EventQueue.Cons | (_eventqOverflowAck ? SmmuV3.Q_OVFLG : 0),
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
            case SmmuRegister.GERROR_IRQ_CFG0: _gerrorIrqCfg0 = value & SmmuV3.IRQ_CFG0_ADDR.Mask; break;
            case SmmuRegister.STRTAB_BASE:
                // Writable only while the SMMU is disabled (6.3.23); otherwise the write is ignored.
                if (!Enabled) _strtabBase = value & (SmmuV3.STRTAB_BASE_ADDR.Mask | SmmuV3.STRTAB_BASE_RA);
                break;
            case SmmuRegister.CMDQ_BASE:
                // Queue bases are writable only while their queue is disabled (6.3.25, 6.3.28); LOG2SIZE
                // beyond IDR1.CMDQS/EVENTQS behaves as the maximum.
                if (!CommandQueueEnabled)
                {
                    _cmdqBase = value & QueueBaseWritable;
                    CommandQueue.Configure(_cmdqBase & SmmuV3.Q_BASE_ADDR.Mask, (int)SmmuV3.Q_BASE_LOG2SIZE.Get(value), _features.CmdqLog2Max);
                }
                break;
            case SmmuRegister.EVENTQ_BASE:
                if (!EventQueueEnabled)
                {
                    _eventqBase = value & QueueBaseWritable;
                    EventQueue.Configure(_eventqBase & SmmuV3.Q_BASE_ADDR.Mask, (int)SmmuV3.Q_BASE_LOG2SIZE.Get(value), _features.EventqLog2Max);
                }
                break;
            case SmmuRegister.EVENTQ_IRQ_CFG0: _eventqIrqCfg0 = value & SmmuV3.IRQ_CFG0_ADDR.Mask; break;
            case SmmuRegister.PRIQ_BASE:
                if (_features.Pri && (_cr0 & SmmuV3.CR0_PRIQEN) == 0) _priqBase = value & QueueBaseWritable;
                break;
            case SmmuRegister.PRIQ_IRQ_CFG0: if (_features.Pri) _priqIrqCfg0 = value & SmmuV3.IRQ_CFG0_ADDR.Mask; break;
        }
    }

    private void Write32(ulong offset, uint value)
    {
        switch ((SmmuRegister)offset)
        {
            case SmmuRegister.CR0: WriteCr0(value & SmmuV3.CR0_WritableMask); break;
            case SmmuRegister.CR1:
                // Writable only while the SMMU and every queue are disabled (6.3.10).
                if ((_cr0 & (SmmuV3.CR0_SMMUEN | SmmuV3.CR0_CMDQEN | SmmuV3.CR0_EVENTQEN | SmmuV3.CR0_PRIQEN)) == 0) _cr1 = value & Cr1Writable;
                break;
            case SmmuRegister.CR2: if (!Enabled) _cr2 = value & Cr2Writable; break;
            case SmmuRegister.GBPA:
                // Software sets UPDATE with the new value; the update completes at once and UPDATE reads 0 (6.3.14).
                if ((value & SmmuV3.GBPA_UPDATE) == 0) break;
                _gbpa = value & SmmuV3.GBPA_WritableMask;
                _effects.GlobalBypassChanged();
                break;
            case SmmuRegister.IRQ_CTRL: _irqCtrl = value & IrqCtrlWritable; break;
            case SmmuRegister.GERRORN: WriteGerrorn(value & SmmuV3.GERROR_Mask); break;
            case SmmuRegister.GERROR_IRQ_CFG1: _gerrorIrqCfg1 = value; break;
            case SmmuRegister.GERROR_IRQ_CFG2: _gerrorIrqCfg2 = value & IrqCfg2Writable; break;
            case SmmuRegister.STRTAB_BASE_CFG: if (!Enabled) _strtabBaseCfg = value & StrtabBaseCfgWritable; break;
            case SmmuRegister.CMDQ_PROD:
                CommandQueue.Prod = value & CommandQueue.PointerMask;
                _effects.CommandsPending();
                break;
            case SmmuRegister.CMDQ_CONS:
                // CONS is the SMMU's pointer: software may set it only while the queue is disabled (6.3.27).
                if (!CommandQueueEnabled) { CommandQueue.Cons = value & CommandQueue.PointerMask; CommandQueueError = CommandError.None; }
                break;
            case SmmuRegister.EVENTQ_PROD:
                if (!EventQueueEnabled) { EventQueue.Prod = value & EventQueue.PointerMask; _eventqOverflow = (value & SmmuV3.Q_OVFLG) != 0; }
                break;
            case SmmuRegister.EVENTQ_CONS:
                EventQueue.Cons = value & EventQueue.PointerMask;
                _eventqOverflowAck = (value & SmmuV3.Q_OVFLG) != 0;
                break;
            case SmmuRegister.EVENTQ_IRQ_CFG1: _eventqIrqCfg1 = value; break;
            case SmmuRegister.EVENTQ_IRQ_CFG2: _eventqIrqCfg2 = value & IrqCfg2Writable; break;
            case SmmuRegister.PRIQ_PROD: if (_features.Pri && (_cr0 & SmmuV3.CR0_PRIQEN) == 0) _priqProd = value; break;
            case SmmuRegister.PRIQ_CONS: if (_features.Pri) _priqCons = value; break;
            case SmmuRegister.PRIQ_IRQ_CFG1: if (_features.Pri) _priqIrqCfg1 = value; break;
            case SmmuRegister.PRIQ_IRQ_CFG2: if (_features.Pri) _priqIrqCfg2 = value & IrqCfg2Writable; break;
        }
    }

    private void WriteCr0(uint value)
    {
        uint old = _cr0;
        _cr0 = value;
        _effects.ControlChanged(old, value);
        if ((value & SmmuV3.CR0_CMDQEN) != 0 && (old & SmmuV3.CR0_CMDQEN) == 0) _effects.CommandsPending();
    }

    private void WriteGerrorn(uint value)
    {
        uint acked = (_gerror ^ _gerrorn) & ~(_gerror ^ value);
        _gerrorn = value;
        // Acknowledging CMDQ_ERR lets the command queue run again from CONS (IHI 0070 7.1).
        if ((acked & SmmuV3.GERROR_CMDQ_ERR) != 0 && CommandQueueError != CommandError.None)
        {
            CommandQueueError = CommandError.None;
            _effects.CommandsPending();
        }
    }
}

using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Iommufd.Emulated;

internal sealed partial class ArmSmmuDevice
{
    /// <summary>CMDQ_BATCH_ENTRIES: commands go out in batches of 63 followed by a CMD_SYNC.</summary>
    public const int CmdqBatchEntries = 64;

    /// <summary>The host's command queue: 256 entries (4 KiB), or fewer if IDR1.CMDQS says so.</summary>
    private const int HostCmdqLog2 = 8;
    /// <summary>The host's event queue: 128 entries (4 KiB), or fewer if IDR1.EVENTQS says so.</summary>
    private const int HostEvtqLog2 = 7;

    private ulong _cmdqBase, _evtqBase;
    private int _cmdqLog2, _evtqLog2;
    private uint _cmdqProd;

    /// <summary>Commands this driver wrote to the command queue (kernel and forwarded guest commands).</summary>
    public long CommandsSubmitted { get; private set; }
    /// <summary>Times the driver published a batch (wrote CMDQ_PROD).</summary>
    public long Batches { get; private set; }
    /// <summary>Commands the SMMU refused (CERROR_ILL) that the driver replaced with CMD_SYNC and skipped.</summary>
    public long CommandsSkipped { get; private set; }
    /// <summary>Every event record the SMMU produced.</summary>
    public long EventsSeen { get; private set; }
    /// <summary>Events handed to a vIOMMU's vEVENTQ.</summary>
    public long EventsForwarded { get; private set; }
    /// <summary>Records consumed from the hardware event queue.</summary>
    public long EventQueueRecordsConsumed { get; private set; }

    private void InitQueues()
    {
        _cmdqLog2 = Math.Min(HostCmdqLog2, Features.CmdqLog2Max);
        _evtqLog2 = Math.Min(HostEvtqLog2, Features.EventqLog2Max);
        ulong cmdqBytes = (ulong)Command.Size << _cmdqLog2;
        ulong evtqBytes = (ulong)EventRecord.Size << _evtqLog2;
        // Queues are aligned to their size (IHI 0070 6.3.25).
        _cmdqBase = AllocateOrThrow(cmdqBytes, cmdqBytes, "cmdq");
        _evtqBase = AllocateOrThrow(evtqBytes, evtqBytes, "evtq");
    }

    private ulong AllocateOrThrow(ulong bytes, ulong alignment, string what) =>
        _host.Allocator.TryAllocate(bytes, alignment, $"{Name} {what}")
            ?? throw new InvalidOperationException($"Host memory is too small for the {what} of SMMU '{Name}' (0x{bytes:X} bytes).");

    /// <summary>
    /// Writes <paramref name="commands"/> (and a CMD_SYNC when <paramref name="sync"/>) into the
    /// command queue and publishes them. The SMMU runs them as PROD moves; a command it refuses is
    /// skipped by the global-error handler (logged, counted), as arm_smmu_cmdq_skip_err does.
    /// </summary>
    public void Submit(ReadOnlySpan<Command> commands, bool sync)
    {
        foreach (Command c in commands) Enqueue(c);
        if (sync) Enqueue(SyncCommand());
        Publish();
    }

    /// <summary>CMD_SYNC the way the driver completes batches: SEV when the SMMU signals events, else no signal.</summary>
    private Command SyncCommand() => Command.Sync(Features.Sev ? SyncSignal.Sev : SyncSignal.None);

    private uint PointerMask => (2u << _cmdqLog2) - 1;
    private uint IndexMask => (1u << _cmdqLog2) - 1;

    private void Enqueue(in Command command)
    {
        uint cons = Read32(SmmuRegister.CMDQ_CONS) & PointerMask;
        if (((_cmdqProd ^ cons) & PointerMask) == (1u << _cmdqLog2))
        {
            // Full: publish what is queued; the SMMU consumes synchronously.
            Publish();
            cons = Read32(SmmuRegister.CMDQ_CONS) & PointerMask;
            if (((_cmdqProd ^ cons) & PointerMask) == (1u << _cmdqLog2))
            {
                Log($"command queue stuck at CONS 0x{cons:X}: dropping {command}");
                return;
            }
        }
        ulong address = _cmdqBase + (ulong)(_cmdqProd & IndexMask) * Command.Size;
        _host.Memory.WriteUInt64(address, command.W0);
        _host.Memory.WriteUInt64(address + sizeof(ulong), command.W1);
        _cmdqProd = (_cmdqProd + 1) & PointerMask;
        CommandsSubmitted++;
    }

    /// <summary>
    /// The last <paramref name="count"/> commands written to the queue, oldest first, read back
    /// from host memory (diagnostics; at most the queue's size).
    /// </summary>
    public IReadOnlyList<Command> LastCommands(int count)
    {
        count = Math.Min(count, 1 << _cmdqLog2);
        var commands = new Command[count];
        for (int i = 0; i < count; i++)
        {
            uint index = (uint)(_cmdqProd - count + i) & IndexMask;
            ulong address = _cmdqBase + (ulong)index * Command.Size;
            commands[i] = new Command(_host.Memory.ReadUInt64(address), _host.Memory.ReadUInt64(address + sizeof(ulong)));
        }
        return commands;
    }

    private void Publish()
    {
        Batches++;
        Write32(SmmuRegister.CMDQ_PROD, _cmdqProd);
    }

    // ------------------------------------------------------------------ interrupts

    private void OnInterrupt(SmmuInterrupt source)
    {
        switch (source)
        {
            case SmmuInterrupt.EventQueue:
                ConsumeEventQueue();
                break;
            case SmmuInterrupt.GlobalError:
                HandleGlobalError();
                break;
        }
    }

    /// <summary>
    /// arm_smmu_gerror_handler: acknowledges every active global error; a command-queue error
    /// first gets the offending command replaced by a CMD_SYNC so the queue resumes past it.
    /// </summary>
    private void HandleGlobalError()
    {
        uint gerror = Read32(SmmuRegister.GERROR);
        uint active = gerror ^ Read32(SmmuRegister.GERRORN);
        if (active == 0) return;
        if ((active & SmmuV3.GERROR_CMDQ_ERR) != 0) SkipCommandError();
        if ((active & ~SmmuV3.GERROR_CMDQ_ERR) != 0) Log($"unexpected global error(s) 0x{active & ~SmmuV3.GERROR_CMDQ_ERR:X}");
        // Acknowledging CMDQ_ERR lets the SMMU consume again from CONS.
        Write32(SmmuRegister.GERRORN, gerror);
    }

    private void SkipCommandError()
    {
        uint consReg = Read32(SmmuRegister.CMDQ_CONS);
        var error = (CommandError)SmmuV3.CMDQ_CONS_ERR.Get(consReg);
        ulong address = _cmdqBase + (ulong)(consReg & IndexMask) * Command.Size;
        var bad = new Command(_host.Memory.ReadUInt64(address), _host.Memory.ReadUInt64(address + sizeof(ulong)));
        switch (error)
        {
            case CommandError.CERROR_ABT:
                Log($"CMDQ error (cons 0x{consReg & PointerMask:X}): abort on command fetch, retrying");
                return;
            case CommandError.CERROR_ATC_INV_SYNC:
                Log($"CMDQ error (cons 0x{consReg & PointerMask:X}): ATC invalidation timeout");
                return;
            case CommandError.None:
                return;
        }
        Log($"CMDQ error (cons 0x{consReg & PointerMask:X}): illegal command {bad}, skipped");
        CommandsSkipped++;
        Command sync = SyncCommand();
        _host.Memory.WriteUInt64(address, sync.W0);
        _host.Memory.WriteUInt64(address + sizeof(ulong), sync.W1);
    }

    /// <summary>
    /// The event-queue thread: consumes the records the SMMU wrote (they were already routed when
    /// the SMMU produced them, <see cref="OnEventRecorded"/>) and acknowledges an overflow.
    /// </summary>
    private void ConsumeEventQueue()
    {
        uint prod = Read32(SmmuRegister.EVENTQ_PROD_PAGE1);
        uint cons = Read32(SmmuRegister.EVENTQ_CONS_PAGE1);
        uint mask = (2u << _evtqLog2) - 1;
        EventQueueRecordsConsumed += ((prod & mask) - (cons & mask)) & mask;
        if (((prod ^ cons) & SmmuV3.Q_OVFLG) != 0) Log("event queue overflow: events lost");
        Write32(SmmuRegister.EVENTQ_CONS_PAGE1, (prod & mask) | (prod & SmmuV3.Q_OVFLG));
    }

    /// <summary>Event IDs a vIOMMU's owner is told about (arm_smmu_handle_event, arm-smmu-v3.c).</summary>
    private static bool IsForwardable(EventType t) => t is EventType.C_BAD_STE or EventType.F_STREAM_DISABLED
        or EventType.C_BAD_SUBSTREAMID or EventType.C_BAD_CD or EventType.F_TRANSLATION or EventType.F_ADDR_SIZE
        or EventType.F_ACCESS or EventType.F_PERMISSION;

    /// <summary>
    /// Routes one event the SMMU produced: for a master attached to a nested domain with a vSID
    /// (a vmaster), non-stall events that are not stage-2 faults go to the vIOMMU with the SID
    /// replaced by the vSID; everything else is the host's (logged).
    /// </summary>
    private void OnEventRecorded(EventRecord evt)
    {
        EventsSeen++;
        if (!IsForwardable(evt.Type) || evt.Stall)
        {
            Log($"event {evt}");
            return;
        }
        if (!_masters.TryGetValue(evt.SID, out ArmSmmuMaster? master))
        {
            Log($"event for unknown StreamID: {evt}");
            return;
        }
        if (master.Vmaster is { } vmaster && !evt.S2)
        {
            Errno e = vmaster.Vsmmu.ReportEvent(evt.WithSid(vmaster.Vsid));
            if (e == Errno.None)
            {
                EventsForwarded++;
                return;
            }
            // Not delivered (no vEVENTQ of that type): the event thread dumps it as it does any event
            // it could not hand on (arm_smmu_evtq_thread, arm-smmu-v3.c), so the loss is never silent.
            Log($"event for {master.Device.Name} not reported to its vIOMMU ({e}): {evt}");
            return;
        }
        Log($"event for {master.Device.Name}: {evt}");
    }
}

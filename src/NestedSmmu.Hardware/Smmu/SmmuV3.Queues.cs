using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Hardware.Smmu;

public sealed partial class SmmuV3
{
    /// <summary>
    /// Runs commands from CONS up to PROD while the command queue is enabled and not stopped by an
    /// error (IHI 0070 4, 7.1). An illegal command stops the queue with CONS pointing at it,
    /// CMDQ_CONS.ERR set and GERROR.CMDQ_ERR raised; acknowledging the error resumes it.
    /// </summary>
    private void ConsumeCommands()
    {
        if (!CommandQueueEnabled || _cmdqErr != CommandError.None) return;
        while (!_cmdq.IsEmpty)
        {
            ulong address = _cmdq.EntryAddress(_cmdq.Cons);
            if (IsAbort(address, Command.Size))
            {
                StopCommandQueue(CommandError.CERROR_ABT);
                return;
            }
            var error = Execute(new Command(_memory.ReadUInt64(address), _memory.ReadUInt64(address + 8)));
            if (error != CommandError.None)
            {
                StopCommandQueue(error);
                return;
            }
            _cmdq.Cons = _cmdq.Next(_cmdq.Cons);
        }
    }

    private void StopCommandQueue(CommandError error)
    {
        _cmdqErr = error;
        Counters.CommandErrors++;
        SetGlobalError(GERROR_CMDQ_ERR);
    }

    /// <summary>
    /// Decodes and runs one command; the queue owner (this SMMU's CMDQ or a Tegra241 VCMDQ) handles
    /// errors. Public so command sources other than the main queue share one implementation.
    /// </summary>
    public CommandError Execute(in Command cmd)
    {
        if (!CommandCodec.IsLegal(cmd, Features)) return CommandError.CERROR_ILL;
        Counters.CommandsExecuted++;
        switch (cmd.Opcode)
        {
            case CommandOpcode.PREFETCH_CONFIG:
            case CommandOpcode.PREFETCH_ADDR:
                break; // prefetches are hints; this model fetches on demand
            case CommandOpcode.CFGI_STE:
                InvalidateStreamTableEntry(cmd.SID);
                break;
            case CommandOpcode.CFGI_STE_RANGE:
                InvalidateStreamTableRange(cmd.SID, cmd.Range);
                break;
            case CommandOpcode.CFGI_CD:
                InvalidateContextDescriptor(cmd.SID, cmd.SSID);
                break;
            case CommandOpcode.CFGI_CD_ALL:
                InvalidateContextDescriptors(cmd.SID);
                break;
            case CommandOpcode.TLBI_NH_ALL:
            case CommandOpcode.TLBI_NH_ASID:
            case CommandOpcode.TLBI_NH_VA:
            case CommandOpcode.TLBI_NH_VAA:
            case CommandOpcode.TLBI_EL2_ALL:
            case CommandOpcode.TLBI_EL2_ASID:
            case CommandOpcode.TLBI_EL2_VA:
            case CommandOpcode.TLBI_EL2_VAA:
            case CommandOpcode.TLBI_S12_VMALL:
            case CommandOpcode.TLBI_S2_IPA:
            case CommandOpcode.TLBI_NSNH_ALL:
                InvalidateTlb(cmd);
                break;
            case CommandOpcode.ATC_INV:
                InvalidateAtc(cmd);
                break;
            case CommandOpcode.PRI_RESP:
            case CommandOpcode.RESUME:
            case CommandOpcode.STALL_TERM:
                // No stalls or page requests are ever outstanding in this model; the responses are accepted.
                break;
            case CommandOpcode.CMD_SYNC:
                CompleteSync(cmd);
                break;
        }
        return CommandError.None;
    }

    private void CompleteSync(in Command cmd)
    {
        Counters.Syncs++;
        // Every earlier command has completed (they run synchronously), so the sync completes now.
        if (cmd.CS == SyncSignal.Irq)
        {
            if (Features.Msi && cmd.MsiAddress != 0) Raise(SmmuInterrupt.CmdSync, cmd.MsiAddress, cmd.MsiData);
            else InterruptRaised?.Invoke(SmmuInterrupt.CmdSync);
        }
    }

    private void InvalidateAtc(in Command cmd)
    {
        if (!_atcTargets.TryGetValue(cmd.SID, out var targets)) return;
        // Size: the range covers 2^Size 4 KiB pages, naturally aligned (IHI 0070 4.6.1); 52 means all.
        uint size = cmd.AtcSize;
        ulong length = size >= 52 ? ulong.MaxValue : (1UL << (int)size) << 12;
        ulong start = size >= 52 ? 0 : cmd.Address & ~(length - 1);
        uint? ssid = cmd.SSV ? cmd.SSID : null;
        foreach (var t in targets)
        {
            t.InvalidateAtc(ssid, cmd.Global, start, length);
            Counters.AtcInvalidations++;
        }
    }

    /// <summary>
    /// Writes an event record to the event queue (IHI 0070 7.4). Returns false when it could not be
    /// recorded: the queue is disabled, or full (then EVENTQ_PROD.OVFLG is toggled to report the loss).
    /// </summary>
    public bool RecordEvent(in EventRecord evt)
    {
        EventRecorded?.Invoke(evt);
        if (!EventQueueEnabled) { Counters.EventsLost++; return false; }
        if (_eventq.IsFull)
        {
            Counters.EventsLost++;
            // A new overflow is reported by making OVFLG differ from the acknowledged OVACKFLG.
            if (_eventqOverflow == _eventqOverflowAck) _eventqOverflow = !_eventqOverflowAck;
            return false;
        }
        ulong address = _eventq.EntryAddress(_eventq.Prod);
        if (IsAbort(address, EventRecord.Size))
        {
            SetGlobalError(GERROR_EVENTQ_ABT_ERR);
            Counters.EventsLost++;
            return false;
        }
        _memory.WriteUInt64s(address, [evt.W0, evt.W1, evt.W2, evt.W3]);
        _eventq.Prod = _eventq.Next(_eventq.Prod);
        Counters.EventsWritten++;
        if ((_irqCtrl & IRQ_CTRL_EVENTQ_IRQEN) != 0) Raise(SmmuInterrupt.EventQueue, _eventqIrqCfg0, _eventqIrqCfg1);
        return true;
    }

    /// <summary>Every event the SMMU generates, before it reaches the event queue (the host kernel listens here).</summary>
    public event Action<EventRecord>? EventRecorded;
}

/// <summary>
/// Which fields each command may carry (IHI 0070 4.1-4.7). A command with an unknown opcode,
/// a field set that the opcode does not define, or one that needs a feature the SMMU lacks is
/// illegal (CERROR_ILL).
/// </summary>
public static class CommandCodec
{
    private const ulong Op = 0xFF;
    private const ulong Sid = 0xFFFF_FFFF_0000_0000;
    private const ulong SsidSsv = 0xFFFF_F800; // SSID [31:12] and SSV [11]
    private const ulong SsidOnly = 0xFFFF_F000;
    private const ulong Vmid = 0x0000_FFFF_0000_0000;
    private const ulong Asid = 0xFFFF_0000_0000_0000;
    private const ulong NumScale = 0x03F1_F000; // NUM [16:12], SCALE [25:20]
    private const ulong TlbiW1 = 0xFFFF_FFFF_FFFF_F000 | 0xF01; // Address [63:12], TG [11:10], TTL [9:8], Leaf [0]
    private const ulong S2IpaW1 = 0x000F_FFFF_FFFF_F000 | 0xF01;

    /// <summary>Allowed bits of word 0 and word 1 for an opcode; null when the opcode is not defined.</summary>
    public static (ulong W0, ulong W1)? AllowedBits(CommandOpcode op) => op switch
    {
        CommandOpcode.PREFETCH_CONFIG => (Op | SsidSsv | Sid, 0),
        CommandOpcode.PREFETCH_ADDR => (Op | SsidSsv | Sid, 0xFFFF_FFFF_FFFF_F000 | 0x1F9F), // Addr, Stride [12:8], NS [7], Size [4:0]
        CommandOpcode.CFGI_STE => (Op | Sid, 1),
        CommandOpcode.CFGI_STE_RANGE => (Op | Sid, 0x1F),
        CommandOpcode.CFGI_CD => (Op | SsidOnly | Sid, 1),
        CommandOpcode.CFGI_CD_ALL => (Op | Sid, 0),
        CommandOpcode.TLBI_NH_ALL => (Op | Vmid, 0),
        CommandOpcode.TLBI_NH_ASID => (Op | Vmid | Asid, 0),
        CommandOpcode.TLBI_NH_VA => (Op | NumScale | Vmid | Asid, TlbiW1),
        CommandOpcode.TLBI_NH_VAA => (Op | NumScale | Vmid, TlbiW1),
        CommandOpcode.TLBI_EL2_ALL => (Op, 0),
        CommandOpcode.TLBI_EL2_ASID => (Op | Asid, 0),
        CommandOpcode.TLBI_EL2_VA => (Op | NumScale | Asid, TlbiW1),
        CommandOpcode.TLBI_EL2_VAA => (Op | NumScale, TlbiW1),
        CommandOpcode.TLBI_S12_VMALL => (Op | Vmid, 0),
        CommandOpcode.TLBI_S2_IPA => (Op | NumScale | Vmid, S2IpaW1),
        CommandOpcode.TLBI_NSNH_ALL => (Op, 0),
        CommandOpcode.ATC_INV => (Op | (1UL << 9) | SsidSsv | Sid, 0xFFFF_FFFF_FFFF_F000 | 0x3F),
        CommandOpcode.PRI_RESP => (Op | SsidSsv | Sid, 0x1FF | 0x3000),
        CommandOpcode.RESUME => (Op | 0x3000 | Sid, 0xFFFF),
        CommandOpcode.STALL_TERM => (Op | Sid, 0),
        CommandOpcode.CMD_SYNC => (Op | 0x3000 | 0x00C0_0000 | 0x0F00_0000 | Sid /* MSIData */, 0x000F_FFFF_FFFF_FFFC),
        _ => null,
    };

    /// <summary>
    /// The TTL hint of a TLBI: 16 KiB level 1 (TTL 0b01 with TG 0b10) is Reserved without IDR5.DS and
    /// treated as 0b00 (IHI 0070 4.4.1.1).
    /// </summary>
    public static uint EffectiveTtl(in Command cmd) => cmd.TG == 2 && cmd.TTL == 1 ? 0 : cmd.TTL;

    public static bool IsLegal(in Command cmd, SmmuFeatures f)
    {
        if (AllowedBits(cmd.Opcode) is not { } allowed) return false;
        if ((cmd.W0 & ~allowed.W0) != 0 || (cmd.W1 & ~allowed.W1) != 0) return false;
        // A range TLBI (TG != 0) with NUM == 0, SCALE == 0 and TTL == 0b00 is Reserved: CERROR_ILL (IHI 0070 4.4.1.1).
        if (f.Ril && cmd.Opcode is CommandOpcode.TLBI_NH_VA or CommandOpcode.TLBI_NH_VAA or CommandOpcode.TLBI_EL2_VA
                or CommandOpcode.TLBI_EL2_VAA or CommandOpcode.TLBI_S2_IPA
            && cmd.TG != 0 && cmd.NUM == 0 && cmd.SCALE == 0 && EffectiveTtl(cmd) == 0)
            return false;
        return cmd.Opcode switch
        {
            CommandOpcode.TLBI_NH_ALL or CommandOpcode.TLBI_NH_ASID or CommandOpcode.TLBI_NH_VA or CommandOpcode.TLBI_NH_VAA
                or CommandOpcode.CFGI_CD or CommandOpcode.CFGI_CD_ALL => f.Stage1,
            CommandOpcode.TLBI_EL2_ALL or CommandOpcode.TLBI_EL2_ASID or CommandOpcode.TLBI_EL2_VA
                or CommandOpcode.TLBI_EL2_VAA => f.Stage1 && f.Hyp,
            CommandOpcode.TLBI_S12_VMALL or CommandOpcode.TLBI_S2_IPA => f.Stage2,
            CommandOpcode.ATC_INV => f.Ats && (!cmd.SSV || f.SsidBits > 0),
            CommandOpcode.PRI_RESP => f.Pri,
            CommandOpcode.CMD_SYNC => cmd.CS != (SyncSignal)3,
            _ => true,
        };
    }
}

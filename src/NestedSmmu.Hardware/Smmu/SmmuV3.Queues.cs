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
        if (!CommandQueueEnabled || _regs.CommandQueueError != CommandError.None) return;
        var cmdq = _regs.CommandQueue;
        while (!cmdq.IsEmpty)
        {
            ulong address = cmdq.EntryAddress(cmdq.Cons);
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
            cmdq.Cons = cmdq.Next(cmdq.Cons);
        }
    }

    private void StopCommandQueue(CommandError error)
    {
        Counters.CommandErrors++;
        _regs.StopCommandQueue(error);
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
        if (_regs.WriteEvent(_memory, evt) != EventWriteResult.Written)
        {
            Counters.EventsLost++;
            return false;
        }
        Counters.EventsWritten++;
        return true;
    }

    /// <summary>Every event the SMMU generates, before it reaches the event queue (the host kernel listens here).</summary>
    public event Action<EventRecord>? EventRecorded;
}

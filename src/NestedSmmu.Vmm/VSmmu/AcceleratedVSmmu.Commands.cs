using System.Buffers.Binary;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Vmm.VSmmu;

public sealed partial class AcceleratedVSmmu
{
    /// <summary>
    /// The most commands one IOMMU_HWPT_INVALIDATE may carry: arm_vsmmu_cache_invalidate copies
    /// the whole array with one kcalloc, which fails beyond KMALLOC_MAX_SIZE (4 MiB with 4 KiB
    /// pages). A guest queue of 2^19 entries can hold more, so a batch is cut there.
    /// </summary>
    public const int MaxBatchCommands = (4 << 20) / IommufdExtensions.ArmSmmuV3CommandSize;

    // The pending batch: raw commands and the CONS value each came from (to point CONS at a refused one).
    // It starts at a typical Linux batch (arm-smmu-v3's CMDQ_BATCH_ENTRIES, 64) and grows on demand.
    private const int InitialBatchCapacity = 64;
    private byte[] _batch = new byte[InitialBatchCapacity * Command.Size];
    private uint[] _batchCons = new uint[InitialBatchCapacity];
    private int _batchCount;

    /// <summary>
    /// Runs the guest's command queue from CONS to PROD (smmuv3_cmdq_consume): configuration
    /// commands are emulated, invalidations collected and forwarded to the vIOMMU in one batch
    /// per CMD_SYNC (or per queue drain, or per <see cref="MaxBatchCommands"/>). An illegal
    /// command, a fetch outside RAM or a command the host refuses stops the queue with CONS at it,
    /// CMDQ_CONS.ERR set and GERROR.CMDQ_ERR raised (IHI 0070 7.1).
    /// </summary>
    private void ConsumeCommands()
    {
        if (!CommandQueueEnabled || _regs.CommandQueueError != CommandError.None) return;
        SmmuQueue cmdq = _regs.CommandQueue;
        while (!cmdq.IsEmpty)
        {
            uint cons = cmdq.Cons;
            ulong address = cmdq.EntryAddress(cons);
            if (_memory.IsAbort(address, Command.Size))
            {
                if (Flush()) StopCommandQueue(CommandError.CERROR_ABT);
                return;
            }
            var cmd = new Command(_memory.ReadUInt64(address), _memory.ReadUInt64(address + sizeof(ulong)));
            Counters.CommandsConsumed++;
            CommandError error = Execute(cmd, cons, out bool stopped);
            if (stopped) return;
            if (error != CommandError.None)
            {
                if (Flush()) StopCommandQueue(error);
                return;
            }
            cmdq.Cons = cmdq.Next(cons);
        }
        Flush();
    }

    /// <summary>One command; <paramref name="stopped"/> is set when flushing the batch before it stopped the queue.</summary>
    private CommandError Execute(in Command cmd, uint cons, out bool stopped)
    {
        stopped = false;
        if (!CommandCodec.IsLegal(cmd, Features)) return CommandError.CERROR_ILL;
        switch (cmd.Opcode)
        {
            case CommandOpcode.CMD_SYNC:
                // Everything before the sync must be complete when it completes: issue the batch first.
                if (!Flush()) { stopped = true; return CommandError.None; }
                CompleteSync(cmd);
                return CommandError.None;
            case CommandOpcode.PREFETCH_CONFIG:
            case CommandOpcode.PREFETCH_ADDR:
                return CommandError.None; // hints; the host SMMU fetches on demand
            case CommandOpcode.CFGI_STE:
            case CommandOpcode.CFGI_STE_RANGE:
            {
                // Earlier invalidations are issued first, so the host sees the guest's order.
                if (!Flush()) { stopped = true; return CommandError.None; }
                (uint first, uint last) = cmd.Opcode == CommandOpcode.CFGI_STE ? (cmd.SID, cmd.SID) : SteRange(cmd);
                return InstallRange(first, last) ? CommandError.None : CommandError.CERROR_ILL;
            }
            case CommandOpcode.CFGI_CD:
            case CommandOpcode.CFGI_CD_ALL:
            case CommandOpcode.ATC_INV:
                // SID-based invalidations concern only devices with a vDEVICE (smmuv3_accel_issue_inv_cmd);
                // the kernel maps the vSID to the pSID.
                if (_devices.TryGetValue(cmd.SID, out AccelDevice? dev) && dev.Vdevice is not null) stopped = !Enqueue(cmd, cons);
                return CommandError.None;
            case CommandOpcode.TLBI_NH_ALL:
            case CommandOpcode.TLBI_NH_ASID:
            case CommandOpcode.TLBI_NH_VA:
            case CommandOpcode.TLBI_NH_VAA:
            case CommandOpcode.TLBI_NSNH_ALL:
                // The kernel puts the vIOMMU's VMID into them; with no vIOMMU there is nothing cached to invalidate.
                if (_viommu is not null) stopped = !Enqueue(cmd, cons);
                return CommandError.None;
            case CommandOpcode.RESUME:
            case CommandOpcode.STALL_TERM:
                return CommandError.None; // no stalls are ever reported to this guest (STALL_MODEL 1)
            default:
                // Everything else the codec lets through needs a feature this vSMMU does not advertise
                // (stage 2, EL2, PRI): the spec makes those commands illegal.
                return CommandError.CERROR_ILL;
        }
    }

    /// <summary>CFGI_STE_RANGE: 2^(Range+1) StreamIDs aligned down from SID; Range 31 is all of them (IHI 0070 4.3.2).</summary>
    private static (uint First, uint Last) SteRange(in Command cmd)
    {
        const uint AllStreams = 31;
        if (cmd.Range >= AllStreams) return (0, uint.MaxValue);
        ulong count = 1UL << (int)(cmd.Range + 1);
        ulong first = cmd.SID & ~(count - 1);
        return ((uint)first, (uint)(first + count - 1));
    }

    /// <summary>Adds a command to the batch; false when a full batch had to be issued and the host refused it.</summary>
    private bool Enqueue(in Command cmd, uint cons)
    {
        if (_batchCount == _batchCons.Length)
        {
            Array.Resize(ref _batch, _batch.Length * 2);
            Array.Resize(ref _batchCons, _batchCons.Length * 2);
        }
        Span<byte> entry = _batch.AsSpan(_batchCount * Command.Size, Command.Size);
        BinaryPrimitives.WriteUInt64LittleEndian(entry, cmd.W0);
        BinaryPrimitives.WriteUInt64LittleEndian(entry[sizeof(ulong)..], cmd.W1);
        _batchCons[_batchCount++] = cons;
        return _batchCount < MaxBatchCommands || Flush();
    }

    /// <summary>
    /// Issues the pending batch through IOMMU_HWPT_INVALIDATE on the vIOMMU. When the host refuses
    /// an entry, CONS goes back to that command and the queue stops with CERROR_ILL; returns false then.
    /// </summary>
    private bool Flush()
    {
        if (_batchCount == 0) return true;
        int count = _batchCount;
        _batchCount = 0;
        if (_viommu is null)
        {
            // The last device left between the command and its sync: nothing on the host to invalidate.
            return true;
        }
        InvalidateResult result = Fd.Invalidate(_viommu.Id, HwptInvalidateDataType.ArmSmmuV3, Command.Size, (uint)count,
            _batch.AsSpan(0, count * Command.Size));
        Counters.Batches++;
        Counters.CommandsForwarded += result.EntriesHandled;
        if (result.Succeeded) return true;
        int failed = (int)Math.Min(result.EntriesHandled, (uint)(count - 1));
        Report($"IOMMU_HWPT_INVALIDATE refused command {failed} of {count} ({result.Error}): " +
            $"{new Command(BinaryPrimitives.ReadUInt64LittleEndian(_batch.AsSpan(failed * Command.Size)), BinaryPrimitives.ReadUInt64LittleEndian(_batch.AsSpan(failed * Command.Size + sizeof(ulong))))}");
        _regs.CommandQueue.Cons = _batchCons[failed];
        StopCommandQueue(CommandError.CERROR_ILL);
        return false;
    }

    private void StopCommandQueue(CommandError error)
    {
        Counters.CommandErrors++;
        _regs.StopCommandQueue(error);
    }

    /// <summary>
    /// CMD_SYNC: every earlier command has completed (they ran in the trap). CS = SIG_IRQ signals
    /// completion: an MSI write of MSIData when IDR0.MSI and an MSIAddress are present, else the
    /// CMD_SYNC wired interrupt (IHI 0070 4.7.3). CS = SIG_SEV wakes PEs, which this model has none of.
    /// </summary>
    private void CompleteSync(in Command cmd)
    {
        Counters.Syncs++;
        if (cmd.CS != SyncSignal.Irq) return;
        if (Features.Msi && cmd.MsiAddress != 0) SignalMsi(cmd.MsiAddress, cmd.MsiData);
        else
        {
            Counters.Interrupts++;
            InterruptRaised?.Invoke(SmmuInterrupt.CmdSync);
        }
    }
}

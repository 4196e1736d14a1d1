using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Guest.Smmu;

/// <summary>
/// The producer side of an SMMU-format command queue in guest RAM (IHI 0070 3.5, 4): the SMMU's own
/// CMDQ or a Tegra241 VCMDQ. Commands are written at PROD, published with one PROD write per
/// command list, and a CMD_SYNC with CS = SIG_NONE is completed by polling CONS, as Linux's
/// arm_smmu_cmdq_issue_cmdlist does when no MSI is used. When CONS stops with an error, the
/// owner's recovery (Linux's arm_smmu_cmdq_skip_err and the GERROR acknowledgement) runs from the
/// poll, as the error interrupt would.
/// </summary>
public sealed class GuestCommandQueue
{
    private readonly IPhysicalMemory _ram;
    private readonly RegisterWindow _regs;
    private readonly ulong _prodOffset, _consOffset;
    private readonly SmmuQueue _q = new(Command.Size);
    private readonly Func<Command, bool> _supports;

    /// <param name="name">For messages ("cmdq", "vcmdq0").</param>
    /// <param name="path">Which path this queue's batches count as.</param>
    /// <param name="baseAddress">Guest-physical address of entry 0 (aligned to the queue size).</param>
    /// <param name="log2Entries">log2 of the entries.</param>
    /// <param name="supports">Commands this queue may carry (CMD_SYNC always).</param>
    public GuestCommandQueue(string name, CommandPath path, RegisterWindow regs, ulong prodOffset, ulong consOffset, IPhysicalMemory ram,
        ulong baseAddress, int log2Entries, Func<Command, bool>? supports = null)
    {
        Name = name;
        Path = path;
        _regs = regs;
        _prodOffset = prodOffset;
        _consOffset = consOffset;
        _ram = ram;
        _q.Configure(baseAddress, log2Entries, log2Entries);
        _supports = supports ?? (_ => true);
    }

    public string Name { get; }
    public CommandPath Path { get; }
    public ulong BaseAddress => _q.Base;
    public int Log2Entries => _q.Log2Size;
    public CommandPathCounters Counters { get; } = new();

    /// <summary>Optional trace of every command written ("cmdq: CFGI_STE [...]").</summary>
    public Action<string>? Trace { get; set; }

    /// <summary>The shadow PROD (index and wrap) the driver last published.</summary>
    public uint Prod => _q.Prod;

    /// <summary>
    /// Called when CONS reads back with ERR set: the owner reads the error, repairs the queue
    /// (for CERROR_ILL it overwrites the command at CONS with a CMD_SYNC) and acknowledges GERROR.
    /// </summary>
    public Action<GuestCommandQueue, CommandError, uint>? ErrorHandler { get; set; }

    /// <summary>Whether this queue may carry <paramref name="cmd"/> (Linux's arm_smmu_cmdq_supports_cmd).</summary>
    public bool Supports(in Command cmd) => cmd.Opcode == CommandOpcode.CMD_SYNC || _supports(cmd);

    /// <summary>Both pointers to zero, as a driver does before enabling the queue.</summary>
    public void ResetPointers()
    {
        _q.Prod = _q.Cons = 0;
    }

    /// <summary>The entry's guest-physical address for a pointer.</summary>
    public ulong EntryAddress(uint pointer) => _q.EntryAddress(pointer);

    /// <summary>Reads back the command at <paramref name="pointer"/> (error reporting).</summary>
    public Command ReadEntry(uint pointer)
    {
        ulong a = _q.EntryAddress(pointer);
        return new Command(_ram.ReadUInt64(a), _ram.ReadUInt64(a + 8));
    }

    /// <summary>Overwrites the entry at <paramref name="pointer"/> (arm_smmu_cmdq_skip_err turns a bad command into a CMD_SYNC).</summary>
    public void WriteEntry(uint pointer, in Command cmd) => _ram.WriteUInt64s(_q.EntryAddress(pointer), [cmd.W0, cmd.W1]);

    /// <summary>
    /// Writes <paramref name="commands"/> (and a CMD_SYNC when <paramref name="sync"/>), publishes PROD,
    /// and with a sync waits for CONS to pass it. False when the sync did not complete.
    /// </summary>
    public bool Issue(ReadOnlySpan<Command> commands, bool sync)
    {
        bool written = true;
        foreach (var cmd in commands) written &= Append(cmd);
        if (sync) written &= Append(Command.Sync(SyncSignal.None));
        Publish();
        Counters.Batches++;
        return (!sync || WaitForConsumption()) && written;
    }

    /// <summary>Writes one command at PROD; false (the command dropped) when the queue never drained enough to take it.</summary>
    private bool Append(in Command cmd)
    {
        int attempts = 0;
        while (IsFull())
        {
            // Make room: publish what we have, then let the consumer run (or recover it).
            Publish();
            RefreshCons();
            if (!IsFull()) break;
            if (++attempts > RegisterWindow.PollAttempts)
            {
                Counters.SyncTimeouts++;
                return false;
            }
        }
        Trace?.Invoke($"{Name}: {cmd}");
        WriteEntry(_q.Prod, cmd);
        _q.Prod = _q.Next(_q.Prod);
        if (cmd.Opcode == CommandOpcode.CMD_SYNC) Counters.Syncs++;
        else Counters.Commands++;
        Counters.ByOpcode[cmd.Opcode] = Counters.ByOpcode.GetValueOrDefault(cmd.Opcode) + 1;
        return true;
    }

    private bool IsFull() => _q.IsFull;

    private void Publish() => _regs.Write32(_prodOffset, _q.Prod);

    /// <summary>Reads CONS; on an error hands the queue to the owner's recovery.</summary>
    private void RefreshCons()
    {
        uint cons = _regs.Read32(_consOffset);
        var err = (CommandError)SmmuModel.CMDQ_CONS_ERR.Get(cons);
        if (err != CommandError.None)
        {
            Counters.Errors++;
            ErrorHandler?.Invoke(this, err, cons & _q.PointerMask);
            cons = _regs.Read32(_consOffset);
        }
        _q.Cons = cons & _q.PointerMask;
    }

    /// <summary>Polls CONS until the queue is empty up to our PROD (we are the only producer).</summary>
    private bool WaitForConsumption()
    {
        for (int i = 0; i < RegisterWindow.PollAttempts; i++)
        {
            RefreshCons();
            if (_q.IsEmpty) return true;
        }
        Counters.SyncTimeouts++;
        return false;
    }
}

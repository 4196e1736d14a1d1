using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Hardware.Cmdqv;

public sealed partial class Tegra241Cmdqv
{
    private const int CommandWords = Command.Size / sizeof(ulong);

    /// <summary>
    /// One VCMDQ: an SMMU-format command queue (<see cref="SmmuQueue"/>, 16-byte entries) in host
    /// physical memory, with its page 0 and page 1 registers and its CMDQ_ALLOC entry.
    /// </summary>
    private sealed class Vcmdq(int index)
    {
        public readonly int Index = index;
        public readonly SmmuQueue Queue = new(Command.Size);
        public uint Alloc;
        public uint Config;
        public uint Gerror, Gerrorn;
        public ulong Base, ConsIndxBase;
        /// <summary>CONS.ERR while the queue is stopped on a command error; None once acknowledged.</summary>
        public CommandError Error;
        /// <summary>Consumption is under way (guards re-entry from an ErrorRaised handler or an SMMU callback).</summary>
        public bool Busy;
        public readonly CmdqvCounters Counters = new();

        public bool Allocated => (Alloc & CMDQV_CMDQ_ALLOCATED) != 0;
        public int AllocVintf => (int)CMDQV_CMDQ_ALLOC_VINTF.Get(Alloc);
        public int AllocLvcmdq => (int)CMDQV_CMDQ_ALLOC_LVCMDQ.Get(Alloc);
        public bool ConfigEnabled => (Config & VCMDQ_EN) != 0;
        /// <summary>Some GERROR bit differs from GERRORN: what the error maps report.</summary>
        public bool ErrorActive => ((Gerror ^ Gerrorn) & VCMDQ_GERROR_Mask) != 0;
        /// <summary>GERROR.CMDQ_ERR is unacknowledged: the queue does not run.</summary>
        public bool Stopped => ((Gerror ^ Gerrorn) & VCMDQ_GERROR_CMDQ_ERR) != 0;

        public void Reset()
        {
            Alloc = Config = Gerror = Gerrorn = 0;
            Base = ConsIndxBase = 0;
            Error = CommandError.None;
            Queue.Configure(0, 0, VCMDQ_LOG2SIZE_MAX);
            Queue.Prod = Queue.Cons = 0;
        }

        /// <summary>Programs the queue geometry from BASE: ADDR [47:5], LOG2SIZE [4:0] (clamped to 19).</summary>
        public void ApplyBase() => Queue.Configure(Base & VCMDQ_ADDR.Mask, (int)VCMDQ_LOG2SIZE.Get(Base), VCMDQ_LOG2SIZE_MAX);
    }

    private bool TryGetVintf(Vcmdq queue, out Vintf vintf)
    {
        if (queue.Allocated && queue.AllocVintf < _vintfs.Length)
        {
            vintf = _vintfs[queue.AllocVintf];
            return true;
        }
        vintf = null!;
        return false;
    }

    /// <summary>
    /// VCMDQ STATUS.ENABLED: CONFIG.EN set, the queue allocated to a VINTF that is enabled, and the
    /// CMDQV enabled. Allocation and the VINTF are checked here, not latched, so freeing either
    /// stops the queue.
    /// </summary>
    private bool IsQueueEnabled(Vcmdq queue) =>
        queue.ConfigEnabled && TryGetVintf(queue, out var vintf) && IsVintfEnabled(vintf);

    private bool TryGetRunnableVintf(Vcmdq queue, out Vintf vintf)
    {
        if (queue.ConfigEnabled && !queue.Stopped && TryGetVintf(queue, out vintf) && IsVintfEnabled(vintf)) return true;
        vintf = null!;
        return false;
    }

    /// <summary>Global VCMDQ of (VINTF, logical index); rebuilt after every CMDQ_ALLOC write (two claims: the lower index wins).</summary>
    private void RebuildLogicalMap()
    {
        Array.Fill(_logicalToGlobal, -1);
        foreach (var q in _queues)
        {
            if (!q.Allocated || q.AllocVintf >= _vintfs.Length) continue;
            int slot = q.AllocVintf * MaxLvcmdqs + q.AllocLvcmdq;
            if (_logicalToGlobal[slot] < 0) _logicalToGlobal[slot] = q.Index;
        }
    }

    private void WriteCmdqAlloc(Vcmdq queue, uint value)
    {
        queue.Alloc = value & CMDQ_ALLOC_WritableMask;
        RebuildLogicalMap();
        ConsumeCommands(queue);
    }

    private uint ReadPage0(Vcmdq queue, ulong register) => (VcmdqPage0Register)register switch
    {
        VcmdqPage0Register.CONS => queue.Queue.Cons | (uint)VCMDQ_CONS_ERR.Encode((ulong)queue.Error),
        VcmdqPage0Register.PROD => queue.Queue.Prod,
        VcmdqPage0Register.CONFIG => queue.Config,
        VcmdqPage0Register.STATUS => IsQueueEnabled(queue) ? VCMDQ_ENABLED : 0,
        VcmdqPage0Register.GERROR => queue.Gerror,
        VcmdqPage0Register.GERRORN => queue.Gerrorn,
        _ => 0,
    };

    private void WritePage0(Vcmdq queue, ulong register, uint value)
    {
        switch ((VcmdqPage0Register)register)
        {
            case VcmdqPage0Register.CONS:
                // CONS is the hardware's pointer: software may set it only while the queue is disabled.
                if (!IsQueueEnabled(queue)) queue.Queue.Cons = value & (uint)VCMDQ_CONS_RD.Mask;
                break;
            case VcmdqPage0Register.PROD:
                queue.Queue.Prod = value & (uint)VCMDQ_PROD_WR.Mask;
                Counters.ProdWrites++;
                queue.Counters.ProdWrites++;
                if (TryGetVintf(queue, out var vintf)) vintf.Counters.ProdWrites++;
                ConsumeCommands(queue);
                break;
            case VcmdqPage0Register.CONFIG:
                queue.Config = value & VCMDQ_EN;
                ConsumeCommands(queue);
                break;
            case VcmdqPage0Register.GERRORN:
                WriteGerrorn(queue, value);
                break;
        }
    }

    private static uint ReadPage1(Vcmdq queue, ulong register) => (VcmdqPage1Register)register switch
    {
        VcmdqPage1Register.BASE => (uint)queue.Base,
        VcmdqPage1Register.BASE_H => (uint)(queue.Base >> RegisterBits),
        VcmdqPage1Register.CONS_INDX_BASE => (uint)queue.ConsIndxBase,
        VcmdqPage1Register.CONS_INDX_BASE_H => (uint)(queue.ConsIndxBase >> RegisterBits),
        _ => 0,
    };

    private void WritePage1(Vcmdq queue, ulong register, uint value)
    {
        switch ((VcmdqPage1Register)register)
        {
            case VcmdqPage1Register.BASE:
            case VcmdqPage1Register.BASE_H:
                // Like the SMMU's CMDQ_BASE, BASE is fixed while the queue is enabled; such writes are ignored.
                if (IsQueueEnabled(queue)) break;
                queue.Base = MergeHalf(queue.Base, register == (ulong)VcmdqPage1Register.BASE_H, value) & (VCMDQ_ADDR.Mask | VCMDQ_LOG2SIZE.Mask);
                queue.ApplyBase();
                break;
            case VcmdqPage1Register.CONS_INDX_BASE:
            case VcmdqPage1Register.CONS_INDX_BASE_H:
                queue.ConsIndxBase = MergeHalf(queue.ConsIndxBase, register == (ulong)VcmdqPage1Register.CONS_INDX_BASE_H, value) & VCMDQ_CONS_INDX_ADDR.Mask;
                break;
        }
    }

    private static ulong MergeHalf(ulong register, bool high, uint value) => high
        ? (register & LowWord) | ((ulong)value << RegisterBits)
        : (register & ~LowWord) | value;

    /// <summary>
    /// GERRORN: writing GERROR's value acknowledges its active errors; acknowledging CMDQ_ERR clears
    /// CONS.ERR and lets the queue run again from CONS (where the stopping command still is, unless
    /// software replaced it). Writes that would make a bit active are ignored (UNPREDICTABLE for the
    /// SMMU's GERRORN; this model keeps the queue consistent with its error maps).
    /// </summary>
    private void WriteGerrorn(Vcmdq queue, uint value)
    {
        uint active = queue.Gerror ^ queue.Gerrorn;
        uint acked = active & ~(queue.Gerror ^ (value & VCMDQ_GERROR_Mask));
        queue.Gerrorn ^= acked;
        if ((acked & VCMDQ_GERROR_CMDQ_ERR) != 0)
        {
            queue.Error = CommandError.None;
            ConsumeCommands(queue);
        }
    }

    private void ConsumeAll()
    {
        foreach (var q in _queues) ConsumeCommands(q);
    }

    private void ConsumeVintf(Vintf vintf)
    {
        foreach (var q in _queues)
        {
            if (q.Allocated && q.AllocVintf == vintf.Index) ConsumeCommands(q);
        }
    }

    /// <summary>
    /// Runs a VCMDQ's commands from CONS up to PROD, synchronously, while it stays runnable: each is
    /// read from host physical memory, filtered and rewritten by its VINTF, then executed by the SMMU.
    /// The first error stops the queue with CONS at the failing command: CONS.ERR set, GERROR.CMDQ_ERR
    /// toggled, the error maps showing it, and <see cref="ErrorRaised"/> unless the VINTF is masked.
    /// A handler that fixes the command and acknowledges at once lets this loop carry on.
    /// </summary>
    private void ConsumeCommands(Vcmdq queue)
    {
        if (queue.Busy) return;
        queue.Busy = true;
        try
        {
            Span<ulong> words = stackalloc ulong[CommandWords];
            while (TryGetRunnableVintf(queue, out var vintf) && !queue.Queue.IsEmpty)
            {
                ulong address = queue.Queue.EntryAddress(queue.Queue.Cons);
                if (_memory.IsAbort(address, Command.Size))
                {
                    StopQueue(queue, vintf, CommandError.CERROR_ABT, default);
                    continue;
                }
                _memory.ReadUInt64s(address, words);
                var issued = new Command(words[0], words[1]);
                var cmd = issued;
                var error = Admit(vintf, queue, ref cmd);
                if (error == CommandError.None)
                {
                    CommandAdmitted?.Invoke(new VintfCommand(vintf.Index, vintf.HypOwn, vintf.Vmid, issued, cmd));
                    error = _smmu.Execute(cmd);
                }
                if (error != CommandError.None)
                {
                    StopQueue(queue, vintf, error, issued);
                    continue;
                }
                queue.Queue.Cons = queue.Queue.Next(queue.Queue.Cons);
                Count(vintf, queue, static c => c.CommandsExecuted++);
            }
        }
        finally
        {
            queue.Busy = false;
        }
    }

    private void StopQueue(Vcmdq queue, Vintf vintf, CommandError error, in Command cmd)
    {
        queue.Error = error;
        if (!queue.Stopped) queue.Gerror ^= VCMDQ_GERROR_CMDQ_ERR;
        Count(vintf, queue, static c => c.Errors++);
        if (((_vintfIntMask >> vintf.Index) & 1) != 0) return;
        Count(vintf, queue, static c => c.Interrupts++);
        ErrorRaised?.Invoke(new VcmdqError(vintf.Index, queue.AllocLvcmdq, queue.Index, error, cmd));
    }
}

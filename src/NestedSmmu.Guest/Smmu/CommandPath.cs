namespace NestedSmmu.Guest.Smmu;

/// <summary>Which queue a command batch went through.</summary>
public enum CommandPath
{
    /// <summary>The (v)SMMU's own command queue: in a VM every PROD write traps to the VMM.</summary>
    SmmuQueue,
    /// <summary>A CMDQV VCMDQ: in a VM its page is mapped, so PROD writes reach the hardware directly.</summary>
    Vcmdq,
}

/// <summary>What went through one path.</summary>
public sealed class CommandPathCounters
{
    /// <summary>Publications of PROD (one per issued command list).</summary>
    public long Batches { get; internal set; }
    /// <summary>Commands other than CMD_SYNC.</summary>
    public long Commands { get; internal set; }
    public long Syncs { get; internal set; }
    /// <summary>Times the queue stopped on CONS.ERR and the driver recovered it.</summary>
    public long Errors { get; internal set; }
    /// <summary>CMD_SYNCs that did not complete within the poll bound.</summary>
    public long SyncTimeouts { get; internal set; }
    /// <summary>Commands by opcode (CMD_SYNC included).</summary>
    public Dictionary<NestedSmmu.Hardware.Smmu.CommandOpcode, long> ByOpcode { get; } = new();

    public override string ToString() => $"batches={Batches} commands={Commands} syncs={Syncs} errors={Errors}";
}

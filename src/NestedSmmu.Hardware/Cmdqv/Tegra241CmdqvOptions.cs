using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Hardware.Cmdqv;

/// <summary>
/// The synthesis parameters of one CMDQV, reflected in PARAM. The defaults are 16 VINTFs,
/// 128 VCMDQs (8 logical queues per VINTF) and 16 SID slots per VINTF: Grace's exact PARAM is
/// not in the public sources we checked, so these stay inside what the register layout can
/// address (64 VINTFs, 128 VCMDQs, 16 SID slots) with the largest queue count it allows.
/// </summary>
public sealed record Tegra241CmdqvOptions
{
    /// <summary>PARAM.NUM_VINTF_LOG2: 2^n virtual interfaces (0..6).</summary>
    public int NumVintfLog2 { get; init; } = 4;
    /// <summary>PARAM.NUM_VCMDQ_LOG2: 2^n VCMDQs in all, shared out evenly per VINTF (0..7, at least NumVintfLog2).</summary>
    public int NumVcmdqLog2 { get; init; } = 7;
    /// <summary>PARAM.NUM_SID_PER_VM_LOG2: 2^n SID_MATCH/SID_REPLACE slots per VINTF (0..4).</summary>
    public int NumSidPerVmLog2 { get; init; } = 4;
    /// <summary>PARAM.VER. Linux's and QEMU's drivers expect 1.</summary>
    public int Version { get; init; } = 1;

    public static Tegra241CmdqvOptions Default { get; } = new();

    /// <summary>What QEMU shows a guest: 1 VINTF, 2 VCMDQs, 16 SIDs (PARAM 0x4011).</summary>
    public static Tegra241CmdqvOptions QemuGuest { get; } = new() { NumVintfLog2 = 0, NumVcmdqLog2 = 1, NumSidPerVmLog2 = 4 };

    public int NumVintfs => 1 << NumVintfLog2;
    public int NumVcmdqs => 1 << NumVcmdqLog2;
    /// <summary>Logical VCMDQs per VINTF, as Linux computes it: VCMDQs / VINTFs.</summary>
    public int LvcmdqsPerVintf => NumVcmdqs / NumVintfs;
    public int SidsPerVintf => 1 << NumSidPerVmLog2;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the field when a count cannot be built.</summary>
    public void Validate()
    {
        if (NumVintfLog2 is < 0 or > Tegra241CmdqvLayout.MaxVintfLog2)
            throw new ArgumentException($"NUM_VINTF_LOG2 = {NumVintfLog2}: must be 0..{Tegra241CmdqvLayout.MaxVintfLog2} (VINTF_ERR_MAP has 64 bits).", nameof(NumVintfLog2));
        if (NumVcmdqLog2 is < 0 or > Tegra241CmdqvLayout.MaxVcmdqLog2)
            throw new ArgumentException($"NUM_VCMDQ_LOG2 = {NumVcmdqLog2}: must be 0..{Tegra241CmdqvLayout.MaxVcmdqLog2} (CMDQ_ERR_MAP has 128 bits).", nameof(NumVcmdqLog2));
        if (NumVcmdqLog2 < NumVintfLog2)
            throw new ArgumentException($"NUM_VCMDQ_LOG2 = {NumVcmdqLog2} is below NUM_VINTF_LOG2 = {NumVintfLog2}: every VINTF needs at least one VCMDQ.", nameof(NumVcmdqLog2));
        if (NumSidPerVmLog2 is < 0 or > Tegra241CmdqvLayout.MaxSidPerVmLog2)
            throw new ArgumentException($"NUM_SID_PER_VM_LOG2 = {NumSidPerVmLog2}: must be 0..{Tegra241CmdqvLayout.MaxSidPerVmLog2} (16 SID_MATCH slots per VINTF).", nameof(NumSidPerVmLog2));
        if (!Tegra241Cmdqv.CMDQV_VER.Fits((ulong)Version) || Version < 0)
            throw new ArgumentException($"VER = {Version}: must fit PARAM.VER {Tegra241Cmdqv.CMDQV_VER}.", nameof(Version));
    }
}

/// <summary>What a CMDQV, one VCMDQ or one VINTF has done, for diagnostics and the benchmark/CLI reports.</summary>
public sealed class CmdqvCounters
{
    /// <summary>Commands that passed the filter and ran on the SMMU without error.</summary>
    public long CommandsExecuted { get; internal set; }
    /// <summary>Times a queue stopped on an error (filtered command, unmatched vSID, SMMU error, abort).</summary>
    public long Errors { get; internal set; }
    /// <summary>Commands a guest VINTF may not issue (a subset of <see cref="Errors"/>).</summary>
    public long CommandsRejected { get; internal set; }
    /// <summary>ATC_INV whose vSID had no SID_MATCH slot (a subset of <see cref="Errors"/>).</summary>
    public long UnmatchedSids { get; internal set; }
    public long VmidSubstitutions { get; internal set; }
    public long SidSubstitutions { get; internal set; }
    /// <summary>Guest CMD_SYNCs whose IRQ/MSI completion signal was dropped (VCMDQs complete syncs with CS_NONE).</summary>
    public long SyncSignalsDropped { get; internal set; }
    public long ProdWrites { get; internal set; }
    /// <summary>ErrorRaised notifications (errors of masked VINTFs are not counted here).</summary>
    public long Interrupts { get; internal set; }

    internal void Reset()
    {
        CommandsExecuted = Errors = CommandsRejected = UnmatchedSids = 0;
        VmidSubstitutions = SidSubstitutions = SyncSignalsDropped = ProdWrites = Interrupts = 0;
    }
}

/// <summary>
/// A VCMDQ stopped on an error: the CMDQV interrupt. The host reads VINTF_ERR_MAP, CMDQ_ERR_MAP and
/// the VINTF's LVCMDQ_ERR_MAP to find it; this record carries the same facts for convenience.
/// </summary>
/// <param name="Vintf">The VINTF the queue is allocated to.</param>
/// <param name="LogicalQueue">Its index inside that VINTF.</param>
/// <param name="Queue">Its global index.</param>
/// <param name="Error">The CONS.ERR value.</param>
/// <param name="Command">The command at CONS as the queue owner wrote it (default for CERROR_ABT).</param>
public readonly record struct VcmdqError(int Vintf, int LogicalQueue, int Queue, CommandError Error, Command Command);

/// <summary>
/// A command a VINTF let through to the SMMU: what the VCMDQ held and what the SMMU was given after the
/// VINTF's filter (VMID and SID substitution). The view of a bus analyzer between the CMDQV and the SMMU.
/// </summary>
/// <param name="Vintf">The VINTF whose queue held it.</param>
/// <param name="HypOwn">The VINTF is the host's (CONFIG.HYP_OWN): nothing was filtered.</param>
/// <param name="Vmid">The VINTF's CONFIG.VMID when it ran.</param>
/// <param name="Issued">The command as read from the queue.</param>
/// <param name="Admitted">The command the SMMU executes.</param>
public readonly record struct VintfCommand(int Vintf, bool HypOwn, ushort Vmid, Command Issued, Command Admitted);

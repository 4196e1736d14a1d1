namespace NestedSmmu.Vmm.VCmdqv;

/// <summary>
/// The guest's CMDQV accesses, split the way CMDQV is meant to split them: accesses the VMM
/// handled (traps, one count per <see cref="CmdqvPage"/>) and accesses that went straight to the
/// host VINTF page mapped into the guest (direct, one count per VCMDQ, with PROD writes, the
/// doorbell, apart). Direct accesses never run VMM code; they are counted in the mapping the
/// guest's MMIO bus holds, which stands for the stage-2 mapping of the host page.
/// </summary>
public sealed class CmdqvAccessCounters
{
    private readonly long[] _traps = new long[GuestCmdqvLayout.Pages];
    private readonly long[] _direct = new long[GuestCmdqvLayout.NumVcmdqs];
    private readonly long[] _directProd = new long[GuestCmdqvLayout.NumVcmdqs];

    /// <summary>Accesses the VMM handled in <paramref name="page"/>.</summary>
    public long Traps(CmdqvPage page) => _traps[(int)page];

    /// <summary>Accesses the VMM handled, all pages.</summary>
    public long TotalTraps => _traps.Sum();

    /// <summary>Accesses to VCMDQ <paramref name="queue"/>'s registers through the mapped host page.</summary>
    public long Direct(int queue) => _direct[queue];

    /// <summary>PROD writes (doorbells) to VCMDQ <paramref name="queue"/> through the mapped host page.</summary>
    public long DirectProdWrites(int queue) => _directProd[queue];

    /// <summary>Accesses through the mapped host page that hit no guest VCMDQ (logical queues the guest is not shown).</summary>
    public long DirectOther { get; private set; }

    /// <summary>Accesses through the mapped host page, all queues.</summary>
    public long TotalDirect => _direct.Sum() + DirectOther;

    /// <summary>A snapshot for the VM's run report.</summary>
    public CmdqvAccessReport Snapshot() => new(
        Enum.GetValues<CmdqvPage>().ToDictionary(p => p, Traps),
        [.. _direct], [.. _directProd], DirectOther);

    internal void Trap(CmdqvPage page) => _traps[(int)page]++;

    internal void DirectAccess(int queue, bool prodWrite)
    {
        if ((uint)queue >= (uint)_direct.Length)
        {
            DirectOther++;
            return;
        }
        _direct[queue]++;
        if (prodWrite) _directProd[queue]++;
    }
}

/// <summary>The CMDQV's part of the VM's run report: trapped accesses by page, direct accesses by VCMDQ.</summary>
/// <param name="TrapsByPage">Accesses the VMM handled, by register page.</param>
/// <param name="DirectByQueue">Accesses through the mapped host page, by guest VCMDQ.</param>
/// <param name="DirectProdWritesByQueue">PROD writes through the mapped host page, by guest VCMDQ.</param>
/// <param name="DirectOther">Accesses through the mapped host page outside the guest's VCMDQs.</param>
public sealed record CmdqvAccessReport(
    IReadOnlyDictionary<CmdqvPage, long> TrapsByPage,
    IReadOnlyList<long> DirectByQueue,
    IReadOnlyList<long> DirectProdWritesByQueue,
    long DirectOther)
{
    /// <summary>Every trapped access.</summary>
    public long TotalTraps => TrapsByPage.Values.Sum();

    /// <summary>Every direct access.</summary>
    public long TotalDirect => DirectByQueue.Sum() + DirectOther;
}

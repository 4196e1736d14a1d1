namespace NestedSmmu.Vmm.VSmmu;

/// <summary>
/// MMIO traps of one emulated register frame, counted where the VMM dispatches them: reads and
/// writes per 64 KiB register page (an SMMUv3 frame has two; a CMDQV frame more). Every access
/// the VMM handles is a VM exit on real hardware, so these are the exits the guest paid for.
/// </summary>
public sealed class MmioTrapCounters
{
    /// <summary>Bytes per register page (SMMUv3 and Tegra241 CMDQV both use 64 KiB pages).</summary>
    public const ulong PageSize = 0x10000;

    private readonly long[] _reads;
    private readonly long[] _writes;

    /// <summary>Counters for a frame of <paramref name="pages"/> register pages.</summary>
    public MmioTrapCounters(int pages)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(pages, 1);
        _reads = new long[pages];
        _writes = new long[pages];
    }

    /// <summary>Register pages counted.</summary>
    public int Pages => _reads.Length;

    /// <summary>Reads trapped on <paramref name="page"/>.</summary>
    public long Reads(int page) => _reads[page];

    /// <summary>Writes trapped on <paramref name="page"/>.</summary>
    public long Writes(int page) => _writes[page];

    /// <summary>Every trap on every page.</summary>
    public long Total => _reads.Sum() + _writes.Sum();

    /// <summary>Records one access at frame offset <paramref name="offset"/>; offsets past the frame count on its last page.</summary>
    public void Record(ulong offset, bool write)
    {
        int page = (int)Math.Min(offset / PageSize, (ulong)(_reads.Length - 1));
        if (write) _writes[page]++;
        else _reads[page]++;
    }

    /// <inheritdoc/>
    public override string ToString() =>
        string.Join(", ", Enumerable.Range(0, Pages).Select(p => $"page {p}: {_reads[p]} reads, {_writes[p]} writes"));
}

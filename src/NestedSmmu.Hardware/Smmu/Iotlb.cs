namespace NestedSmmu.Hardware.Smmu;

/// <summary>Which translation regime an IOTLB entry belongs to; invalidation commands name one.</summary>
public enum TlbRegime : byte
{
    /// <summary>Non-secure EL1 stage 1 (alone or combined with stage 2), tagged by VMID and ASID.</summary>
    NonHyp,
    /// <summary>EL2 stage 1 (STE.STRW = EL2), tagged by ASID only.</summary>
    El2,
    /// <summary>Stage 2 alone, tagged by VMID; input is an IPA.</summary>
    Stage2,
}

/// <summary>
/// One cached translation: the mapping the walk found (its input base, size and level, so
/// invalidation by address, range and TTL is exact), the output and the permissions.
/// For nested streams the entry combines both stages: its size is the smaller of the two.
/// </summary>
public readonly record struct TlbEntry(
    TlbRegime Regime,
    ushort Vmid,
    ushort Asid,
    bool Global,
    ulong InputBase,
    int SizeShift,
    int Level,
    Granule Granule,
    ulong OutputBase,
    Permissions Permissions)
{
    public ulong Size => 1UL << SizeShift;
    public bool Covers(ulong address) => address - InputBase < Size;
    public bool Overlaps(ulong start, ulong length) => InputBase < start + length && start < InputBase + Size;
    public ulong Translate(ulong input) => OutputBase + (input - InputBase);
}

/// <summary>
/// The SMMU's TLB. Entries are indexed per 4 KiB input page (a larger mapping is filled in page
/// by page as it is used, like a splintering TLB), so a lookup is one probe for the ASID plus
/// one for global entries. Only leaf translations are cached (no walk caches), so the Leaf bit of
/// an invalidation changes nothing here.
/// </summary>
public sealed class Iotlb
{
    private const int IndexShift = 12;
    /// <summary>Global entries are stored under this ASID key so any ASID finds them.</summary>
    private const int GlobalAsidKey = -1;

    private readonly record struct Key(TlbRegime Regime, ushort Vmid, int Asid, ulong Page);

    private readonly Dictionary<Key, TlbEntry> _entries = new();

    public int Capacity { get; }
    public int Count => _entries.Count;
    public long Hits { get; private set; }
    public long Misses { get; private set; }

    public Iotlb(int capacity = 1 << 16) => Capacity = capacity;

    public IEnumerable<TlbEntry> Entries => _entries.Values.Distinct();

    public bool TryLookup(TlbRegime regime, ushort vmid, ushort asid, ulong input, out TlbEntry entry)
    {
        ulong page = input >> IndexShift;
        // Stage-2 entries carry no ASID: they are inserted as global and found by the second probe.
        if (_entries.TryGetValue(new Key(regime, vmid, asid, page), out entry) ||
            _entries.TryGetValue(new Key(regime, vmid, GlobalAsidKey, page), out entry))
        {
            Hits++;
            return true;
        }
        Misses++;
        return false;
    }

    public void Insert(TlbEntry entry, ulong input)
    {
        if (_entries.Count >= Capacity) _entries.Clear(); // whole-TLB eviction: simple and deterministic
        int asid = entry.Global ? GlobalAsidKey : entry.Asid;
        _entries[new Key(entry.Regime, entry.Vmid, asid, input >> IndexShift)] = entry;
    }

    /// <summary>Removes every entry <paramref name="match"/> selects; returns how many page slots went.</summary>
    public int Invalidate(Func<TlbEntry, bool> match)
    {
        List<Key>? doomed = null;
        foreach (var (k, e) in _entries)
        {
            if (match(e)) (doomed ??= new()).Add(k);
        }
        if (doomed is null) return 0;
        foreach (var k in doomed) _entries.Remove(k);
        return doomed.Count;
    }

    public void Clear() => _entries.Clear();
}

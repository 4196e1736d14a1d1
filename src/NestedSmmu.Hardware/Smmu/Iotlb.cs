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
/// one for global entries. Only leaf translations are cached here, so the Leaf bit of an
/// invalidation changes nothing here; table entries live in <see cref="WalkCache"/>.
/// </summary>
public sealed class Iotlb
{
    private const int IndexShift = 12;
    /// <summary>Global entries are stored under this ASID key so any ASID finds them.</summary>
    private const int GlobalAsidKey = -1;

    /// <summary>Page number plus one word of tags (regime, VMID, ASID or the global marker), hashed cheaply.</summary>
    private readonly struct Key : IEquatable<Key>
    {
        public readonly ulong Page;
        public readonly ulong Tag;
        public Key(TlbRegime regime, ushort vmid, int asid, ulong page)
        {
            Page = page;
            Tag = ((ulong)regime << 48) | ((ulong)vmid << 32) | (uint)asid;
        }
        public bool Equals(Key other) => Page == other.Page && Tag == other.Tag;
        public override bool Equals(object? obj) => obj is Key k && Equals(k);
        public override int GetHashCode() => (int)(Page ^ (Page >> 29) ^ (Tag * 0x9E3779B97F4A7C15 >> 32));
    }

    private readonly Dictionary<Key, TlbEntry> _entries = new();
    // Global (nG = 0) entries held; while there are none a miss needs no second probe.
    private int _globalSlots;

    public int Capacity { get; }
    public int Count => _entries.Count;
    public long Hits { get; private set; }
    public long Misses { get; private set; }
    /// <summary>Changes on every insertion and invalidation: lets per-stream shortcuts know they are stale.</summary>
    public long Generation { get; private set; }

    /// <summary>Counts a hit served by a shortcut in front of the TLB (the SMMU's stream micro-TLB).</summary>
    internal void CountHit() => Hits++;

    public Iotlb(int capacity = 1 << 16) => Capacity = capacity;

    public IEnumerable<TlbEntry> Entries => _entries.Values.Distinct();

    public bool TryLookup(TlbRegime regime, ushort vmid, ushort asid, ulong input, out TlbEntry entry)
    {
        ulong page = input >> IndexShift;
        // The SMMU's stream micro-TLB (SmmuV3.Translate) sits in front of this: repeated accesses
        // to one page never get here, so this needs no one-entry cache of its own.
        var key = new Key(regime, vmid, asid, page);
        // Stage-2 entries carry no ASID: they are inserted as global and found by the second probe.
        if (_entries.TryGetValue(key, out entry) ||
            (_globalSlots > 0 && _entries.TryGetValue(new Key(regime, vmid, GlobalAsidKey, page), out entry)))
        {
            Hits++;
            return true;
        }
        Misses++;
        return false;
    }

    public void Insert(TlbEntry entry, ulong input)
    {
        Generation++;
        if (_entries.Count >= Capacity) { _entries.Clear(); _globalSlots = 0; } // whole-TLB eviction: simple and deterministic
        int asid = entry.Global ? GlobalAsidKey : entry.Asid;
        var key = new Key(entry.Regime, entry.Vmid, asid, input >> IndexShift);
        ref TlbEntry slot = ref System.Runtime.InteropServices.CollectionsMarshal.GetValueRefOrAddDefault(_entries, key, out bool existed);
        if (entry.Global && !existed) _globalSlots++;
        slot = entry;
    }

    /// <summary>Removes every entry <paramref name="scope"/> selects; returns how many page slots went.</summary>
    public int Invalidate(in TlbInvalidation scope)
    {
        if (_entries.Count == 0) return 0;
        Generation++;
        int removed = 0;
        // Removing during enumeration is allowed for Dictionary since .NET Core 3.0.
        foreach (var (k, e) in _entries)
        {
            if (scope.Matches(e)) { _entries.Remove(k); removed++; if (e.Global) _globalSlots--; }
        }
        return removed;
    }

    public void Clear()
    {
        Generation++;
        _entries.Clear();
        _globalSlots = 0;
    }
}

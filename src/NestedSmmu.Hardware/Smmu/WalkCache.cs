using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace NestedSmmu.Hardware.Smmu;

/// <summary>
/// The tags a walk's cached entries carry (IHI 0070 3.17, TLB tagging): the regime, the VMID and,
/// for stage 1, the ASID. <see cref="Global"/> marks entries of a regime without ASIDs (EL2 without
/// E2H): ASID-scoped invalidations treat them as they treat global leaf entries.
/// </summary>
public readonly record struct WalkTags(TlbRegime Regime, ushort Vmid, ushort Asid, bool Global)
{
    /// <summary>The tags of stage-2 walks for <paramref name="vmid"/>: no ASID.</summary>
    public static WalkTags Stage2(ushort vmid) => new(TlbRegime.Stage2, vmid, 0, true);
}

/// <summary>
/// What a walk-cache entry holds. IHI 0070 permits an SMMU to cache intermediate translation-table
/// entries and the stage-2 translations of stage-1 table addresses (3.17; the Leaf field of the
/// invalidation commands in 4.4 exists because of it).
/// </summary>
public enum WalkCacheKind : byte
{
    /// <summary>A stage-1 table descriptor: the next-level table (an IPA when nested) for an input region.</summary>
    Stage1Table = 1,
    /// <summary>A stage-2 table descriptor: the next-level table PA for an IPA region.</summary>
    Stage2Table = 2,
    /// <summary>A stage-2 leaf used to fetch a stage-1 descriptor: the PA of a stage-1 table's IPA.</summary>
    Stage2TableFetch = 3,
}

/// <summary>One walk-cache entry as diagnostics see it.</summary>
public readonly record struct WalkCacheEntry(WalkCacheKind Kind, WalkTags Tags, ulong WalkBase, int Level, ulong InputBase, int SizeShift, ulong Output);

/// <summary>
/// The SMMU's walk caches: a fixed-size, 4-way set-associative array (no allocation after
/// construction), the set chosen by a hash of the tags, the walk's table base, the level and the
/// input region; a full set replaces its ways in turn. Entries
/// also carry the table base of the walk that made them (STE.S2TTB or CD.TTBx): a stream whose
/// configuration now names other tables never hits them, which the architecture allows (a cache
/// may always miss) and which keeps misconfigured ASID/VMID sharing from showing stale tables.
/// Invalidation follows IHI 0070 4.4: leaf-only forms (Leaf = 1) keep table entries; address forms
/// remove every entry whose region overlaps the range, whatever the TTL (TTL names the leaf's level,
/// and the tables above that leaf are exactly what a non-leaf invalidation must remove).
/// </summary>
public sealed class WalkCache
{
    private struct Slot
    {
        public long Generation;     // valid while equal to the cache's generation
        public ulong Key;           // what a lookup compares: the region (tables), the granule page (fetches)
        public ulong Region;        // input >> SizeShift: what invalidation compares
        public ulong WalkBase;
        public ulong Output;        // next table address, or the PA base of a fetch mapping
        public ushort Vmid, Asid;
        public TlbRegime Regime;
        public WalkCacheKind Kind;
        public byte Level;          // level of the table Output is (tables), the leaf's level (fetches)
        public byte SizeShift;      // log2 of the input region the entry covers
        public byte PageShift;      // the walk's granule
        public byte Flags;          // stage 1: APTable accumulations; fetch: stage-2 write permission
        public bool Global;
    }

    /// <summary>Stage-1 Flags bit: APTable[1] set on the way (no writes below).</summary>
    public const byte NoWrite = 1;
    /// <summary>Stage-1 Flags bit: APTable[0] set on the way (no unprivileged access below).</summary>
    public const byte NoUnprivileged = 2;
    /// <summary>Fetch Flags bit: stage 2 lets the table be written (hardware access-flag updates).</summary>
    public const byte Writable = 1;

    private const int WaysLog2 = 2;
    private const int Ways = 1 << WaysLog2;
    private readonly Slot[] _slots;
    private readonly int _hashShift;
    private int _victim;
    private long _generation = 1;
    private int _count;

    // OutOfLine: the lookups and insertions are kept out of the walker's loop. Inlined there (the
    // JIT's choice), the walker's frame ran out of registers and the set hash went through the
    // stack at every step; a call with the hash in registers is cheaper (the profile of a cold
    // nested walk: the inlined hash and set scan were about a third of the walk).

    /// <summary>A 4-way set-associative cache of 2^<paramref name="log2Entries"/> entries.</summary>
    public WalkCache(int log2Entries = 10)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(log2Entries, WaysLog2 + 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(log2Entries, 20);
        _slots = new Slot[1 << log2Entries];
        _hashShift = 64 - (log2Entries - WaysLog2);
    }

    public int Capacity => _slots.Length;
    /// <summary>Valid entries (an upper bound after replacements; exact after Clear or Invalidate).</summary>
    public int Count => _count;
    public long Hits { get; private set; }
    public long Misses { get; private set; }

    /// <summary>When false nothing is looked up or inserted (a model without walk caches).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The first slot of the set the key maps to.</summary>
    private int SetOf(WalkCacheKind kind, ushort vmid, ushort asid, ulong walkBase, int level, ulong key)
    {
        ulong h = (key ^ (walkBase >> 12) * 0xC2B2AE3D27D4EB4F ^ ((ulong)kind << 56 | (ulong)level << 48 | (ulong)vmid << 16 | asid))
            * 0x9E3779B97F4A7C15;
        return (int)(h >> _hashShift) << WaysLog2;
    }

    private bool Same(in Slot s, WalkCacheKind kind, in WalkTags tags, ulong walkBase, int level, int pageShift, ulong region) =>
        s.Generation == _generation && s.Key == region && s.WalkBase == walkBase && s.Kind == kind && s.Level == level
        && s.PageShift == pageShift && s.Vmid == tags.Vmid && s.Asid == tags.Asid && s.Regime == tags.Regime;

    /// <summary>
    /// The table to use at <paramref name="level"/> for <paramref name="input"/> in the walk of
    /// <paramref name="walkBase"/>, found when an earlier walk read the table descriptor one level up.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see OutOfLine
    internal bool TryGetTable(int stage, in WalkTags tags, ulong walkBase, Granule g, int level, ulong input, out ulong table, out byte flags)
    {
        if (_count == 0) return Miss(out table, out flags);
        var kind = stage == 1 ? WalkCacheKind.Stage1Table : WalkCacheKind.Stage2Table;
        int shift = GranuleGeometry.LevelShift(g, level - 1);
        ulong region = input >> shift;
        int set = SetOf(kind, tags.Vmid, tags.Asid, walkBase, level, region);
        for (int w = set; w < set + Ways; w++)
        {
            ref Slot s = ref _slots[w];
            if (Same(s, kind, tags, walkBase, level, (int)g, region))
            {
                Hits++;
                (table, flags) = (s.Output, s.Flags);
                return true;
            }
        }
        return Miss(out table, out flags);
    }

    // An empty cache (every cold walk starts so: Clear and whole-cache invalidations leave the
    // count exact) answers without hashing or reading a set.
    private bool Miss(out ulong table, out byte flags)
    {
        Misses++;
        (table, flags) = (0, 0);
        return false;
    }

    /// <summary>The PA of the stage-1 table IPA <paramref name="ipa"/> under stage 2 <paramref name="s2Base"/> of <paramref name="vmid"/>.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see OutOfLine
    internal bool TryGetFetch(ushort vmid, ulong s2Base, Granule g, ulong ipa, out ulong pa, out bool writable)
    {
        if (_count == 0) { Misses++; (pa, writable) = (0, false); return false; }
        ulong page = ipa >> (int)g;
        int set = SetOf(WalkCacheKind.Stage2TableFetch, vmid, 0, s2Base, 0, page);
        for (int w = set; w < set + Ways; w++)
        {
            ref Slot s = ref _slots[w];
            // A fetch entry is found through the granule page it was made for (Key); its region is the
            // real mapping, which may be a block, kept for exact invalidation.
            if (s.Generation == _generation && s.Key == page && s.Kind == WalkCacheKind.Stage2TableFetch && s.WalkBase == s2Base
                && s.Vmid == vmid && s.PageShift == (int)g)
            {
                Hits++;
                pa = s.Output + (ipa & ((1UL << s.SizeShift) - 1));
                writable = (s.Flags & Writable) != 0;
                return true;
            }
        }
        Misses++;
        (pa, writable) = (0, false);
        return false;
    }

    // Insertion is staged. The walker records what a translation learns in _staged (plain stores,
    // no call per entry: the calls with their eight or more arguments cost more than the insertions
    // themselves), and CommitStaged inserts it when the translation ends. Nothing can invalidate
    // in between, and a lookup during the translation misses what it staged: the walker finds those
    // in its own record of the translation's stage-2 paths. An implementation may fill its walk
    // caches whenever it likes (IHI 0070 3.17: a cache may always miss).
    private const int StagedCapacity = 32;
    private readonly Slot[] _staged = new Slot[StagedCapacity];
    private int _stagedCount;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref Slot NextStaged()
    {
        if (_stagedCount == StagedCapacity) CommitStaged();
        return ref _staged[_stagedCount++];
    }

    /// <summary>Stages the table descriptor at <paramref name="level"/> - 1 that leads to <paramref name="table"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void StageTable(int stage, in WalkTags tags, ulong walkBase, Granule g, int level, ulong input, ulong table, byte flags)
    {
        int shift = GranuleGeometry.LevelShift(g, level - 1);
        ulong region = input >> shift;
        ref Slot s = ref NextStaged();
        s.Key = region;
        s.Region = region;
        s.WalkBase = walkBase;
        s.Output = table;
        s.Vmid = tags.Vmid;
        s.Asid = tags.Asid;
        s.Regime = tags.Regime;
        s.Kind = stage == 1 ? WalkCacheKind.Stage1Table : WalkCacheKind.Stage2Table;
        s.Level = (byte)level;
        s.SizeShift = (byte)shift;
        s.PageShift = (byte)g;
        s.Flags = flags;
        s.Global = tags.Global;
    }

    /// <summary>Stages the stage-2 leaf (base <paramref name="paBase"/>, size 2^<paramref name="sizeShift"/>) that maps <paramref name="ipa"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void StageFetch(ushort vmid, ulong s2Base, Granule g, ulong ipa, ulong paBase, int sizeShift, int level, bool writable)
    {
        ref Slot s = ref NextStaged();
        s.Key = ipa >> (int)g;
        s.Region = ipa >> sizeShift;
        s.WalkBase = s2Base;
        s.Output = paBase;
        s.Vmid = vmid;
        s.Asid = 0;
        s.Regime = TlbRegime.Stage2;
        s.Kind = WalkCacheKind.Stage2TableFetch;
        s.Level = (byte)level;
        s.SizeShift = (byte)sizeShift;
        s.PageShift = (byte)g;
        s.Flags = writable ? Writable : (byte)0;
        s.Global = true;
    }

    /// <summary>Forgets what was staged (a translation starting after one that did not commit).</summary>
    internal void DiscardStaged() => _stagedCount = 0;

    /// <summary>Inserts what the translation staged, in the order it was learned.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see OutOfLine
    internal void CommitStaged()
    {
        int n = _stagedCount;
        _stagedCount = 0;
        if (!Enabled || n == 0) return;
        // Element references without bounds checks: every index is below n <= StagedCapacity, and a
        // set's ways are within the array (SetOf returns a multiple of Ways below its length).
        ref Slot slots = ref MemoryMarshal.GetArrayDataReference(_slots);
        ref Slot staged = ref MemoryMarshal.GetArrayDataReference(_staged);
        long generation = _generation;
        int added = 0;
        for (int i = 0; i < n; i++)
        {
            ref Slot e = ref Unsafe.Add(ref staged, i);
            int set = SetOf(e.Kind, e.Vmid, e.Asid, e.WalkBase, e.Kind == WalkCacheKind.Stage2TableFetch ? 0 : e.Level, e.Key);
            // Staged only after a lookup missed, so the key is usually not in the set (a translation
            // may stage one entry twice; both copies are what memory held): a free way, else the ways in turn.
            int way = set;
            while (way < set + Ways && Unsafe.Add(ref slots, way).Generation == generation) way++;
            if (way == set + Ways) way = set + (_victim++ & (Ways - 1));
            ref Slot s = ref Unsafe.Add(ref slots, way);
            if (s.Generation != generation) added++;
            s = e;
            s.Generation = generation;
        }
        _count += added;
    }

    /// <summary>Counts lookups a walker answered from its own record of the translation (hits) or skipped because the cache is empty (misses).</summary>
    internal void CountLookups(int hits, int misses)
    {
        Hits += hits;
        Misses += misses;
    }

    /// <summary>
    /// Removes what a TLBI command must remove from the walk caches (IHI 0070 4.4): table entries
    /// unless the command is leaf-only, stage-2 fetch entries as the stage-2 leaves they are.
    /// Returns how many entries went.
    /// </summary>
    public int Invalidate(in TlbInvalidation scope)
    {
        // What a translation staged was read before this command: it must not be inserted after it.
        _stagedCount = 0;
        if (_count == 0) return 0;
        int removed = 0, left = 0;
        var slots = _slots;
        for (int i = 0; i < slots.Length; i++)
        {
            ref Slot s = ref slots[i];
            if (s.Generation != _generation) continue;
            bool leaf = s.Kind == WalkCacheKind.Stage2TableFetch;
            if (scope.MatchesTags(s.Regime, s.Vmid, s.Asid, s.Global) && MatchesRange(scope, s, leaf))
            {
                s.Generation = 0;
                removed++;
            }
            else left++;
        }
        _count = left;
        return removed;
    }

    private static bool MatchesRange(in TlbInvalidation scope, in Slot s, bool leaf)
    {
        if (!scope.MatchAddress) return true;
        // Leaf = 1: "only leaf entries need be invalidated" (IHI 0070 4.4, TLBI_NH_VA, TLBI_S2_IPA): tables stay.
        if (!leaf && scope.LeafOnly) return false;
        ulong start = s.Region << s.SizeShift;
        ulong end = start + (1UL << s.SizeShift);
        if (!(start < scope.Start + scope.Length && scope.Start < end)) return false;
        // TTL selects leaves at one level; it does not spare the tables above them.
        if (leaf && scope.Ttl != 0 && (s.Level != scope.Ttl || scope.Granule is not { } g || (int)g != s.PageShift)) return false;
        return true;
    }

    /// <summary>Forgets every entry (reset, or a benchmark's cold start): O(1).</summary>
    public void Clear()
    {
        _stagedCount = 0;
        _generation++;
        _count = 0;
    }

    /// <summary>The valid entries (diagnostics and tests; allocates).</summary>
    public IReadOnlyList<WalkCacheEntry> Entries
    {
        get
        {
            var list = new List<WalkCacheEntry>();
            foreach (ref readonly Slot s in _slots.AsSpan())
            {
                if (s.Generation != _generation) continue;
                list.Add(new WalkCacheEntry(s.Kind, new WalkTags(s.Regime, s.Vmid, s.Asid, s.Global), s.WalkBase,
                    s.Level, s.Region << s.SizeShift, s.SizeShift, s.Output));
            }
            return list;
        }
    }
}

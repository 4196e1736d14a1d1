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
    // A slot is four words (32 bytes, a 4-way set in two cache lines), so staging an entry is four
    // stores and committing it one copy: with the thirteen named fields of the first version, the
    // stores of a cold nested walk's 13 entries were a third of the walk cache's cost.
    // Ident: what a lookup compares besides Key and WalkBase, and the generation the slot is valid in.
    // Payload: the output address and what the entry carries with it.
    private struct Slot
    {
        public ulong Ident;         // [15:0] VMID, [31:16] ASID, [33:32] regime, [35:34] kind, [37:36] level (tables), [39:38] granule, [63:40] generation
        public ulong Key;           // what a lookup compares: the region (tables), the granule page (fetches)
        public ulong WalkBase;
        public ulong Payload;       // [51:0] next table or mapping base, [57:52] size shift, [59:58] flags, [60] global, [62:61] leaf level (fetches)
    }

    private const int AsidShift = 16, RegimeShift = 32, KindShift = 34, LevelShift = 36, GranuleShift = 38, GenerationShift = 40;
    private const ulong IdentityMask = (1UL << GenerationShift) - 1;
    internal const long GenerationLimit = 1L << (64 - GenerationShift);
    private const int SizeShiftShift = 52, FlagsShift = 58, GlobalShift = 60, LeafLevelShift = 61;
    private const ulong AddressMask = (1UL << SizeShiftShift) - 1;

    private static ulong Identity(ushort vmid, ushort asid, TlbRegime regime, WalkCacheKind kind, int level, Granule g) =>
        vmid | (ulong)asid << AsidShift | (ulong)regime << RegimeShift | (ulong)kind << KindShift | (ulong)level << LevelShift
        | (ulong)(((int)g - (int)Granule.G4K) >> 1) << GranuleShift;

    private static ushort VmidOf(in Slot s) => (ushort)s.Ident;
    private static ushort AsidOf(in Slot s) => (ushort)(s.Ident >> AsidShift);
    private static TlbRegime RegimeOf(in Slot s) => (TlbRegime)((s.Ident >> RegimeShift) & 3);
    private static WalkCacheKind KindOf(in Slot s) => (WalkCacheKind)((s.Ident >> KindShift) & 3);
    private static int PageShiftOf(in Slot s) => (int)Granule.G4K + 2 * (int)((s.Ident >> GranuleShift) & 3);
    private static int SizeShiftOf(in Slot s) => (int)((s.Payload >> SizeShiftShift) & 63);
    private static bool GlobalOf(in Slot s) => ((s.Payload >> GlobalShift) & 1) != 0;
    /// <summary>The table's level (tables), the stage-2 leaf's level (fetches).</summary>
    private static int LevelOf(in Slot s) =>
        KindOf(s) == WalkCacheKind.Stage2TableFetch ? (int)((s.Payload >> LeafLevelShift) & 3) : (int)((s.Ident >> LevelShift) & 3);
    /// <summary>The input region the entry covers, in units of its size (what invalidation compares).</summary>
    private static ulong RegionOf(in Slot s) =>
        KindOf(s) == WalkCacheKind.Stage2TableFetch ? s.Key >> (SizeShiftOf(s) - PageShiftOf(s)) : s.Key;

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
    private long _generation = 1;   // below GenerationLimit; slots hold it in Ident's top bits
    private int _count;

    // OutOfLine: the table lookup and the commit (the hashing and set scans) are kept out of the
    // walker's loop. Inlined there (the JIT's choice), the walker's frame ran out of registers and
    // the set hash went through the stack at every step; a call with the hash in registers is
    // cheaper (the profile of a cold nested walk: the inlined hash and set scan were about a third of
    // the walk). Staging an entry is a few stores and is inlined.

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

    /// <summary>The first slot of the set an entry of <paramref name="identity"/> (no generation) maps to.</summary>
    private int SetOf(ulong identity, ulong walkBase, ulong key)
    {
        ulong h = (key ^ (walkBase >> 12) * 0xC2B2AE3D27D4EB4F ^ identity) * 0x9E3779B97F4A7C15;
        return (int)(h >> _hashShift) << WaysLog2;
    }

    private ulong Current => (ulong)_generation << GenerationShift;

    /// <summary>
    /// The table to use at <paramref name="level"/> for <paramref name="input"/> in the walk of
    /// <paramref name="walkBase"/>, found when an earlier walk read the table descriptor one level up.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see OutOfLine
    internal bool TryGetTable(int stage, in WalkTags tags, ulong walkBase, Granule g, int level, ulong input, out ulong table, out byte flags)
    {
        if (_count == 0) return Miss(out table, out flags);
        var kind = stage == 1 ? WalkCacheKind.Stage1Table : WalkCacheKind.Stage2Table;
        ulong region = input >> GranuleGeometry.LevelShift(g, level - 1);
        ulong identity = Identity(tags.Vmid, tags.Asid, tags.Regime, kind, level, g);
        int set = SetOf(identity, walkBase, region);
        ulong ident = identity | Current;
        for (int w = set; w < set + Ways; w++)
        {
            ref Slot s = ref _slots[w];
            if (s.Ident == ident && s.Key == region && s.WalkBase == walkBase)
            {
                Hits++;
                (table, flags) = (s.Payload & AddressMask, (byte)((s.Payload >> FlagsShift) & 3));
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
    // Inlined, unlike the other lookups (see OutOfLine): since the walker keeps its nested state in
    // fewer registers, the call cost more than the probe (a TLB miss with upper levels cached, best of
    // 15 x 200 000: 91.5-95 ns against 96-97 ns called; the cold walk unchanged).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal bool TryGetFetch(ushort vmid, ulong s2Base, Granule g, ulong ipa, out ulong pa, out bool writable)
    {
        if (_count == 0) { Misses++; (pa, writable) = (0, false); return false; }
        ulong page = ipa >> (int)g;
        ulong identity = Identity(vmid, 0, TlbRegime.Stage2, WalkCacheKind.Stage2TableFetch, 0, g);
        int set = SetOf(identity, s2Base, page);
        ulong ident = identity | Current;
        for (int w = set; w < set + Ways; w++)
        {
            ref Slot s = ref _slots[w];
            // A fetch entry is found through the granule page it was made for (Key); its size is the
            // real mapping's, which may be a block, kept for exact invalidation.
            if (s.Ident == ident && s.Key == page && s.WalkBase == s2Base)
            {
                Hits++;
                pa = (s.Payload & AddressMask) + (ipa & ((1UL << SizeShiftOf(s)) - 1));
                writable = ((s.Payload >> FlagsShift) & Writable) != 0;
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
        ref Slot s = ref NextStaged();
        s.Ident = Identity(tags.Vmid, tags.Asid, tags.Regime, stage == 1 ? WalkCacheKind.Stage1Table : WalkCacheKind.Stage2Table, level, g);
        s.Key = input >> shift;
        s.WalkBase = walkBase;
        s.Payload = table | (ulong)shift << SizeShiftShift | (ulong)flags << FlagsShift | (tags.Global ? 1UL << GlobalShift : 0);
    }

    /// <summary>Stages the stage-2 leaf (base <paramref name="paBase"/>, size 2^<paramref name="sizeShift"/>) that maps <paramref name="ipa"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void StageFetch(ushort vmid, ulong s2Base, Granule g, ulong ipa, ulong paBase, int sizeShift, int level, bool writable)
    {
        ref Slot s = ref NextStaged();
        s.Ident = Identity(vmid, 0, TlbRegime.Stage2, WalkCacheKind.Stage2TableFetch, 0, g);
        s.Key = ipa >> (int)g;
        s.WalkBase = s2Base;
        s.Payload = paBase | (ulong)sizeShift << SizeShiftShift | (writable ? (ulong)Writable << FlagsShift : 0) | 1UL << GlobalShift
            | (ulong)level << LeafLevelShift;
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
        ulong current = Current;
        int added = 0;
        for (int i = 0; i < n; i++)
        {
            ref Slot e = ref Unsafe.Add(ref staged, i);
            int set = SetOf(e.Ident, e.WalkBase, e.Key);
            // Staged only after a lookup missed, so the key is usually not in the set (a translation
            // may stage one entry twice; both copies are what memory held): a free way, else the ways in turn.
            int way = set;
            while (way < set + Ways && (Unsafe.Add(ref slots, way).Ident & ~IdentityMask) == current) way++;
            if (way == set + Ways) way = set + (_victim++ & (Ways - 1));
            ref Slot s = ref Unsafe.Add(ref slots, way);
            if ((s.Ident & ~IdentityMask) != current) added++;
            s = e;
            s.Ident |= current;
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
            if ((s.Ident & ~IdentityMask) != Current) continue;
            bool leaf = KindOf(s) == WalkCacheKind.Stage2TableFetch;
            if (scope.MatchesTags(RegimeOf(s), VmidOf(s), AsidOf(s), GlobalOf(s)) && MatchesRange(scope, s, leaf))
            {
                s.Ident = 0;
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
        int sizeShift = SizeShiftOf(s);
        ulong start = RegionOf(s) << sizeShift;
        ulong end = start + (1UL << sizeShift);
        if (!(start < scope.Start + scope.Length && scope.Start < end)) return false;
        // TTL selects leaves at one level; it does not spare the tables above them.
        if (leaf && scope.Ttl != 0 && (LevelOf(s) != scope.Ttl || scope.Granule is not { } g || (int)g != PageShiftOf(s))) return false;
        return true;
    }

    /// <summary>Forgets every entry (reset, or a benchmark's cold start): O(1).</summary>
    public void Clear()
    {
        _stagedCount = 0;
        _count = 0;
        if (++_generation < GenerationLimit) return;
        // The generation no longer fits its bits: forget the slots themselves (once per 16 M clears).
        Array.Clear(_slots);
        _generation = 1;
    }

    /// <summary>The valid entries (diagnostics and tests; allocates).</summary>
    public IReadOnlyList<WalkCacheEntry> Entries
    {
        get
        {
            var list = new List<WalkCacheEntry>();
            foreach (ref readonly Slot s in _slots.AsSpan())
            {
                if ((s.Ident & ~IdentityMask) != Current) continue;
                list.Add(new WalkCacheEntry(KindOf(s), new WalkTags(RegimeOf(s), VmidOf(s), AsidOf(s), GlobalOf(s)), s.WalkBase,
                    LevelOf(s), RegionOf(s) << SizeShiftOf(s), SizeShiftOf(s), s.Payload & AddressMask));
            }
            return list;
        }
    }
}

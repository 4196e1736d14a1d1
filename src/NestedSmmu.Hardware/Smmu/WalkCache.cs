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
/// entries (3.17; the Leaf field of the invalidation commands in 4.4 exists because of it).
/// </summary>
public enum WalkCacheKind : byte
{
    /// <summary>
    /// A stage-1 table descriptor: the next-level table (an IPA when nested) for an input region. In a
    /// nested walk it also holds the table's PA when one stage-2 mapping covers the whole table: a
    /// combined stage-1+2 entry, removed as stage-1 entries are (IHI 0070 4.4.4).
    /// </summary>
    Stage1Table = 1,
    /// <summary>A stage-2 table descriptor: the next-level table PA for an IPA region.</summary>
    Stage2Table = 2,
}

/// <summary>
/// One walk-cache entry as diagnostics see it. <see cref="OutputPa"/>: the PA of a nested stage-1
/// table (<see cref="Output"/> is its IPA), when the entry combines it.
/// </summary>
public readonly record struct WalkCacheEntry(WalkCacheKind Kind, WalkTags Tags, ulong WalkBase, int Level, ulong InputBase, int SizeShift, ulong Output,
    ulong? OutputPa = null);

/// <summary>
/// The SMMU's walk caches, kept as walk records: one record holds the table descriptors one walk
/// read for one input (the tables of levels StartLevel + 1 to 3, each an entry of its own for
/// lookup and invalidation), found through the region of the deepest table it holds (the
/// last-level table's 2 MiB with 4K pages; 1 GiB for a walk that ends in a 2 MiB block). A lookup
/// tries the last level's region first, then the levels above.
/// A nested stage-1 record also holds the PA of each table whose stage-2 mapping covers it, so a
/// walk it resumes needs no stage-2 fetch for that table. A fixed-size, 4-way set-associative
/// array (no allocation after construction), the set chosen by a hash of the tags, the walk's table
/// base and the region; a record of the same walk and region is merged, a full set replaces its
/// ways in turn. Records also carry the table base of the walk that made them (STE.S2TTB or
/// CD.TTBx): a stream whose configuration now names other tables never hits them, which the
/// architecture allows (a cache may always miss) and which keeps misconfigured ASID/VMID sharing
/// from showing stale tables.
/// Invalidation follows IHI 0070 4.4, entry by entry: leaf-only forms (Leaf = 1) keep table
/// entries; address forms remove every entry whose region overlaps the range, whatever the TTL (TTL
/// names the leaf's level, and the tables above that leaf are exactly what a non-leaf invalidation
/// must remove). Stage-2 invalidations do not remove the combined table PAs of stage-1 entries
/// (IHI 0070 4.4.4: combined entries need TLBI_NH_* or TLBI_S12_VMALL, the sequence Linux issues
/// after changing a nesting parent).
/// </summary>
/// <remarks>
/// Why records and not one slot per table descriptor (the first design): a cold nested 4K walk
/// learns 12 descriptors and stage-2 translations of table IPAs, and inserting each in its own set
/// was a third of the walk. As records it learns one stage-1 record and two stage-2 ones (the
/// stage-1 tables' IPA region and the output's), and a TLB miss in the same last-level region
/// needs one lookup per stage. What a record loses: a walk to a page in another last-level region
/// finds no help from it (its upper tables are found through its deepest table's region), which
/// the architecture allows.
/// </remarks>
public sealed class WalkCache
{
    [InlineArray(4)]
    private struct ByLevel
    {
        private ulong _element;
    }

    // Ident: what a lookup compares besides Key and WalkBase, and the generation the record is valid in.
    private struct Record
    {
        public ulong Ident;     // [15:0] VMID, [31:16] ASID, [33:32] regime, [34] stage 2, [36:35] granule, [37] global, [39:38] key level, [63:40] generation
        public ulong Key;       // the region of the record's deepest table (at the key level), input >> KeyShift; staged: the input
        public ulong WalkBase;
        public ulong Valid;     // bit l: Table[l] holds the table at level l (1..3)
        public ByLevel Table;   // [l]: the table at level l, APTable limits above it in [1:0] (stage 1)
        public ByLevel Pa;      // [l]: nested stage 1: the table's PA, PaPresent and PaWritable in [1:0]
    }

    private const int AsidShift = 16, RegimeShift = 32, Stage2Bit = 34, GranuleShift = 35, GlobalBit = 37, KeyLevelShift = 38, GenerationShift = 40;
    private const ulong IdentityMask = (1UL << GenerationShift) - 1;
    internal const long GenerationLimit = 1L << (64 - GenerationShift);
    // Tables are at least 64-byte aligned (8 descriptors), next-level tables granule-aligned: two low bits are free.
    private const ulong LowBits = 3;

    /// <summary>Stage-1 flag: APTable[1] set on the way (no writes below).</summary>
    public const byte NoWrite = 1;
    /// <summary>Stage-1 flag: APTable[0] set on the way (no unprivileged access below).</summary>
    public const byte NoUnprivileged = 2;
    /// <summary>In a table PA word: the PA is known (the stage-2 mapping covers the table).</summary>
    internal const ulong PaPresent = 1;
    /// <summary>In a table PA word: stage 2 lets the table be written (hardware access-flag updates).</summary>
    internal const ulong PaWritable = 2;
    /// <summary>The table PA a PA word holds (its flags cleared).</summary>
    internal static ulong TablePaOf(ulong paWord) => paWord & ~(PaPresent | PaWritable);

    private static ulong Identity(int stage, in WalkTags tags, Granule g) =>
        tags.Vmid | (ulong)tags.Asid << AsidShift | (ulong)tags.Regime << RegimeShift | (stage == 2 ? 1UL << Stage2Bit : 0)
        | (ulong)(((int)g - (int)Granule.G4K) >> 1) << GranuleShift | (tags.Global ? 1UL << GlobalBit : 0);

    private static ushort VmidOf(in Record s) => (ushort)s.Ident;
    private static ushort AsidOf(in Record s) => (ushort)(s.Ident >> AsidShift);
    private static TlbRegime RegimeOf(in Record s) => (TlbRegime)((s.Ident >> RegimeShift) & 3);
    private static bool IsStage2(in Record s) => ((s.Ident >> Stage2Bit) & 1) != 0;
    private static Granule GranuleOf(in Record s) => (Granule)((int)Granule.G4K + 2 * (int)((s.Ident >> GranuleShift) & 3));
    private static bool GlobalOf(in Record s) => ((s.Ident >> GlobalBit) & 1) != 0;

    private static int KeyLevelOf(in Record s) => (int)((s.Ident >> KeyLevelShift) & 3);
    /// <summary>
    /// How far a record's input is shifted to make its key: the region of the table at
    /// <paramref name="keyLevel"/>, the deepest the record holds (a walk that ends in a block has
    /// no last-level table, and is found through the region of its deepest one).
    /// </summary>
    private static int KeyShift(Granule g, int keyLevel) => GranuleGeometry.LevelShift(g, keyLevel - 1);
    /// <summary>The input a record's entries cover, as far as its key tells (the bits above its key level).</summary>
    private static ulong InputOf(in Record s) => s.Key << KeyShift(GranuleOf(s), KeyLevelOf(s));

    private const int WaysLog2 = 2;
    private const int Ways = 1 << WaysLog2;
    private readonly Record[] _records;
    private readonly int _hashShift;
    private int _victim;
    private long _generation = 1;   // below GenerationLimit; records hold it in Ident's top bits
    private int _count;

    // OutOfLine: the set lookups and the commit (the hashing and set scans) are kept out of the
    // walker's loop. Inlined there (the JIT's choice), the walker's frame ran out of registers and
    // the set hash went through the stack at every step; a call with the hash in registers is
    // cheaper. Staging a table is a store or two and is inlined, and so is the check of a stage's
    // last record that comes before a set lookup (no hash).

    /// <summary>A 4-way set-associative cache of 2^<paramref name="log2Records"/> walk records.</summary>
    public WalkCache(int log2Records = 8)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(log2Records, WaysLog2 + 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(log2Records, 20);
        _records = new Record[1 << log2Records];
        _hashShift = 64 - (log2Records - WaysLog2);
    }

    /// <summary>How many walk records fit.</summary>
    public int Capacity => _records.Length;
    /// <summary>Valid walk records (an upper bound after replacements; exact after Clear or Invalidate).</summary>
    public int Count => _count;
    public long Hits { get; private set; }
    public long Misses { get; private set; }

    /// <summary>When false nothing is looked up or inserted (a model without walk caches).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The first record of the set a record of <paramref name="identity"/> (no generation) maps to.</summary>
    private int SetOf(ulong identity, ulong walkBase, ulong key)
    {
        ulong h = (key ^ (walkBase >> 12) * 0xC2B2AE3D27D4EB4F ^ identity) * 0x9E3779B97F4A7C15;
        return (int)(h >> _hashShift) << WaysLog2;
    }

    private ulong Current => (ulong)_generation << GenerationShift;

    // The record each stage's last lookup found (indexes into _records; a stale index is harmless:
    // the record it names is compared in full).
    private int _lastStage1, _lastStage2;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Same(in Record s, ulong ident, ulong key, ulong walkBase) => s.Ident == ident && s.Key == key && s.WalkBase == walkBase;

    /// <summary>
    /// The deepest table cached below <paramref name="startLevel"/> for <paramref name="input"/> in the
    /// stage-<paramref name="stage"/> walk of <paramref name="walkBase"/>: its level (-1 when none),
    /// the table with the APTable limits above it in bits [1:0] (<see cref="NoWrite"/>,
    /// <see cref="NoUnprivileged"/>), and for a nested stage-1 table its PA word (<see cref="PaPresent"/>,
    /// <see cref="PaWritable"/> in bits [1:0]; 0 when not known).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal int FindTable(int stage, in WalkTags tags, ulong walkBase, Granule g, int startLevel, ulong input, out ulong table, out ulong pa)
    {
        // The stage's last record, if it is a last-level one for this input, without a call: a TLB
        // miss next to the last one (the common kind) is answered here.
        if (_count != 0 && startLevel < 3)
        {
            ref Record s = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_records), stage == 1 ? _lastStage1 : _lastStage2);
            ulong ident = Identity(stage, tags, g) | 3UL << KeyLevelShift | Current;
            if (Same(s, ident, input >> KeyShift(g, 3), walkBase) && Deepest(s, startLevel, out int level, out table, out pa)) return level;
        }
        return FindTableInSets(stage, tags, walkBase, g, startLevel, input, out table, out pa);
    }

    /// <summary>
    /// The deepest table <paramref name="s"/> holds below <paramref name="startLevel"/> (levels at or
    /// above it are not the walk's tables: another input size on the same tables), counted as a hit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool Deepest(in Record s, int startLevel, out int level, out ulong table, out ulong pa)
    {
        ulong usable = s.Valid & ~((2UL << startLevel) - 1);
        level = 63 - System.Numerics.BitOperations.LeadingZeroCount(usable);
        if (usable == 0)
        {
            (table, pa) = (0, 0);
            return false;
        }
        Hits++;
        (table, pa) = (s.Table[level], s.Pa[level]);
        return true;
    }

    [MethodImpl(MethodImplOptions.NoInlining)] // see OutOfLine
    private int FindTableInSets(int stage, in WalkTags tags, ulong walkBase, Granule g, int startLevel, ulong input, out ulong table, out ulong pa)
    {
        if (_count != 0)
        {
            ulong tagged = Identity(stage, tags, g);
            ref Record first = ref MemoryMarshal.GetArrayDataReference(_records);
            ref int last = ref stage == 1 ? ref _lastStage1 : ref _lastStage2;
            // Records of walks to the last level first (pages), then of walks whose deepest table is higher (blocks).
            for (int keyLevel = 3; keyLevel > startLevel; keyLevel--)
            {
                ulong key = input >> KeyShift(g, keyLevel);
                ulong identity = tagged | (ulong)keyLevel << KeyLevelShift;
                ulong ident = identity | Current;
                // The stage's last record first: consecutive misses usually share their region,
                // and this saves the set hash (two multiplies on the lookup's critical path).
                int found = -1;
                if (Same(Unsafe.Add(ref first, last), ident, key, walkBase)) found = last;
                else
                {
                    int set = SetOf(identity, walkBase, key);
                    for (int w = set; w < set + Ways; w++)
                    {
                        if (!Same(Unsafe.Add(ref first, w), ident, key, walkBase)) continue;
                        found = last = w;
                        break;
                    }
                }
                if (found >= 0 && Deepest(Unsafe.Add(ref first, found), startLevel, out int level, out table, out pa)) return level;
            }
        }
        Misses++;
        (table, pa) = (0, 0);
        return -1;
    }

    // Insertion is staged. The walker records what a translation learns (the stage-1 walk's tables
    // as it reads them, each stage-2 walk's path when the next begins) with plain stores, and
    // CommitStaged inserts the records when the translation ends. Nothing can invalidate in
    // between, and a lookup during the translation misses what it staged: the walker finds those in
    // its own record of the translation's stage-2 paths. An implementation may fill its walk caches
    // whenever it likes (IHI 0070 3.17: a cache may always miss).
    private const int StagedCapacity = 8;
    private readonly Record[] _staged = new Record[StagedCapacity];
    private int _stagedCount;
    // The record of the stage-1 walk being built (index in _staged), or -1.
    private int _open = -1;

    private ref Record NextStaged()
    {
        if (_stagedCount == StagedCapacity)
        {
            // Full (a translation whose stage-1 tables sit in many IPA regions): insert what is
            // staged, the open stage-1 record as it stands, and keep building that one.
            int open = _open;
            Record keep = open >= 0 ? _staged[open] : default;
            CommitStaged();
            if (open >= 0) (_staged[0], _stagedCount, _open) = (keep, 1, 0);
        }
        ref Record r = ref _staged[_stagedCount++];
        r.Valid = 0;
        r.Pa = default; // a stage-2 record holds no PAs; a slot may have held a stage-1 one
        return ref r;
    }

    /// <summary>Begins the record of a walk of <paramref name="input"/> (tables come with <see cref="StageTable"/>).</summary>
    internal void OpenWalk(int stage, in WalkTags tags, ulong walkBase, Granule g, ulong input)
    {
        _open = -1;
        ref Record r = ref NextStaged();
        _open = _stagedCount - 1;
        (r.Ident, r.Key, r.WalkBase) = (Identity(stage, tags, g), input, walkBase);
    }

    /// <summary>Stages the table at <paramref name="level"/> of the open walk, with its APTable limits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void StageTable(int level, ulong table, byte flags)
    {
        ref Record r = ref _staged[_open];
        r.Table[level] = table | flags;
        r.Pa[level] = 0;
        r.Valid |= 1UL << level;
    }

    /// <summary>Stages the PA of the open walk's (nested stage-1) table at <paramref name="level"/>, staged before.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal void StageTablePa(int level, ulong pa, bool writable) =>
        _staged[_open].Pa[level] = pa | PaPresent | (writable ? PaWritable : 0);

    /// <summary>Stages a stage-2 walk's path: the tables of levels <paramref name="first"/>..<paramref name="last"/> for <paramref name="ipa"/>.</summary>
    internal void StageStage2(ushort vmid, ulong walkBase, Granule g, ulong ipa, ReadOnlySpan<ulong> tables, int first, int last)
    {
        ref Record r = ref NextStaged();
        r.Ident = Identity(2, WalkTags.Stage2(vmid), g);
        r.Key = ipa;
        r.WalkBase = walkBase;
        for (int l = first; l <= last; l++)
        {
            r.Table[l] = tables[l];
            r.Valid |= 1UL << l;
        }
    }

    /// <summary>Whether anything waits for <see cref="CommitStaged"/>.</summary>
    internal bool HasStaged => _stagedCount != 0;

    /// <summary>Forgets what was staged (a translation starting after one that did not commit).</summary>
    internal void DiscardStaged() => (_stagedCount, _open) = (0, -1);

    /// <summary>Inserts what the translation staged, in the order it was learned.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)] // see OutOfLine
    internal void CommitStaged()
    {
        int n = _stagedCount;
        (_stagedCount, _open) = (0, -1);
        if (!Enabled || n == 0) return;
        // Element references without bounds checks: every index is below n <= StagedCapacity, and a
        // set's ways are within the array (SetOf returns a multiple of Ways below its length).
        ref Record records = ref MemoryMarshal.GetArrayDataReference(_records);
        ref Record staged = ref MemoryMarshal.GetArrayDataReference(_staged);
        ulong current = Current;
        for (int i = 0; i < n; i++)
        {
            ref Record e = ref Unsafe.Add(ref staged, i);
            if (e.Valid == 0) continue;
            // Keyed by the region of its deepest table.
            int keyLevel = 63 - System.Numerics.BitOperations.LeadingZeroCount(e.Valid);
            ulong identity = e.Ident | (ulong)keyLevel << KeyLevelShift;
            ulong key = e.Key >> KeyShift(GranuleOf(e), keyLevel);
            int set = SetOf(identity, e.WalkBase, key);
            ulong ident = identity | current;
            // The same walk and region: merge (both hold what memory held, nothing invalidated in
            // between); else a free way, else the ways in turn.
            int way = -1, free = -1;
            for (int w = set; w < set + Ways; w++)
            {
                ref Record s = ref Unsafe.Add(ref records, w);
                if (Same(s, ident, key, e.WalkBase)) { way = w; break; }
                if (free < 0 && (s.Ident & ~IdentityMask) != current) free = w;
            }
            if (way >= 0)
            {
                ref Record s = ref Unsafe.Add(ref records, way);
                for (ulong v = e.Valid; v != 0; v &= v - 1)
                {
                    int l = System.Numerics.BitOperations.TrailingZeroCount(v);
                    // A table staged with its PA, or over an entry for another table: the staged entry wins.
                    if ((e.Pa[l] & PaPresent) != 0 || (s.Valid >> l & 1) == 0 || (s.Table[l] & ~LowBits) != (e.Table[l] & ~LowBits)) s.Pa[l] = e.Pa[l];
                    s.Table[l] = e.Table[l];
                }
                s.Valid |= e.Valid;
                continue;
            }
            if (free < 0) free = set + (_victim++ & (Ways - 1));
            else _count++;
            ref Record slot = ref Unsafe.Add(ref records, free);
            slot = e;
            (slot.Ident, slot.Key) = (ident, key);
        }
    }

    /// <summary>Puts the lookup counters back (a walker's attempt that another walk repeats).</summary>
    internal void RestoreCounts(long hits, long misses) => (Hits, Misses) = (hits, misses);

    /// <summary>Counts lookups a walker answered from its own record of the translation (hits) or skipped because the cache is empty (misses).</summary>
    internal void CountLookups(int hits, int misses)
    {
        Hits += hits;
        Misses += misses;
    }

    /// <summary>
    /// Removes what a TLBI command must remove from the walk caches (IHI 0070 4.4): table entries
    /// covering the range unless the command is leaf-only. Returns how many entries went.
    /// </summary>
    public int Invalidate(in TlbInvalidation scope)
    {
        // What a translation staged was read before this command: it must not be inserted after it.
        DiscardStaged();
        if (_count == 0) return 0;
        int removed = 0, left = 0;
        var records = _records;
        ulong current = Current;
        for (int i = 0; i < records.Length; i++)
        {
            ref Record s = ref records[i];
            if ((s.Ident & ~IdentityMask) != current) continue;
            if (!scope.MatchesTags(RegimeOf(s), VmidOf(s), AsidOf(s), GlobalOf(s)))
            {
                left++;
                continue;
            }
            ulong gone = CoveredLevels(scope, s);
            removed += System.Numerics.BitOperations.PopCount(gone);
            s.Valid &= ~gone;
            if (s.Valid == 0) s.Ident = 0;
            else left++;
        }
        _count = left;
        return removed;
    }

    /// <summary>The levels of <paramref name="s"/> (as Valid bits) whose entries the scope covers.</summary>
    private static ulong CoveredLevels(in TlbInvalidation scope, in Record s)
    {
        if (!scope.MatchAddress) return s.Valid;
        // Leaf = 1: "only leaf entries need be invalidated" (IHI 0070 4.4, TLBI_NH_VA, TLBI_S2_IPA): tables stay.
        if (scope.LeafOnly) return 0;
        Granule g = GranuleOf(s);
        ulong input = InputOf(s);
        ulong gone = 0;
        for (ulong v = s.Valid; v != 0; v &= v - 1)
        {
            int l = System.Numerics.BitOperations.TrailingZeroCount(v);
            // The table at level l comes from a descriptor at level l - 1, which covers its input region.
            int sizeShift = GranuleGeometry.LevelShift(g, l - 1);
            ulong start = input & ~((1UL << sizeShift) - 1);
            ulong end = start + (1UL << sizeShift);
            if (start < scope.Start + scope.Length && scope.Start < end) gone |= 1UL << l;
        }
        return gone;
    }

    /// <summary>Forgets every entry (reset, or a benchmark's cold start): O(1).</summary>
    public void Clear()
    {
        DiscardStaged();
        _count = 0;
        if (++_generation < GenerationLimit) return;
        // The generation no longer fits its bits: forget the records themselves (once per 16 M clears).
        Array.Clear(_records);
        _generation = 1;
    }

    /// <summary>The valid entries, one per cached table descriptor (diagnostics and tests; allocates).</summary>
    public IReadOnlyList<WalkCacheEntry> Entries
    {
        get
        {
            var list = new List<WalkCacheEntry>();
            foreach (ref readonly Record s in _records.AsSpan())
            {
                if ((s.Ident & ~IdentityMask) != Current) continue;
                Granule g = GranuleOf(s);
                var kind = IsStage2(s) ? WalkCacheKind.Stage2Table : WalkCacheKind.Stage1Table;
                var tags = new WalkTags(RegimeOf(s), VmidOf(s), AsidOf(s), GlobalOf(s));
                ulong input = InputOf(s);
                for (ulong v = s.Valid; v != 0; v &= v - 1)
                {
                    int l = System.Numerics.BitOperations.TrailingZeroCount(v);
                    int sizeShift = GranuleGeometry.LevelShift(g, l - 1);
                    ulong pa = s.Pa[l];
                    list.Add(new WalkCacheEntry(kind, tags, s.WalkBase, l, input & ~((1UL << sizeShift) - 1), sizeShift, s.Table[l] & ~LowBits,
                        (pa & PaPresent) != 0 ? pa & ~LowBits : null));
                }
            }
            return list;
        }
    }
}

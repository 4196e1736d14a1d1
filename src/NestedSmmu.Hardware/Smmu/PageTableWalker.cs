using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Hardware.Smmu;

/// <summary>Translation granules (VMSAv8-64): page shift 12, 14 or 16.</summary>
public enum Granule { G4K = 12, G16K = 14, G64K = 16 }

/// <summary>Geometry derived from the granule, kept in one place.</summary>
public static class GranuleGeometry
{
    /// <summary>Bits of input address each level resolves: page shift minus log2(8-byte descriptors).</summary>
    public static int Stride(Granule g) => (int)g - 3;
    public static int PageShift(Granule g) => (int)g;
    /// <summary>Input-address shift of a descriptor at <paramref name="level"/> (0..3).</summary>
    public static int LevelShift(Granule g, int level) => (int)g + (3 - level) * Stride(g);

    /// <summary>CD.TG0 / STE.S2TG encoding: 0 4K, 1 64K, 2 16K.</summary>
    public static Granule? FromTg0(uint tg) => tg switch { 0 => Granule.G4K, 1 => Granule.G64K, 2 => Granule.G16K, _ => null };
    /// <summary>CD.TG1 encoding: 1 16K, 2 4K, 3 64K.</summary>
    public static Granule? FromTg1(uint tg) => tg switch { 2 => Granule.G4K, 3 => Granule.G64K, 1 => Granule.G16K, _ => null };
    /// <summary>Command TG encoding (TLBI range and TTL): 1 4K, 2 16K, 3 64K.</summary>
    public static Granule? FromCommandTg(uint tg) => tg switch { 1 => Granule.G4K, 2 => Granule.G16K, 3 => Granule.G64K, _ => null };

    /// <summary>First level of a stage-1 walk for an input size (VMSAv8-64: just enough levels to cover it).</summary>
    public static int Stage1StartLevel(Granule g, int inputBits) => 4 - (inputBits - (int)g + Stride(g) - 1) / Stride(g);

    /// <summary>
    /// Stage-2 start level from VTCR.SL0 (4K: 0→L2, 1→L1, 2→L0; 16K and 64K: 0→L3, 1→L2, 2→L1, 3→L0 for 16K).
    /// Null for a reserved encoding.
    /// </summary>
    public static int? Stage2StartLevel(Granule g, uint sl0) => g switch
    {
        Granule.G4K => sl0 <= 2 ? 2 - (int)sl0 : null,
        Granule.G16K => 3 - (int)sl0,
        _ => sl0 <= 2 ? 3 - (int)sl0 : null,
    };

    /// <summary>Whether a block descriptor is allowed at <paramref name="level"/>; 52-bit PA (FEAT_LPA) adds the 64K level-1 block.</summary>
    public static bool BlockAllowed(Granule g, int level, bool lpa) => g switch
    {
        Granule.G4K => level is 1 or 2,
        Granule.G16K => level == 2,
        _ => level == 2 || (level == 1 && lpa),
    };
}

/// <summary>
/// The parameters of one stage of translation, decoded from a CD (stage 1) or STE (stage 2).
/// ConcatLog2: log2 of the number of concatenated start tables (stage 2 only; 0 = one table).
/// Lpa: FEAT_LPA, 52-bit output with 64K pages (descriptor bits [15:12] are OA[51:48]).
/// </summary>
public readonly record struct WalkRegime(
    int Stage,
    Granule Granule,
    ulong TableBase,
    int InputBits,
    int StartLevel,
    int ConcatLog2,
    int OutputBits,
    bool HardwareAccessFlag,
    bool AccessFlagFaultDisabled,
    bool Lpa)
{
    public int PageShift => (int)Granule;
}

/// <summary>Why a walk stopped.</summary>
public enum WalkFault : byte { None, Translation, AddressSize, AccessFlag, Permission, ExternalAbort }

/// <summary>Result of one stage's walk (or of a nested stage-1 walk with its stage-2 table fetches).</summary>
public struct WalkResult
{
    public WalkFault Fault;
    public int Level;
    public ulong Output;
    /// <summary>Size of the mapping found: log2 of the page or block size.</summary>
    public int BlockShift;
    public Permissions Permissions;
    /// <summary>Stage-1 nG clear: the entry matches every ASID.</summary>
    public bool Global;
    /// <summary>Stage that faulted: 2 for a stage-2 fault during a nested stage-1 walk.</summary>
    public int FaultStage;
    /// <summary>For a stage-2 fault: the IPA being translated; its CLASS.</summary>
    public ulong FaultIpa;
    public FaultClass FaultClass;
    /// <summary>The stage-2 fault happened while updating (writing) a stage-1 descriptor.</summary>
    public bool FaultOnDescriptorWrite;
    /// <summary>Address of the table the last descriptor was read from.</summary>
    public ulong LastTable;
    /// <summary>For <see cref="WalkFault.ExternalAbort"/>: the PA of the descriptor whose fetch aborted.</summary>
    public ulong FetchAddress;

    public readonly bool Ok => Fault == WalkFault.None;

    public readonly EventType EventType => Fault switch
    {
        WalkFault.Translation => EventType.F_TRANSLATION,
        WalkFault.AddressSize => EventType.F_ADDR_SIZE,
        WalkFault.AccessFlag => EventType.F_ACCESS,
        WalkFault.ExternalAbort => EventType.F_WALK_EABT,
        _ => EventType.F_PERMISSION,
    };
}

/// <summary>
/// VMSAv8-64 translation table walker for one or two stages (Arm ARM D8; SMMUv3 IHI 0070 3.4).
/// Descriptors are read little-endian from physical memory. Stage-1 table addresses of a nested
/// walk are IPAs translated through the given stage-2 regime, each fetch checked for read
/// permission, and for write permission when the hardware updates the access flag.
/// </summary>
public sealed class PageTableWalker
{
    // Descriptors come through IPhysicalMemory.ReadUInt64, and MayAbort lets a walk skip the
    // abort-range check when the memory has none: the fast paths are the interface's own.
    private readonly IPhysicalMemory _memory;
    // Intermediate table entries and stage-2 translations of stage-1 table addresses kept across
    // walks (IHI 0070 3.17 permits them; 4.4 says which invalidations remove them). Null: none.
    private readonly WalkCache? _cache;

    public PageTableWalker(IPhysicalMemory memory, WalkCache? cache = null)
    {
        _memory = memory;
        _cache = cache;
    }

    // One translation's own knowledge, kept from BeginTranslation to EndTranslation (or for one
    // public walk outside them), so nothing can invalidate it while it is used:
    // - the stage-2 path: the tables the last untraced stage-2 walk read, by level, for _pathInput.
    //   The stage-1 tables of a nested walk usually sit in one small IPA region, and its output IPA
    //   near them, so their stage-2 walks share the upper tables; a walk starts at the deepest table
    //   the path shares with it. Valid levels: [_pathFirst, _pathLast] (none when _pathLast < 0).
    // - the walk-cache entries it learned, staged in the cache and inserted at the end, and the
    //   lookups the path answered or an empty cache made pointless, counted at the end.
    private bool _inTranslation;
    private ulong _pathInput, _pathBase;
    private ushort _pathVmid;
    private Granule _pathGranule;
    private int _pathFirst, _pathLast = -1;
    private readonly ulong[] _pathTables = new ulong[4];
    // A walk that uses the walk cache read a table descriptor into the path: the path is staged as a
    // stage-2 walk record when another replaces it or the translation ends (a path found entirely
    // in the cache or the path is not staged again).
    private bool _pathLearned;
    private int _pathHits, _skippedMisses;

    /// <summary>
    /// Starts one translation: until <see cref="EndTranslation"/>, the walks share their stage-2
    /// paths and the walk-cache entries they learn are inserted at the end.
    /// </summary>
    public void BeginTranslation()
    {
        _inTranslation = true;
        (_pathLast, _pathLearned) = (-1, false);
        _cache?.DiscardStaged();
    }

    /// <summary>Ends the translation begun by <see cref="BeginTranslation"/>: its walk-cache entries are inserted.</summary>
    public void EndTranslation()
    {
        _inTranslation = false;
        if (_cache is null)
        {
            _pathLast = -1;
            return;
        }
        StagePath();
        _pathLast = -1;
        if (_cache.HasStaged) _cache.CommitStaged();
        if ((_pathHits | _skippedMisses) != 0)
        {
            _cache.CountLookups(_pathHits, _skippedMisses);
            (_pathHits, _skippedMisses) = (0, 0);
        }
    }

    // The APTable limits gathered on a stage-1 walk, kept as the walk cache keeps them.
    private const ulong LimitBits = WalkCache.NoWrite | WalkCache.NoUnprivileged;

    /// <summary>The APTable limits a stage-1 table descriptor adds for the tables below it.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static ulong TableLimits(ulong desc) =>
        ((desc >> APTable1) & 1) * WalkCache.NoWrite | ((desc >> APTable0) & 1) * WalkCache.NoUnprivileged;

    /// <summary>
    /// What a stage-1 leaf grants a device, under the APTable <paramref name="limits"/> above it.
    /// Device DMA is an unprivileged data access: AP[1] must grant EL0 access.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static Permissions Stage1Permissions(ulong desc, ulong limits)
    {
        bool unpriv = Bits.Get(desc, AP1) && (limits & WalkCache.NoUnprivileged) == 0;
        bool ro = Bits.Get(desc, AP2) || (limits & WalkCache.NoWrite) != 0;
        return unpriv ? (ro ? Permissions.Read : Permissions.ReadWrite) : Permissions.None;
    }

    /// <summary>What a stage-2 leaf grants (S2AP).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static Permissions Stage2Permissions(ulong desc) =>
        (Bits.Get(desc, S2AP_R) ? Permissions.Read : 0) | (Bits.Get(desc, S2AP_W) ? Permissions.Write : 0);

    /// <summary>Stages the stage-2 path as a walk record when a cache-using walk learned part of it.</summary>
    private void StagePath()
    {
        if (_pathLearned && _pathLast >= 0) _cache!.StageStage2(_pathVmid, _pathBase, _pathGranule, _pathInput, _pathTables, _pathFirst, _pathLast);
        _pathLearned = false;
    }

    /// <summary>The deepest level (above the start level) whose table the path knows for <paramref name="input"/>, or -1.</summary>
    private int PathLevel(in WalkRegime r, ushort vmid, ulong input)
    {
        if (_pathLast < 0 || _pathBase != r.TableBase || _pathVmid != vmid || _pathGranule != r.Granule) return -1;
        ulong diff = input ^ _pathInput;
        for (int l = _pathLast; l >= _pathFirst; l--)
        {
            // Same input bits above this level's table: every index above it, so the table, is the same.
            if (diff >> GranuleGeometry.LevelShift(r.Granule, l - 1) == 0) return l;
        }
        return -1;
    }

    // Descriptor fields (Arm ARM D8.3)
    private const ulong DescValid = 1UL << 0;
    private const ulong DescTable = 1UL << 1;
    private const int AF = 10;
    private const int NG = 11;
    private const int AP1 = 6, AP2 = 7; // stage 1: AP[2:1] at [7:6]
    private const int S2AP_R = 6, S2AP_W = 7; // stage 2: S2AP[1:0] at [7:6]
    private const int APTable0 = 61, APTable1 = 62;

    /// <summary>Output address (or next-table address) in a descriptor, with OA[51:48] in [15:12] for 64K/LPA.</summary>
    private static ulong DescriptorAddress(ulong desc, in WalkRegime r, int shift)
    {
        ulong oa = desc & Bits.Mask(47, shift);
        if (r.Lpa && r.Granule == Granule.G64K) oa |= Bits.Get(desc, 15, 12) << 48;
        return oa;
    }

    /// <summary>
    /// Walks <paramref name="r"/> for <paramref name="input"/> without the walk cache. When
    /// <paramref name="nested"/>, the walk is a nested stage-1 walk whose table addresses go through
    /// <paramref name="s2"/>. Input-range checks are the caller's (they differ per stage).
    /// </summary>
    public WalkResult Walk(in WalkRegime r, ulong input, AccessKind access, in WalkRegime s2, bool nested, TranslationTrace? trace)
    {
        bool own = !_inTranslation; // a walk outside a translation is one of its own
        if (own) BeginTranslation();
        WalkFrom(r, input, access, s2, nested, trace, default, useCache: false, out var res);
        if (own) EndTranslation();
        return res;
    }

    /// <summary>
    /// As <see cref="Walk(in WalkRegime, ulong, AccessKind, in WalkRegime, bool, TranslationTrace?)"/>,
    /// using and filling the walk cache with entries tagged <paramref name="tags"/> (stage-2 entries
    /// with its VMID). With a trace every level is read and shown, so the cache is not used.
    /// </summary>
    /// <remarks>
    /// The result is written in place (<paramref name="result"/>): returned by value, it was built in
    /// the callee's frame with narrow stores and copied out with one wide load, a store-forwarding
    /// stall per copy that the profile of a nested translation showed after every walk.
    /// </remarks>
    public void Walk(in WalkRegime r, ulong input, AccessKind access, in WalkRegime s2, bool nested, in WalkTags tags, TranslationTrace? trace,
        out WalkResult result)
    {
        bool useCache = trace is null && _cache is { Enabled: true };
        bool own = !_inTranslation; // a walk outside a translation is one of its own
        if (own) BeginTranslation();
        // The stage-2 path the fast loop read when it gives up is valid, but the full walk starts
        // without it, as a walker without the fast loop would: the same reads, so the same
        // lookups counted (its tables are read and learned again).
        bool pathEmpty = _pathLast < 0;
        if (trace is null && nested && r.Stage == 1 && TryWalkNested(r, input, access, s2, tags, useCache, out result)) FastWalks++;
        else
        {
            if (pathEmpty) (_pathLast, _pathLearned) = (-1, false);
            WalkFrom(r, input, access, s2, nested, trace, tags, useCache, out result);
            FullWalks++;
        }
        if (own) EndTranslation();
    }

    /// <summary>Whether nested stage-1 walks try <see cref="TryWalkNested"/> first (tests compare both ways).</summary>
    internal bool NestedFastPath { get; set; } = true;
    /// <summary>Walks through this entry point that the fast nested loop finished, and that went the full way (tests).</summary>
    internal long FastWalks { get; private set; }
    internal long FullWalks { get; private set; }
    /// <summary>Translations <see cref="TryLeafWalks"/> finished, each counted in <see cref="FastWalks"/> too (tests).</summary>
    internal long LeafWalks { get; private set; }

    /// <summary>
    /// The common case of an untraced nested stage-1 walk: every table descriptor and stage-2 fetch
    /// valid, the leaf a page or block with its access flag set, the access allowed. Its loop
    /// keeps few values live, so the JIT holds them in registers; in <see cref="WalkFrom"/>, with
    /// its trace, single-stage and fault paths, it spilled most of them to the stack (the profile of
    /// a cold nested walk: a quarter of its time in WalkFrom itself). Anything else returns false
    /// having written nothing to memory and with the lookup counters as they were: the caller then
    /// walks with WalkFrom, whose checks and faults are the architecture's. What it staged for the
    /// walk cache stays (it is what memory held); the stage-2 path it read is dropped by the caller
    /// when the translation had none before, so WalkFrom reads and counts as it would alone.
    /// </summary>
    private bool TryWalkNested(in WalkRegime r, ulong input, AccessKind access, in WalkRegime s2, in WalkTags tags, bool useCache, out WalkResult res)
    {
        res = default;
        if (!NestedFastPath || _memory.MayAbort || !Bits.FitsIn(r.TableBase, r.OutputBits)) return false;
        WalkCache cache = useCache ? _cache! : null!;
        bool probe = useCache && cache.Count != 0;
        (long hits, long misses) = useCache ? (cache.Hits, cache.Misses) : default;
        (int pathHits, int skippedMisses) = (_pathHits, _skippedMisses);
        Granule g = r.Granule;
        int level = r.StartLevel;
        ulong table = r.TableBase;
        ulong limits = 0; // the APTable limits gathered on the way, as WalkCache.NoWrite | NoUnprivileged
        ulong resumePa = 0;
        if (useCache)
        {
            if (!probe) _skippedMisses++;
            else
            {
                int l = cache.FindTable(1, tags, table, g, level, input, out ulong cached, out resumePa);
                if (l > 0) (level, table, limits) = (l, cached & ~LimitBits, cached & LimitBits);
            }
            // A walk resumed at the last level with its table's PA learns no table: no record. One
            // resumed from a table without its PA stages that table again, for the PA it learns.
            if (level < 3 || (resumePa & WalkCache.PaPresent) == 0)
            {
                cache.OpenWalk(1, tags, r.TableBase, g, input);
                if (level > r.StartLevel && (resumePa & WalkCache.PaPresent) == 0) cache.StageTable(level, table, (byte)limits);
            }
            else
            {
                // Resumed at the last level with its table's PA (a TLB miss next to an earlier
                // walk): one descriptor, read here without the loop's set-up. Anything but a page
                // the access may use goes through the loop, which reads it again.
                useCache = false;
                ulong index = (input >> r.PageShift) & ((1UL << GranuleGeometry.Stride(g)) - 1);
                ulong descPa = WalkCache.TablePaOf(resumePa) + index * 8;
                if (descPa < SparseMemory.AddressLimit - 8)
                {
                    ulong desc = _memory.ReadUInt64(descPa);
                    if ((desc & (DescValid | DescTable)) == (DescValid | DescTable) && PlainStage1Leaf(desc, r, 3, r.PageShift, table, input, limits, access, ref res))
                        return true;
                }
            }
        }
        int firstLevel = level;
        int s2RegionShift = GranuleGeometry.LevelShift(s2.Granule, 2);
        ulong s2IndexMask = (1UL << GranuleGeometry.Stride(s2.Granule)) - 1;
        ulong s2PageMask = (1UL << s2.PageShift) - 1;
        for (; ; level++)
        {
            int shift = GranuleGeometry.LevelShift(g, level);
            int indexBits = level == r.StartLevel ? r.InputBits - shift : GranuleGeometry.Stride(g);
            ulong index = (input >> shift) & ((1UL << indexBits) - 1);
            ulong descAddr = table + index * 8;
            ulong descPa;
            bool writable;
            if (level == firstLevel && (resumePa & WalkCache.PaPresent) != 0)
            {
                descPa = WalkCache.TablePaOf(resumePa) + index * 8;
                writable = (resumePa & WalkCache.PaWritable) != 0;
            }
            else
            {
                int mappingShift;
                if (_pathLast == 3 && (descAddr ^ _pathInput) >> s2RegionShift == 0
                    && _pathBase == s2.TableBase && _pathVmid == tags.Vmid && _pathGranule == s2.Granule)
                {
                    ulong leaf = _memory.ReadUInt64(_pathTables[3] + ((descAddr >> s2.PageShift) & s2IndexMask) * 8);
                    ulong leafOa = DescriptorAddress(leaf, s2, s2.PageShift);
                    if ((leaf & (DescValid | DescTable)) != (DescValid | DescTable) || !Bits.Get(leaf, AF) || !Bits.Get(leaf, S2AP_R)
                        || !Bits.FitsIn(leafOa, s2.OutputBits)) goto Unusual;
                    if (useCache) _pathHits++;
                    descPa = leafOa | (descAddr & s2PageMask);
                    writable = Bits.Get(leaf, S2AP_W);
                    mappingShift = s2.PageShift;
                }
                else
                {
                    if (!Bits.FitsIn(descAddr, s2.InputBits)) goto Unusual;
                    WalkStage2Known(s2, descAddr, AccessKind.Read, tags.Vmid, useCache, probe, out var s2res);
                    if (!s2res.Ok) goto Unusual;
                    descPa = s2res.Output;
                    writable = (s2res.Permissions & Permissions.Write) != 0;
                    mappingShift = s2res.BlockShift;
                }
                // The stage-2 mapping holds the whole stage-1 table when it is no smaller.
                if (useCache && level > r.StartLevel && mappingShift >= r.PageShift) cache.StageTablePa(level, descPa - index * 8, writable);
            }
            if (descPa >= SparseMemory.AddressLimit - 8) goto Unusual;
            ulong desc = _memory.ReadUInt64(descPa);
            if ((desc & DescValid) == 0) goto Unusual;
            if ((desc & DescTable) != 0 && level < 3)
            {
                ulong next = DescriptorAddress(desc, r, r.PageShift);
                if (!Bits.FitsIn(next, r.OutputBits)) goto Unusual;
                limits |= TableLimits(desc);
                if (useCache) cache.StageTable(level + 1, next, (byte)limits);
                table = next;
                continue;
            }
            // A page at level 3, a block above it.
            if ((desc & DescTable) == 0 && !GranuleGeometry.BlockAllowed(g, level, r.Lpa)) goto Unusual;
            if (PlainStage1Leaf(desc, r, level, shift, table, input, limits, access, ref res)) return true;
            goto Unusual;
        }
    Unusual:
        (_pathHits, _skippedMisses) = (pathHits, skippedMisses);
        if (useCache || probe) _cache!.RestoreCounts(hits, misses);
        return false;
    }

    /// <summary>
    /// A TLB miss next to an earlier translation, both stages at once: the walk cache holds the
    /// deepest stage-1 table for <paramref name="input"/> with its PA, and the deepest stage-2 table
    /// for the output IPA, and each holds the leaf the access may use. Two lookups and two reads,
    /// the same <see cref="Walk(in WalkRegime, ulong, AccessKind, in WalkRegime, bool, in WalkTags, TranslationTrace?, out WalkResult)"/>
    /// and <see cref="WalkStage2Checked(in WalkRegime, ulong, AccessKind, ushort, TranslationTrace?, out WalkResult)"/>
    /// make for it (they resume at those tables, and counted alike), without their set-up: no
    /// translation begins, as nothing is learned. Out: the stage-1 walk's result and the output
    /// walk's. Anything else returns false having written nothing and with the lookup counters as
    /// they were; the caller then translates the long way, whose checks and faults decide.
    /// </summary>
    public bool TryLeafWalks(in WalkRegime r1, in WalkRegime s2, in WalkTags tags, ulong input, AccessKind access,
        out WalkResult stage1, out WalkResult output)
    {
        (stage1, output) = (default, default);
        WalkCache? cache = _cache;
        // Start levels below 3 only: a walk that starts at the last level has no table the walk cache could hold.
        if (cache is null || !cache.Enabled || cache.Count == 0 || !NestedFastPath || _memory.MayAbort || s2.Stage != 2
            || r1.StartLevel >= 3 || s2.StartLevel >= 3 || !Bits.FitsIn(r1.TableBase, r1.OutputBits) || !Bits.FitsIn(s2.TableBase, s2.OutputBits))
            return false;
        (long hits, long misses) = (cache.Hits, cache.Misses);
        int level = cache.FindTable(1, tags, r1.TableBase, r1.Granule, r1.StartLevel, input, out ulong table, out ulong tablePa);
        if (level < 0 || (tablePa & WalkCache.PaPresent) == 0) goto GiveUp;
        ulong limits = table & LimitBits;
        table &= ~LimitBits;
        if (!TryLeaf(r1, level, WalkCache.TablePaOf(tablePa), input, out ulong desc, out int shift)
            || !PlainStage1Leaf(desc, r1, level, shift, table, input, limits, access, ref stage1)) goto GiveUp;

        ulong ipa = stage1.Output;
        if (!Bits.FitsIn(ipa, s2.InputBits)) goto GiveUp;
        level = cache.FindTable(2, WalkTags.Stage2(tags.Vmid), s2.TableBase, s2.Granule, s2.StartLevel, ipa, out table, out _);
        if (level < 0 || !TryLeaf(s2, level, table, ipa, out desc, out shift)) goto GiveUp;
        ulong oa = DescriptorAddress(desc, s2, shift);
        var perms = Stage2Permissions(desc);
        // An access flag to set goes the long way, which writes it or faults.
        if (!Bits.FitsIn(oa, s2.OutputBits) || !Bits.Get(desc, AF) || !perms.Allows(access)) goto GiveUp;
        SetLeaf(ref output, 2, level, table, shift, oa, ipa, perms, global: true);
        FastWalks++;
        LeafWalks++;
        return true;
    GiveUp:
        cache.RestoreCounts(hits, misses);
        (stage1, output) = (default, default);
        return false;
    }

    /// <summary>
    /// Reads the descriptor for <paramref name="input"/> in the <paramref name="level"/> table at PA
    /// <paramref name="tablePa"/> (below the start level) when it is a leaf: a page at level 3, a
    /// block where the granule allows one. Its input shift comes out with it.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private bool TryLeaf(in WalkRegime r, int level, ulong tablePa, ulong input, out ulong desc, out int shift)
    {
        shift = GranuleGeometry.LevelShift(r.Granule, level);
        ulong descPa = tablePa + ((input >> shift) & ((1UL << GranuleGeometry.Stride(r.Granule)) - 1)) * 8;
        desc = descPa < SparseMemory.AddressLimit - 8 ? _memory.ReadUInt64(descPa) : 0;
        if ((desc & DescValid) == 0) return false;
        return level == 3 ? (desc & DescTable) != 0 : (desc & DescTable) == 0 && GranuleGeometry.BlockAllowed(r.Granule, level, r.Lpa);
    }

    /// <summary>
    /// The checks of a valid stage-1 leaf (a page, or a block where the granule allows one) in the
    /// architecture's order, for the fast nested loop: when the output fits, the access flag is
    /// set and the access is allowed, fills <paramref name="res"/> and returns true; else false
    /// (the full walk decides the fault).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool PlainStage1Leaf(ulong desc, in WalkRegime r, int level, int shift, ulong table, ulong input, ulong limits, AccessKind access,
        ref WalkResult res)
    {
        ulong oa = DescriptorAddress(desc, r, shift);
        if (!Bits.FitsIn(oa, r.OutputBits) || !Bits.Get(desc, AF)) return false;
        var perms = Stage1Permissions(desc, limits);
        if (!perms.Allows(access)) return false;
        SetLeaf(ref res, 1, level, table, shift, oa, input, perms, global: !Bits.Get(desc, NG));
        return true;
    }

    /// <summary>A stage's walk ended well in a leaf at <paramref name="level"/> of <paramref name="table"/>, mapping 2^<paramref name="shift"/> bytes at <paramref name="oa"/>.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void SetLeaf(ref WalkResult res, int stage, int level, ulong table, int shift, ulong oa, ulong input, Permissions perms, bool global)
    {
        res.FaultStage = stage;
        res.Level = level;
        res.LastTable = table;
        res.BlockShift = shift;
        res.Output = oa | (input & ((1UL << shift) - 1));
        res.Permissions = perms;
        res.Global = global;
    }

    private void WalkFrom(in WalkRegime r, ulong input, AccessKind access, in WalkRegime s2, bool nested, TranslationTrace? trace,
        in WalkTags tags, bool useCache, out WalkResult res)
    {
        res = new WalkResult { FaultStage = r.Stage };
        Granule g = r.Granule;
        int stride = GranuleGeometry.Stride(g);
        int firstLevel = r.StartLevel;
        ulong table = r.TableBase;
        ulong limits = 0; // the APTable limits gathered on the way, as WalkCache.NoWrite | NoUnprivileged
        WalkCache cache = useCache ? _cache! : null!;
        // Lookups in the cache are made only when it holds entries: what this translation learns is
        // inserted when it ends, so an empty cache stays empty until then (every cold walk).
        bool probe = useCache && cache.Count != 0;
        // The deepest cached table for this input: the walk resumes there with the APTable limits
        // gathered above it and, nested, the table's PA when the entry combines it (no stage-2
        // fetch for that table). The start table base is checked below as always.
        ulong resumePa = 0;
        if (useCache)
        {
            if (!probe) _skippedMisses++;
            else
            {
                int l = cache.FindTable(r.Stage, tags, r.TableBase, g, r.StartLevel, input, out ulong cached, out resumePa);
                if (l > 0) (firstLevel, table, limits) = (l, cached & ~LimitBits, cached & LimitBits);
            }
            // As in TryWalkNested: no record for a walk that learns nothing; the table resumed from
            // staged again when the walk is to learn its PA.
            if (firstLevel < 3 || (nested && (resumePa & WalkCache.PaPresent) == 0))
            {
                cache.OpenWalk(r.Stage, tags, r.TableBase, g, input);
                if (firstLevel > r.StartLevel && nested && (resumePa & WalkCache.PaPresent) == 0) cache.StageTable(firstLevel, table, (byte)limits);
            }
            else useCache = false;
        }
        int s2RegionShift = nested ? GranuleGeometry.LevelShift(s2.Granule, 2) : 0;
        ulong s2IndexMask = nested ? (1UL << GranuleGeometry.Stride(s2.Granule)) - 1 : 0;
        ulong s2PageMask = nested ? (1UL << s2.PageShift) - 1 : 0;
        // Abort ranges are set up once with the memory; without any, only the 52-bit limit can abort.
        bool anyAbortRanges = _memory.MayAbort;

        // The table base itself must fit the output size (address size fault at the start level).
        if (!Bits.FitsIn(r.TableBase, r.OutputBits))
        {
            res.Fault = WalkFault.AddressSize;
            res.Level = r.StartLevel;
            if (trace is not null) TraceFault(trace, WalkTraceKind.TableBaseTooLarge, r.Stage, r.StartLevel, r.TableBase, 0, r.TableBase, 0, r.TableBase, r.OutputBits);
            return;
        }

        for (int level = firstLevel; level <= 3; level++)
        {
            int shift = GranuleGeometry.LevelShift(g, level);
            int indexBits = level == r.StartLevel ? r.InputBits - shift : stride;
            ulong index = (input >> shift) & ((1UL << indexBits) - 1);
            ulong descAddr = table + index * 8;

            // Nested: the descriptor's address is an IPA; translate it through stage 2.
            ulong descPa = descAddr;
            bool tableWritable = true;
            if (nested)
            {
                if (trace is not null) TraceNestedFetch(trace, level, descAddr);
                if (trace is not null) trace.Depth++;
                WalkResult s2res;
                if ((resumePa & WalkCache.PaPresent) != 0 && level == firstLevel)
                {
                    descPa = WalkCache.TablePaOf(resumePa) + index * 8;
                    tableWritable = (resumePa & WalkCache.PaWritable) != 0;
                    goto Fetch;
                }
                if (trace is null && _pathLast == 3 && (descAddr ^ _pathInput) >> s2RegionShift == 0
                    && _pathBase == s2.TableBase && _pathVmid == tags.Vmid && _pathGranule == s2.Granule)
                {
                    // The common case inline: the path's last-level table, a valid page, AF set, stage-2
                    // read allowed, output within PS. Anything else takes the full walk from that table,
                    // with all its checks.
                    ulong s2Table = _pathTables[3];
                    ulong leafAddr = s2Table + ((descAddr >> s2.PageShift) & s2IndexMask) * 8;
                    ulong leaf = _memory.ReadUInt64(leafAddr);
                    ulong leafOa = DescriptorAddress(leaf, s2, s2.PageShift);
                    if (useCache) _pathHits++;
                    if ((leaf & (DescValid | DescTable)) == (DescValid | DescTable) && Bits.Get(leaf, AF) && Bits.Get(leaf, S2AP_R)
                        && Bits.FitsIn(leafOa, s2.OutputBits) && !anyAbortRanges)
                    {
                        descPa = leafOa | (descAddr & s2PageMask);
                        tableWritable = Bits.Get(leaf, S2AP_W);
                        // The stage-2 page holds the whole stage-1 table when it is no smaller.
                        if (useCache && level > r.StartLevel && s2.PageShift >= r.PageShift) cache.StageTablePa(level, descPa - index * 8, tableWritable);
                        goto Fetch;
                    }
                    WalkStage2(s2, 3, s2Table, descAddr, AccessKind.Read, tags.Vmid, useCache: false, fromPath: true, out s2res);
                }
                else
                {
                    // A table IPA beyond the stage-2 input range (stage 1's IPS may be larger) is a
                    // stage-2 Translation fault: the checked walk says so. (The path's inline case
                    // above shares the upper bits of an IPA already in range.)
                    if (trace is null && Bits.FitsIn(descAddr, s2.InputBits)) WalkStage2Known(s2, descAddr, AccessKind.Read, tags.Vmid, useCache, probe, out s2res);
                    else s2res = WalkStage2Checked(s2, descAddr, AccessKind.Read, trace);
                }
                if (trace is not null) trace.Depth--;
                if (!s2res.Ok)
                {
                    s2res.FaultStage = 2;
                    s2res.FaultIpa = descAddr;
                    s2res.FaultClass = FaultClass.TTD;
                    res = s2res;
                    return;
                }
                descPa = s2res.Output;
                tableWritable = (s2res.Permissions & Permissions.Write) != 0;
                if (useCache && level > r.StartLevel && s2res.BlockShift >= r.PageShift) cache.StageTablePa(level, descPa - index * 8, tableWritable);
            }

        Fetch:
            res.Level = level;
            res.LastTable = table;
            if (descPa >= SparseMemory.AddressLimit - 8 || (anyAbortRanges && _memory.IsAbort(descPa, 8)))
            {
                // An external abort on a descriptor fetch is F_WALK_EABT, not a Translation fault (IHI 0070 7.3.12).
                if (trace is not null) TraceFault(trace, WalkTraceKind.FetchAborted, r.Stage, level, descPa, 0, table, index, descPa, 0);
                res.Fault = WalkFault.ExternalAbort;
                res.FetchAddress = descPa;
                return;
            }
            ulong desc = _memory.ReadUInt64(descPa);

            if ((desc & DescValid) == 0)
            {
                if (trace is not null) TraceFault(trace, WalkTraceKind.Invalid, r.Stage, level, descPa, desc, table, index, 0, 0);
                res.Fault = WalkFault.Translation;
                return;
            }

            bool isTable = (desc & DescTable) != 0 && level < 3;
            bool isPage = (desc & DescTable) != 0 && level == 3;
            if (isTable)
            {
                ulong next = DescriptorAddress(desc, r, r.PageShift);
                if (r.Stage == 1) limits |= TableLimits(desc);
                if (trace is not null) TraceTable(trace, r.Stage, level, descPa, desc, table, index, next);
                if (!Bits.FitsIn(next, r.OutputBits))
                {
                    if (trace is not null) TraceFault(trace, WalkTraceKind.NextTableTooLarge, r.Stage, level, descPa, desc, table, index, next, r.OutputBits);
                    res.Fault = WalkFault.AddressSize;
                    return;
                }
                if (useCache) cache.StageTable(level + 1, next, (byte)limits);
                table = next;
                continue;
            }

            if (!isPage && !GranuleGeometry.BlockAllowed(g, level, r.Lpa))
            {
                if (trace is not null) TraceFault(trace, WalkTraceKind.BlockNotAllowed, r.Stage, level, descPa, desc, table, index, 0, (int)g);
                res.Fault = WalkFault.Translation;
                return;
            }

            // Leaf: page or block. Checks in the architecture's priority: address size, access flag, permission.
            ulong oa = DescriptorAddress(desc, r, shift);
            res.BlockShift = shift;
            res.Output = oa | (input & ((1UL << shift) - 1));
            Permissions perms;
            if (r.Stage == 1)
            {
                perms = Stage1Permissions(desc, limits);
                res.Global = !Bits.Get(desc, NG);
            }
            else
            {
                perms = Stage2Permissions(desc);
                res.Global = true;
            }
            res.Permissions = perms;
            if (trace is not null) TraceLeaf(trace, r.Stage, level, descPa, desc, table, index, isPage, oa, shift, perms);

            if (!Bits.FitsIn(oa, r.OutputBits))
            {
                if (trace is not null) TraceFault(trace, WalkTraceKind.OutputTooLarge, r.Stage, level, descPa, desc, table, index, oa, r.OutputBits);
                res.Fault = WalkFault.AddressSize;
                return;
            }
            if (!Bits.Get(desc, AF))
            {
                if (r.HardwareAccessFlag)
                {
                    if (!tableWritable)
                    {
                        // The update is a write to the stage-1 table, which stage 2 forbids.
                        res = new WalkResult { Fault = WalkFault.Permission, FaultStage = 2, FaultIpa = descAddr, FaultClass = FaultClass.TTD, FaultOnDescriptorWrite = true, Level = level };
                        return;
                    }
                    _memory.WriteUInt64(descPa, desc | (1UL << AF));
                    if (trace is not null) TraceFault(trace, WalkTraceKind.AccessFlagSet, r.Stage, level, descPa, desc | (1UL << AF), table, index, 0, 0);
                }
                else if (!r.AccessFlagFaultDisabled)
                {
                    if (trace is not null) TraceFault(trace, WalkTraceKind.AccessFlag, r.Stage, level, descPa, desc, table, index, 0, 0);
                    res.Fault = WalkFault.AccessFlag;
                    return;
                }
            }
            if (!perms.Allows(access))
            {
                if (trace is not null) TraceFault(trace, WalkTraceKind.Permission, r.Stage, level, descPa, desc, table, index, (ulong)access, (int)perms);
                res.Fault = WalkFault.Permission;
                return;
            }
            return;
        }
        // Unreachable: level 3 always ends in a page, block or fault.
        res.Fault = WalkFault.Translation;
        return;
    }

    // Trace formatting lives out of line: string building in the walk itself would make the JIT
    // reserve and zero stack for every interpolation on each call, tracing or not.
    private enum WalkTraceKind { TableBaseTooLarge, FetchAborted, Invalid, NextTableTooLarge, BlockNotAllowed, OutputTooLarge, AccessFlag, AccessFlagSet, Permission }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void TraceFault(TranslationTrace trace, WalkTraceKind kind, int stage, int level, ulong descPa, ulong desc,
        ulong table, ulong index, ulong value, int bits)
    {
        switch (kind)
        {
            case WalkTraceKind.TableBaseTooLarge:
                trace.Add("ttb", stage, level, table, 0, $"table base 0x{table:X} exceeds the {bits}-bit output size");
                break;
            case WalkTraceKind.FetchAborted:
                trace.Add("descriptor", stage, level, descPa, 0, $"table 0x{table:X}[{index}]: descriptor fetch at 0x{descPa:X} aborted");
                break;
            case WalkTraceKind.Invalid:
                trace.Add("descriptor", stage, level, descPa, desc, $"table 0x{table:X}[{index}]: invalid (bit 0 clear)");
                break;
            case WalkTraceKind.NextTableTooLarge:
                trace.Note($"next-level table 0x{value:X} exceeds the {bits}-bit output size: address size fault");
                break;
            case WalkTraceKind.BlockNotAllowed:
                trace.Add("descriptor", stage, level, descPa, desc, $"table 0x{table:X}[{index}]: block descriptor not allowed at level {level} with a {1 << bits >> 10}K granule");
                break;
            case WalkTraceKind.OutputTooLarge:
                trace.Note($"output address 0x{value:X} exceeds the {bits}-bit output size: address size fault");
                break;
            case WalkTraceKind.AccessFlag:
                trace.Note("AF = 0 and no hardware update (HA = 0): access flag fault");
                break;
            case WalkTraceKind.AccessFlagSet:
                trace.Add("update", stage, level, descPa, desc, "hardware set the access flag");
                break;
            case WalkTraceKind.Permission:
                string dir = (AccessKind)value == AccessKind.Read ? "read" : "write";
                trace.Note($"a DMA {dir} needs {dir} permission, granted {(Permissions)bits}: permission fault");
                break;
        }
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void TraceNestedFetch(TranslationTrace trace, int level, ulong descAddr) =>
        trace.Add("s1-table-ipa", 1, level, descAddr, 0, $"stage-1 L{level} descriptor at IPA 0x{descAddr:X}: walking stage 2");

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void TraceTable(TranslationTrace trace, int stage, int level, ulong descPa, ulong desc, ulong table, ulong index, ulong next) =>
        trace.Add("descriptor", stage, level, descPa, desc,
            $"table 0x{table:X}[{index}]: table -> 0x{next:X}" + (stage == 1 && (Bits.Get(desc, APTable1) || Bits.Get(desc, APTable0)) ? $" APTable={Bits.Get(desc, 62, 61)}" : ""));

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void TraceLeaf(TranslationTrace trace, int stage, int level, ulong descPa, ulong desc, ulong table, ulong index,
        bool isPage, ulong oa, int shift, Permissions perms) =>
        trace.Add("descriptor", stage, level, descPa, desc,
            $"table 0x{table:X}[{index}]: {(isPage ? "page" : "block")} -> 0x{oa:X} ({1UL << shift:#,0} bytes), AF={(Bits.Get(desc, AF) ? 1 : 0)}, " +
            (stage == 1 ? $"AP[2:1]={Bits.Get(desc, 7, 6)}" : $"S2AP={Bits.Get(desc, 7, 6)}") + $", perms {perms}");

    /// <summary>A stage-2 walk with the input-range check (IPA beyond 2^(64 - S2T0SZ): stage-2 translation fault).</summary>
    // The stage-2 entry points stay calls: inlined into the nested walk, their result reached the
    // caller through two temporaries, each copied with a wide load just after the callee's narrow
    // stores (a store-forwarding stall per copy in the profile of a cold nested walk).
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    public WalkResult WalkStage2Checked(in WalkRegime s2, ulong ipa, AccessKind access, TranslationTrace? trace)
    {
        if (!Bits.FitsIn(ipa, s2.InputBits))
        {
            trace?.Add("range", 2, s2.StartLevel, ipa, 0, $"IPA 0x{ipa:X} is outside the {s2.InputBits}-bit stage-2 input range");
            return new WalkResult { Fault = WalkFault.Translation, FaultStage = 2, Level = s2.StartLevel };
        }
        if (trace is null && s2.Stage == 2)
        {
            bool own = !_inTranslation; // a walk outside a translation is one of its own
            if (own) BeginTranslation();
            WalkStage2(s2, s2.StartLevel, s2.TableBase, ipa, access, 0, useCache: false, fromPath: false, out var res);
            if (own) EndTranslation();
            return res;
        }
        return Walk(s2, ipa, access, s2, nested: false, trace);
    }

    /// <summary>
    /// As <see cref="WalkStage2Checked(in WalkRegime, ulong, AccessKind, TranslationTrace?)"/>, with
    /// the walk cache for <paramref name="vmid"/> and, within a translation, the stage-2 path of its
    /// earlier walks.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    public void WalkStage2Checked(in WalkRegime s2, ulong ipa, AccessKind access, ushort vmid, TranslationTrace? trace, out WalkResult result)
    {
        if (!Bits.FitsIn(ipa, s2.InputBits)) result = WalkStage2Checked(s2, ipa, access, trace);
        else if (trace is not null || s2.Stage != 2) Walk(s2, ipa, access, s2, nested: false, WalkTags.Stage2(vmid), trace, out result);
        else
        {
            bool useCache = _cache is { Enabled: true };
            bool probe = useCache && _cache!.Count != 0;
            bool own = !_inTranslation; // a walk outside a translation is one of its own
            if (own) BeginTranslation();
            WalkStage2KnownInline(s2, ipa, access, vmid, useCache, probe, out result);
            if (own) EndTranslation();
        }
    }

    /// <summary>
    /// An untraced stage-2 walk of an IPA within range that starts at the deepest table known: the
    /// translation's stage-2 path, then (when <paramref name="probe"/>) the walk cache for deeper levels.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)] // as the stage-2 entry points
    private void WalkStage2Known(in WalkRegime r, ulong input, AccessKind access, ushort vmid, bool useCache, bool probe, out WalkResult res) =>
        WalkStage2KnownInline(r, input, access, vmid, useCache, probe, out res);

    // Inlined into WalkStage2Checked: the output IPA's walk of a translation is one call.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void WalkStage2KnownInline(in WalkRegime r, ulong input, AccessKind access, ushort vmid, bool useCache, bool probe, out WalkResult res)
    {
        int firstLevel = r.StartLevel;
        ulong table = r.TableBase;
        int known = PathLevel(r, vmid, input);
        if (known > 0)
        {
            (firstLevel, table) = (known, _pathTables[known]);
            if (useCache) _pathHits++;
        }
        if (useCache && firstLevel < 3)
        {
            if (!probe) _skippedMisses++;
            else
            {
                int l = _cache!.FindTable(r.Stage, WalkTags.Stage2(vmid), r.TableBase, r.Granule, r.StartLevel, input, out ulong cached, out _);
                if (l > firstLevel) (firstLevel, table, known) = (l, cached, -1);
            }
        }
        WalkStage2Inline(r, firstLevel, table, input, access, vmid, useCache, fromPath: known > 0, out res);
    }

    /// <summary><see cref="WalkStage2Inline"/> as a call, for the walks that start elsewhere.</summary>
    private void WalkStage2(in WalkRegime r, int firstLevel, ulong firstTable, ulong input, AccessKind access, ushort vmid, bool useCache,
        bool fromPath, out WalkResult res) => WalkStage2Inline(r, firstLevel, firstTable, input, access, vmid, useCache, fromPath, out res);

    /// <summary>
    /// <see cref="WalkFrom"/> for an untraced single-stage stage-2 walk (every stage-2 walk of a
    /// translation, and the stage-2 fetches of a nested stage-1 walk): the same reads, checks in the
    /// same order, faults and walk-cache use, without the trace and nesting branches. Small enough
    /// for the JIT to inline its helpers and keep its state in registers: in WalkFrom the inliner's
    /// budget runs out, and even Bits.FitsIn and the regime's getters stay calls there.
    /// </summary>
    // Inlined into WalkStage2Known, the stage-2 walks of a translation: one call less for each.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void WalkStage2Inline(in WalkRegime r, int firstLevel, ulong firstTable, ulong input, AccessKind access, ushort vmid, bool useCache,
        bool fromPath, out WalkResult res)
    {
        res = new WalkResult { FaultStage = r.Stage };
        Granule g = r.Granule;
        ulong table = firstTable;
        if (!Bits.FitsIn(r.TableBase, r.OutputBits))
        {
            res.Fault = WalkFault.AddressSize;
            res.Level = r.StartLevel;
            return;
        }
        // The translation's stage-2 path becomes this walk's: the levels above firstLevel stay
        // when the walk started from the path (same input bits above them), else it starts here
        // and the old path goes to the walk cache.
        if (!fromPath)
        {
            if (_pathLearned) StagePath();
            _pathFirst = firstLevel > r.StartLevel ? firstLevel : r.StartLevel + 1;
        }
        else if (_pathLearned && ((input ^ _pathInput) >> GranuleGeometry.LevelShift(g, 2)) != 0)
        {
            // Another last-level region: the path's deeper tables are about to be replaced.
            StagePath();
        }
        (_pathInput, _pathBase, _pathVmid, _pathGranule) = (input, r.TableBase, vmid, g);
        if (firstLevel > r.StartLevel) _pathTables[firstLevel] = firstTable;
        _pathLast = firstLevel > r.StartLevel ? firstLevel : -1;
        bool anyAbortRanges = _memory.MayAbort;
        for (int level = firstLevel; level <= 3; level++)
        {
            int shift = GranuleGeometry.LevelShift(g, level);
            int indexBits = level == r.StartLevel ? r.InputBits - shift : GranuleGeometry.Stride(g);
            ulong descPa = table + ((input >> shift) & ((1UL << indexBits) - 1)) * 8;
            res.Level = level;
            res.LastTable = table;
            if (descPa >= SparseMemory.AddressLimit - 8 || (anyAbortRanges && _memory.IsAbort(descPa, 8)))
            {
                res.Fault = WalkFault.ExternalAbort;
                res.FetchAddress = descPa;
                return;
            }
            ulong desc = _memory.ReadUInt64(descPa);
            if ((desc & DescValid) == 0)
            {
                res.Fault = WalkFault.Translation;
                return;
            }
            bool isPage = (desc & DescTable) != 0 && level == 3;
            if ((desc & DescTable) != 0 && level < 3)
            {
                ulong next = DescriptorAddress(desc, r, r.PageShift);
                if (!Bits.FitsIn(next, r.OutputBits))
                {
                    res.Fault = WalkFault.AddressSize;
                    return;
                }
                _pathTables[level + 1] = next;
                _pathLast = level + 1;
                _pathLearned |= useCache;
                table = next;
                continue;
            }
            if (!isPage && !GranuleGeometry.BlockAllowed(g, level, r.Lpa))
            {
                res.Fault = WalkFault.Translation;
                return;
            }
            ulong oa = DescriptorAddress(desc, r, shift);
            res.BlockShift = shift;
            res.Output = oa | (input & ((1UL << shift) - 1));
            var perms = Stage2Permissions(desc);
            res.Global = true;
            res.Permissions = perms;
            if (!Bits.FitsIn(oa, r.OutputBits))
            {
                res.Fault = WalkFault.AddressSize;
                return;
            }
            if (!Bits.Get(desc, AF))
            {
                // Not nested: the table is always writable, so the hardware update never faults.
                if (r.HardwareAccessFlag) _memory.WriteUInt64(descPa, desc | (1UL << AF));
                else if (!r.AccessFlagFaultDisabled)
                {
                    res.Fault = WalkFault.AccessFlag;
                    return;
                }
            }
            if (!perms.Allows(access)) res.Fault = WalkFault.Permission;
            return;
        }
        // Unreachable: level 3 always ends in a page, block or fault.
        res.Fault = WalkFault.Translation;
    }
}

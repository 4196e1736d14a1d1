namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>
/// The walker's fast nested stage-1 loop (<c>PageTableWalker.TryWalkNested</c>) against the full
/// walk it stands in for: two SMMUs built from the same seed, one with the fast loop and one
/// without, translate the same accesses over tables with random descriptor changes (invalid
/// entries, blocks, access flags with and without hardware updates, AP and APTable limits, table
/// addresses beyond the output or stage-2 input size, stage-2 permissions) and random
/// invalidations in between. Results, event records, memory (access-flag updates) and walk-cache
/// entries must be the same.
/// </summary>
public class NestedFastPathTests
{
    private const ulong Region = 0x20_0000, Page = 0x1000, Ipa = 0x4000_0000, Pa = 0x9_0000_0000;

    internal sealed record Rig(SmmuHarness H, Streams.Nested N, List<ulong> Iovas);

    /// <summary>What <see cref="Mutate"/> changed: the stage, the level of the descriptor and the input whose walk reads it.</summary>
    internal readonly record struct Change(int Stage, int Level, ulong Input);

    internal static Rig Build(int seed, bool fast, bool walkCache = true)
    {
        var rng = new Random(seed);
        bool ha = rng.Next(3) == 0, affd = rng.Next(4) == 0;
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 44, Httu = 2 });
        var n = Streams.NestedStream(h, 5, new TestAllocator(0x2000_0000), asid: 1, vmid: 3,
            cd: c => ContextDescriptor.Create(c.TTB0, 1, t0sz: 25, tg0: 0, ips: Vmsa.Ps(44), ha: ha, affd: affd));
        h.Smmu.Walker.NestedFastPath = fast;
        h.Smmu.WalkCache.Enabled = walkCache;
        var iovas = new List<ulong>();
        // Pages in three 2 MiB regions of two 1 GiB regions: shared upper tables, three L3 tables.
        foreach (ulong region in new[] { Region, Region + 0x20_0000, Region + 0x4000_0000 })
            for (ulong k = 0; k < 4; k++)
            {
                ulong iova = region + k * Page, ipa = Ipa + (ulong)iovas.Count * Page;
                n.MapPage(iova, ipa, Pa + (ulong)iovas.Count * Page);
                iovas.Add(iova);
            }
        n.MapTables();
        return new Rig(h, n, iovas);
    }

    /// <summary>
    /// One random change to a descriptor on the walk of a random page, the same on both rigs. With
    /// <paramref name="tablesMayAlias"/>, a table descriptor may be pointed at the next page, which can
    /// be another table: one descriptor then serves two walks at different levels.
    /// </summary>
    internal static Change? Mutate(Random rng, Rig a, Rig b, bool tablesMayAlias = true)
    {
        ulong iova = a.Iovas[rng.Next(a.Iovas.Count)];
        bool stage2 = rng.Next(3) == 0;
        int level = rng.Next(1, 4);
        var (t1, t2) = stage2 ? (a.N.S2, b.N.S2) : (a.N.S1, b.N.S1);
        // Stage 2: the output IPA's walk, or that of the stage-1 table holding the page's L3 descriptor.
        ulong input = !stage2 ? iova : rng.Next(2) == 0 ? a.N.S1.WalkTo(iova, 3) : Translated(a, iova);
        // An IPA beyond the stage-2 input size has no stage-2 descriptor (a walk of it faults).
        if (stage2 && (input == ulong.MaxValue || input >> t1.InputBits != 0)) return null;
        ulong at = t1.WalkTo(input, level);
        ulong desc = t1.ReadDescriptor(at);
        int kind = rng.Next(9);
        if (kind == 8 && level < 3 && !tablesMayAlias) return null;
        ulong changed = kind switch
        {
            0 => desc & ~TestPageTable.Valid,
            1 => desc & ~TestPageTable.AF,
            2 => desc ^ (stage2 ? TestPageTable.S2ApWrite : TestPageTable.S1ApReadOnly),
            3 => desc ^ (stage2 ? TestPageTable.S2ApRead : TestPageTable.S1ApEl0),
            4 => desc | (1UL << (61 + rng.Next(2))),           // APTable[0] or [1] (ignored at stage 2 and in leaves)
            5 => desc | (1UL << (40 + rng.Next(8))),           // an address bit beyond the 40-bit IPA or 44-bit output
            6 => desc & ~TestPageTable.TableOrPage,            // a block (or reserved at level 3)
            7 => desc ^ TestPageTable.NG,
            _ => desc + Page,                                  // another table or page
        };
        t1.WriteDescriptor(at, changed);
        t2.WriteDescriptor(at, changed);
        return new Change(stage2 ? 2 : 1, level, input);
    }

    /// <summary>The output IPA of <paramref name="iova"/> by the stage-1 tables as they are, or ulong.MaxValue.</summary>
    private static ulong Translated(Rig r, ulong iova)
    {
        ulong d = r.N.S1.ReadDescriptor(r.N.S1.WalkTo(iova, 3));
        return (d & TestPageTable.Valid) != 0 ? d & 0x0000_FFFF_FFFF_F000 : ulong.MaxValue;
    }

    private static Command RandomInvalidation(Random rng, Rig r) => rng.Next(5) switch
    {
        0 => Command.TlbiNhAll(3),
        1 => Command.TlbiNhVa(3, 1, r.Iovas[rng.Next(r.Iovas.Count)], leaf: rng.Next(2) == 0),
        2 => Command.TlbiS2Ipa(3, Ipa + (ulong)rng.Next(r.Iovas.Count) * Page, leaf: rng.Next(2) == 0),
        3 => Command.TlbiS12Vmall(3),
        _ => Command.Sync(),
    };

    private const int SeedCount = 40;
    public static TheoryData<int> Seeds() => new(Enumerable.Range(1, SeedCount));

    [Theory]
    [MemberData(nameof(Seeds))]
    public void TheFastLoopTranslatesAsTheFullWalk(int seed) => Compare(seed);

    [Fact]
    public void TheSeedsTakeTheFastLoopAndLeaveIt()
    {
        // The control for the theory: it compares something only if the fast loop both finishes
        // walks and gives up on some (the changed descriptors) across the seeds.
        var rigs = Enumerable.Range(1, SeedCount).Select(Compare).ToList();
        rigs.Sum(r => r.H.Smmu.Walker.FastWalks).ShouldBeGreaterThan(100);
        rigs.Sum(r => r.H.Smmu.Walker.FullWalks).ShouldBeGreaterThan(20);
        // TLB misses next to an earlier walk, finished from the walk cache's leaf tables alone.
        rigs.Sum(r => r.H.Smmu.Walker.LeafWalks).ShouldBeGreaterThan(50);
    }

    /// <summary>Runs one seed on both rigs, asserting they agree; returns the fast rig.</summary>
    private static Rig Compare(int seed)
    {
        var (fast, full) = (Build(seed, fast: true), Build(seed, fast: false));
        var rng = new Random(seed * 7919);
        for (int step = 0; step < 60; step++)
        {
            switch (rng.Next(6))
            {
                case 0:
                    Mutate(rng, fast, full);
                    break;
                case 1:
                    var c = RandomInvalidation(rng, fast);
                    fast.H.SubmitAndSync(c);
                    full.H.SubmitAndSync(c);
                    break;
                default:
                    ulong iova = fast.Iovas[rng.Next(fast.Iovas.Count)] + (ulong)rng.Next(0x1000);
                    var access = rng.Next(3) == 0 ? AccessKind.Write : AccessKind.Read;
                    if (rng.Next(2) == 0)
                    {
                        // Both caches' IOTLB emptied: the next access walks (from the walk caches).
                        fast.H.Smmu.Tlb.Clear();
                        full.H.Smmu.Tlb.Clear();
                    }
                    var expected = full.H.Translate(5, iova, access);
                    fast.H.Translate(5, iova, access).ShouldBe(expected, $"seed {seed} step {step}: 0x{iova:X} {access}");
                    fast.H.TakeEvents().ShouldBe(full.H.TakeEvents(), $"seed {seed} step {step}: events");
                    break;
            }
            // The lookups are counted alike: a fast path that gives up leaves the counts, and the
            // walk that follows, as they would be without it.
            (fast.H.Smmu.WalkCache.Hits, fast.H.Smmu.WalkCache.Misses).ShouldBe((full.H.Smmu.WalkCache.Hits, full.H.Smmu.WalkCache.Misses),
                $"seed {seed} step {step}: walk-cache lookups (hits, misses)");
            var (fe, ue) = (fast.H.Smmu.WalkCache.Entries.ToHashSet(), full.H.Smmu.WalkCache.Entries.ToHashSet());
            if (!fe.SetEquals(ue))
                throw new ShouldAssertException($"seed {seed} step {step}: walk-cache entries of the fast loop only: {string.Join("; ", fe.Except(ue))}; of the full walk only: {string.Join("; ", ue.Except(fe))}");
        }
        // Hardware access-flag updates land in the same descriptors.
        foreach (ulong iova in fast.Iovas)
        {
            fast.N.S1.ReadDescriptor(fast.N.S1.WalkTo(iova, 3)).ShouldBe(full.N.S1.ReadDescriptor(full.N.S1.WalkTo(iova, 3)), $"seed {seed}: 0x{iova:X}");
        }
        return fast;
    }

    [Fact]
    public void ATlbMissNextToAWalkReadsOnlyTheTwoLeaves()
    {
        var r = Build(1, fast: true);
        r.H.TranslateOk(5, r.Iovas[0]);
        var entries = r.H.Smmu.WalkCache.Entries.ToHashSet();
        r.H.Smmu.Tlb.Clear();
        long hits = r.H.Smmu.WalkCache.Hits, misses = r.H.Smmu.WalkCache.Misses;
        // The next page: its stage-1 L3 table (with its PA) and its output's stage-2 L3 table are cached.
        r.H.TranslateOk(5, r.Iovas[1]).ShouldBe(Pa + Page);
        (r.H.Smmu.Walker.LeafWalks, r.H.Smmu.Walker.FastWalks, r.H.Smmu.Walker.FullWalks).ShouldBe((1L, 2L, 0L));
        // One lookup per stage, as the long way counts them; nothing learned, nothing inserted.
        (r.H.Smmu.WalkCache.Hits - hits, r.H.Smmu.WalkCache.Misses - misses).ShouldBe((2L, 0L));
        r.H.Smmu.WalkCache.Entries.ToHashSet().SetEquals(entries).ShouldBeTrue();
        r.H.Smmu.Tlb.Count.ShouldBe(1);
    }

    [Fact]
    public void AColdWalkOfAMappedPageStaysInTheFastLoop()
    {
        var r = Build(1, fast: true);
        long hits = r.H.Smmu.WalkCache.Hits, misses = r.H.Smmu.WalkCache.Misses;
        r.H.TranslateOk(5, r.Iovas[0]);
        (r.H.Smmu.Walker.FastWalks, r.H.Smmu.Walker.FullWalks).ShouldBe((1L, 0L));
        // Its lookups are counted once. Misses: stage 1's, the root table's stage-2 walk and the
        // output's (another 1 GiB region), none made in an empty cache. Hits: the tables of levels
        // 2 and 3 fetched through the stage-2 path of the root's walk.
        (r.H.Smmu.WalkCache.Hits - hits, r.H.Smmu.WalkCache.Misses - misses).ShouldBe((2L, 3L));
    }
}

/// <summary>
/// The walk and TLB caches against a model without walk caches, when software invalidates as the
/// architecture requires after each descriptor change (IHI 0070 4.4): a stage-1 leaf by
/// TLBI_NH_VA with Leaf = 1, a stage-1 table or block by a TLBI_NH_VA range over what the
/// descriptor maps; a stage-2 descriptor by TLBI_S2_IPA (Leaf = 1 for a page, a range over what a
/// table or block maps) followed by TLBI_NH_ALL for the VMID, as Linux does for a nesting parent.
/// After that nothing stale may remain: every translation must be the cacheless one.
/// </summary>
public class WalkCacheCoherenceTests
{
    private const ushort Vmid = 3, Asid = 1;
    private const int PageShift = 12;

    /// <summary>The commands that make <paramref name="c"/> visible: leaf-only for a page, a range over a table's or block's reach.</summary>
    private static Command[] Invalidation(NestedFastPathTests.Change c)
    {
        // 4K granule: a descriptor at level l maps 2^(12 + 9 * (3 - l)) bytes of input.
        int reach = PageShift + 9 * (3 - c.Level);
        ulong start = c.Input & ~((1UL << reach) - 1);
        bool page = c.Level == 3;
        // Range form: TG = 4K, NUM = 0, SCALE = log2(range / 4K) (IHI 0070 4.4.1.1).
        uint scale = (uint)(reach - PageShift);
        if (c.Stage == 1)
            return [page ? Command.TlbiNhVa(Vmid, Asid, start, leaf: true) : Command.TlbiNhVa(Vmid, Asid, start, tg: 1, num: 0, scale: scale)];
        return
        [
            page ? Command.TlbiS2Ipa(Vmid, start, leaf: true) : Command.TlbiS2Ipa(Vmid, start, tg: 1, num: 0, scale: scale),
            Command.TlbiNhAll(Vmid),
        ];
    }

    private const int SeedCount = 30;
    public static TheoryData<int> Seeds() => new(Enumerable.Range(1, SeedCount));

    [Theory]
    [MemberData(nameof(Seeds))]
    public void AfterTheRequiredInvalidationsNothingStaleRemains(int seed) => Compare(seed);

    [Fact]
    public void TheSeedsChangeTablesAndUseTheWalkCache()
    {
        // The control for the theory: it shows something only if descriptors change under cached
        // walks, and the walk cache answers walks, across the seeds.
        var runs = Enumerable.Range(1, SeedCount).Select(Compare).ToList();
        runs.Sum(r => r.Changes).ShouldBeGreaterThan(SeedCount * 5);
        runs.Sum(r => r.Cached.H.Smmu.WalkCache.Hits).ShouldBeGreaterThan(SeedCount * 5);
    }

    /// <summary>Runs one seed on both rigs, asserting they agree; returns the cached rig and how many descriptors changed.</summary>
    private static (NestedFastPathTests.Rig Cached, int Changes) Compare(int seed)
    {
        var (cached, cacheless) = (NestedFastPathTests.Build(seed, fast: true), NestedFastPathTests.Build(seed, fast: true, walkCache: false));
        var rng = new Random(seed * 104729);
        int changes = 0;
        for (int step = 0; step < 80; step++)
        {
            // No aliased tables: a descriptor that two walks read at different levels needs the
            // invalidation of both walks' ranges, which one change's commands below do not cover.
            if (rng.Next(4) == 0 && NestedFastPathTests.Mutate(rng, cached, cacheless, tablesMayAlias: false) is { } c)
            {
                changes++;
                Command[] commands = Invalidation(c);
                cached.H.SubmitAndSync(commands);
                cacheless.H.SubmitAndSync(commands);
                continue;
            }
            ulong iova = cached.Iovas[rng.Next(cached.Iovas.Count)] + (ulong)rng.Next(0x1000);
            var access = rng.Next(3) == 0 ? AccessKind.Write : AccessKind.Read;
            var expected = cacheless.H.Translate(5, iova, access);
            cached.H.Translate(5, iova, access).ShouldBe(expected, $"seed {seed} step {step}: 0x{iova:X} {access}");
            cached.H.TakeEvents().ShouldBe(cacheless.H.TakeEvents(), $"seed {seed} step {step}: events");
        }
        return (cached, changes);
    }
}


namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>
/// The walk caches (cached table descriptors; in a nested stage-1 entry also the table's PA, a
/// combined stage-1+2 entry) against IHI 0070 4.4: each stream warms one page of a 2 MiB region, then a table descriptor (or
/// the stage-2 leaf of a stage-1 table) is changed in memory behind the cache. A neighbouring page,
/// never translated before (so not in the IOTLB), is walked after an invalidation command: it shows
/// the change exactly when the command removed the cached entry the walk would use.
/// </summary>
public class WalkCacheTests
{
    private const ulong Ra = 0x20_0000, Rb = 0x60_0000, Rc = 0xA0_0000, Page = 0x1000, Shadow = 0x4000_0000;
    // Nested stream: output IPAs of its three regions (each its own 2 MiB stage-2 region for Rc).
    private const ulong Da = 0x4000_0000, Db = 0x4010_0000, Dc = 0x5000_0000;

    private sealed record Probe(string Name, uint Sid, ulong Iova, ulong Stale, ulong Fresh);

    private sealed class Fixture
    {
        public required SmmuHarness H { get; init; }
        public required List<Probe> Probes { get; init; }
        public ulong TableIpa { get; init; }
    }

    /// <summary>
    /// Builds the streams, warms them and changes the tables behind the caches. Probes: SID 1
    /// (VMID 1, ASID 1) regions a and b; SID 2 (VMID 1, ASID 2); SID 3 (VMID 2, ASID 1); SID 6 (EL2,
    /// ASID 1); SID 4 (stage 2 only, VMID 1) regions a and b; SID 5 (nested, VMID 3, ASID 1): a
    /// stage-1 table descriptor, the stage-2 leaf of a stage-1 table, a stage-2 table descriptor.
    /// </summary>
    private static Fixture Build(bool walkCache = true)
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Hyp = true, Ril = true },
            cr2: SmmuHarness.CR2_E2H | SmmuHarness.CR2_RECINVSID | SmmuHarness.CR2_PTM);
        h.Smmu.WalkCache.Enabled = walkCache;
        var pa = new TestAllocator(0x2000_0000);
        ulong nextPa = 0x8_0000_0000;
        ulong NewPa() => nextPa += 0x1_0000;
        var probes = new List<Probe>();
        var changes = new List<Action>();

        // Maps region+0 (warmed) and region+Page (the probe) and, 1 GiB higher, a shadow region whose
        // L3 table maps the probe's page elsewhere; the change points the region's L2 descriptor at
        // the shadow's L3 table.
        void Redirect(TestPageTable t, string name, uint sid, ulong region)
        {
            t.Map(region, NewPa(), 3);
            ulong stale = NewPa(), fresh = NewPa();
            t.Map(region + Page, stale, 3);
            t.Map(region + Shadow + Page, fresh, 3);
            probes.Add(new Probe(name, sid, region + Page, stale, fresh));
            h.TranslateOk(sid, region);
            changes.Add(() => t.WriteDescriptor(t.WalkTo(region, 2), t.ReadDescriptor(t.WalkTo(region + Shadow, 2))));
        }

        var t1 = Streams.Stage1(h, 1, pa, asid: 1, vmid: 1);
        Redirect(t1, "1.a", 1, Ra);
        Redirect(t1, "1.b", 1, Rb);
        Redirect(Streams.Stage1(h, 2, pa, asid: 2, vmid: 1), "2.a", 2, Ra);
        Redirect(Streams.Stage1(h, 3, pa, asid: 1, vmid: 2), "3.a", 3, Ra);
        Redirect(Streams.Stage1(h, 6, pa, asid: 1, strw: 2), "6.a", 6, Ra);
        var t4 = Streams.Stage2(h, 4, pa, vmid: 1);
        Redirect(t4, "4.a", 4, Ra);
        Redirect(t4, "4.b", 4, Rb);

        // Nested: every IPA below maps through stage 2; the stage-1 tables live at IPAs (PA = IPA + Delta).
        var n = Streams.NestedStream(h, 5, pa, asid: 1, vmid: 3);
        ulong Out(ulong ipa) { ulong p = NewPa(); n.S2.Map(ipa, p, 3); return p; }
        // 5.s1: a stage-1 L2 descriptor redirected to a shadow L3 table.
        n.S1.Map(Ra, Da, 3); Out(Da);
        n.S1.Map(Ra + Page, Da + Page, 3);
        n.S1.Map(Ra + Shadow + Page, Da + 2 * Page, 3);
        probes.Add(new Probe("5.s1", 5, Ra + Page, Out(Da + Page), Out(Da + 2 * Page)));
        // 5.fetch: the stage-2 leaf of Rb's stage-1 L3 table moved to a copy whose probe entry differs.
        n.S1.Map(Rb, Db, 3); Out(Db);
        n.S1.Map(Rb + Page, Db + Page, 3);
        probes.Add(new Probe("5.fetch", 5, Rb + Page, Out(Db + Page), Out(Db + 2 * Page)));
        // 5.s2: the stage-2 L2 descriptor of Dc's region redirected to a shadow stage-2 L3 table.
        n.S1.Map(Rc, Dc, 3); Out(Dc);
        n.S1.Map(Rc + Page, Dc + Page, 3);
        ulong staleC = Out(Dc + Page), freshC = Out(Dc + Shadow + Page);
        probes.Add(new Probe("5.s2", 5, Rc + Page, staleC, freshC));
        n.MapTables();
        foreach (ulong r in new[] { Ra, Rb, Rc }) h.TranslateOk(5, r);

        ulong tableIpa = n.S1.WalkTo(Rb, 3) & ~(Page - 1);
        changes.Add(() => n.S1.WriteDescriptor(n.S1.WalkTo(Ra, 2), n.S1.ReadDescriptor(n.S1.WalkTo(Ra + Shadow, 2))));
        changes.Add(() =>
        {
            ulong copy = 0x7_0000_0000;
            for (ulong i = 0; i < Page; i += 8) h.Memory.WriteUInt64(copy + i, h.Memory.ReadUInt64(tableIpa + n.Delta + i));
            ulong probeAt = copy + ((Rb + Page) >> 12 & 0x1FF) * 8;
            h.Memory.WriteUInt64(probeAt, n.S1.EncodeAddress(Db + 2 * Page, 12) | n.S1.DefaultAttributes | TestPageTable.Valid | TestPageTable.TableOrPage);
            n.S2.Map(tableIpa, copy, 3);
        });
        changes.Add(() => n.S2.WriteDescriptor(n.S2.WalkTo(Dc, 2), n.S2.ReadDescriptor(n.S2.WalkTo(Dc + Shadow, 2))));

        foreach (var change in changes) change();
        h.NoEvents();
        return new Fixture { H = h, Probes = probes, TableIpa = tableIpa };
    }

    private static readonly string[] Vmid1 = ["1.a", "1.b", "2.a"];
    private static readonly string[] Nested = ["5.s1", "5.fetch", "5.s2"];

    private static readonly Dictionary<string, (Func<Fixture, Command> Command, string[] Fresh)> Cases = new()
    {
        ["CMD_SYNC alone"] = (_ => Command.Sync(), []),
        ["TLBI_NH_ALL VMID 1"] = (_ => Command.TlbiNhAll(1), Vmid1),
        // The stage-1 entries of a nested walk carry their tables' PAs (combined entries): they go with them.
        ["TLBI_NH_ALL VMID 3: stage-1 tables and their PAs, not stage 2's"] = (_ => Command.TlbiNhAll(3), ["5.s1", "5.fetch"]),
        ["TLBI_NH_ASID VMID 1 ASID 1"] = (_ => Command.TlbiNhAsid(1, 1), ["1.a", "1.b"]),
        ["TLBI_NH_ASID VMID 2 ASID 1"] = (_ => Command.TlbiNhAsid(2, 1), ["3.a"]),
        ["TLBI_NH_VA VMID 1 ASID 1 a"] = (_ => Command.TlbiNhVa(1, 1, Ra), ["1.a"]),
        ["TLBI_NH_VA leaf keeps tables"] = (_ => Command.TlbiNhVa(1, 1, Ra, leaf: true), []),
        ["TLBI_NH_VA TTL 3 still removes the tables above"] = (_ => Command.TlbiNhVa(1, 1, Ra + Page, tg: 1, ttl: 3), ["1.a"]),
        ["TLBI_NH_VA range of region a only"] = (_ => Command.TlbiNhVa(1, 1, Ra, tg: 1, num: 0, scale: 9), ["1.a"]),
        ["TLBI_NH_VA range 0..8M covers a and b"] = (_ => Command.TlbiNhVa(1, 1, 0, tg: 1, num: 0, scale: 11), ["1.a", "1.b"]),
        ["TLBI_NH_VA leaf range keeps tables"] = (_ => Command.TlbiNhVa(1, 1, 0, leaf: true, tg: 1, num: 0, scale: 11), []),
        ["TLBI_NH_VA VMID 1 ASID 3 (no such ASID)"] = (_ => Command.TlbiNhVa(1, 3, Ra), []),
        ["TLBI_NH_VA VMID 3 ASID 1 (nested stage 1)"] = (_ => Command.TlbiNhVa(3, 1, Ra), ["5.s1"]),
        ["TLBI_NH_VAA VMID 1 a: every ASID"] = (_ => Command.TlbiNhVaa(1, Ra), ["1.a", "2.a"]),
        ["TLBI_NH_VAA leaf keeps tables"] = (_ => Command.TlbiNhVaa(1, Ra, leaf: true), []),
        ["TLBI_EL2_ALL"] = (_ => Command.TlbiEl2All(), ["6.a"]),
        ["TLBI_EL2_ASID 1"] = (_ => Command.TlbiEl2Asid(1), ["6.a"]),
        ["TLBI_EL2_VA ASID 1 a"] = (_ => Command.TlbiEl2Va(1, Ra), ["6.a"]),
        ["TLBI_EL2_VA leaf keeps tables"] = (_ => Command.TlbiEl2Va(1, Ra, leaf: true), []),
        ["TLBI_S12_VMALL VMID 1"] = (_ => Command.TlbiS12Vmall(1), [.. Vmid1, "4.a", "4.b"]),
        ["TLBI_S12_VMALL VMID 3"] = (_ => Command.TlbiS12Vmall(3), Nested),
        ["TLBI_S2_IPA VMID 1 a"] = (_ => Command.TlbiS2Ipa(1, Ra), ["4.a"]),
        ["TLBI_S2_IPA leaf keeps stage-2 tables"] = (_ => Command.TlbiS2Ipa(1, Ra, leaf: true), []),
        ["TLBI_S2_IPA range 0..8M"] = (_ => Command.TlbiS2Ipa(1, 0, tg: 1, num: 0, scale: 11), ["4.a", "4.b"]),
        // Not required to reach combined stage-1+2 entries (IHI 0070 4.4.4): a stage-1 table's PA stays
        // until TLBI_NH_* or TLBI_S12_VMALL, which is why Linux follows a nesting parent's change with TLBI_NH_ALL.
        ["TLBI_S2_IPA VMID 3 of a stage-1 table (leaf)"] = (f => Command.TlbiS2Ipa(3, f.TableIpa, leaf: true), []),
        ["TLBI_S2_IPA VMID 3 of a stage-1 table: the combined PA stays"] = (f => Command.TlbiS2Ipa(3, f.TableIpa), []),
        ["TLBI_S2_IPA VMID 3 of an output IPA"] = (_ => Command.TlbiS2Ipa(3, Dc), ["5.s2"]),
        ["TLBI_S2_IPA VMID 3 of an output IPA (leaf)"] = (_ => Command.TlbiS2Ipa(3, Dc, leaf: true), []),
        ["TLBI_S2_IPA VMID 1 does not reach VMID 3"] = (f => Command.TlbiS2Ipa(1, f.TableIpa), []),
        ["TLBI_NSNH_ALL: every non-EL2 entry"] = (_ => Command.TlbiNsnhAll(), [.. Vmid1, "3.a", "4.a", "4.b", .. Nested]),
        // Configuration invalidation leaves translations cached (IHI 0070 4.5).
        ["CFGI_ALL"] = (_ => Command.CfgiAll(), []),
        ["CFGI_STE SID 1"] = (_ => Command.CfgiSte(1), []),
        ["CFGI_CD SID 5"] = (_ => Command.CfgiCd(5, 0), []),
        ["CFGI_CD_ALL SID 1"] = (_ => Command.CfgiCdAll(1), []),
    };

    public static TheoryData<string> CaseNames() => new(Cases.Keys);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void RemovesExactlyWhatTheCommandCovers(string name)
    {
        var (command, fresh) = Cases[name];
        var f = Build();
        f.H.SubmitAndSync(command(f));
        foreach (var p in f.Probes)
        {
            bool expectFresh = fresh.Contains(p.Name);
            f.H.TranslateOk(p.Sid, p.Iova).ShouldBe(expectFresh ? p.Fresh : p.Stale, $"{p.Name} after {name}");
        }
        f.H.NoEvents();
    }

    [Fact]
    public void WithoutWalkCachesEveryWalkSeesTheChange()
    {
        // The control: the same state with the walk cache off reads every level from memory, so the
        // stale results above can only come from the cache.
        var f = Build(walkCache: false);
        foreach (var p in f.Probes) f.H.TranslateOk(p.Sid, p.Iova).ShouldBe(p.Fresh, p.Name);
    }

    [Fact]
    public void UpperLevelsAreReusedAcrossWalks()
    {
        var h = new SmmuHarness();
        var n = Streams.NestedStream(h, 5, new TestAllocator(0x2000_0000), asid: 1, vmid: 3);
        for (ulong k = 0; k < 4; k++) n.MapPage(Ra + k * Page, Da + k * Page, 0x9_0000_0000 + k * Page);
        n.MapTables();
        h.TranslateOk(5, Ra);
        var entries = h.Smmu.WalkCache.Entries;
        entries.Count(e => e.Kind == WalkCacheKind.Stage1Table).ShouldBe(2, "the L2 and L3 tables of a 39-bit stage 1 starting at L1");
        entries.ShouldAllBe(e => e.Kind != WalkCacheKind.Stage1Table || e.OutputPa == e.Output + n.Delta, "nested stage-1 entries combine their tables' PAs");
        entries.ShouldContain(e => e.Kind == WalkCacheKind.Stage2Table);
        long misses = h.Smmu.WalkCache.Misses;
        h.TranslateOk(5, Ra + Page).ShouldBe(0x9_0000_0000 + Page);
        h.Smmu.WalkCache.Misses.ShouldBe(misses, "the neighbouring page's walk finds its L3 table with its PA, and the stage-2 L3 table, cached");
    }

    [Fact]
    public void ResetEmptiesTheWalkCache()
    {
        var f = Build();
        f.H.Smmu.WalkCache.Count.ShouldBeGreaterThan(0);
        f.H.Smmu.WalkCache.Clear();
        f.H.Smmu.WalkCache.Count.ShouldBe(0);
        f.H.Smmu.WalkCache.Entries.ShouldBeEmpty();
    }
}

/// <summary>
/// What one cold nested translation leaves in the walk cache: the walker stages what it learns and
/// inserts it when the translation ends, and shares one stage-2 path between the walks of the
/// stage-1 tables and of the output IPA. The entries must be exactly those of the tables read.
/// </summary>
public class WalkCacheFillTests
{
    private const ulong Iova = 0x20_0000, Ipa = 0x4000_0000, Pa = 0x9_0000_0000;

    /// <summary>A nested stream (SID 5, VMID 3, ASID 1) mapping one page, translated once from an empty walk cache.</summary>
    private static (SmmuHarness H, Streams.Nested N) TranslatedOnce()
    {
        var h = new SmmuHarness();
        var n = Streams.NestedStream(h, 5, new TestAllocator(0x2000_0000), asid: 1, vmid: 3);
        n.MapPage(Iova, Ipa, Pa);
        n.MapTables();
        h.Smmu.WalkCache.Count.ShouldBe(0);
        h.TranslateOk(5, Iova).ShouldBe(Pa);
        return (h, n);
    }

    [Fact]
    public void AColdNestedTranslationCachesEveryTableItRead()
    {
        var (h, n) = TranslatedOnce();
        var entries = h.Smmu.WalkCache.Entries;

        // Stage 1 (39-bit, start level 1): the tables of levels 2 and 3, at IPAs, for the 1 GiB and 2 MiB
        // regions, each with its PA (stage 2 maps each table's page to PA = IPA + Delta).
        var s1 = entries.Where(e => e.Kind == WalkCacheKind.Stage1Table).OrderBy(e => e.Level).ToList();
        s1.Select(e => (e.Level, e.InputBase, e.SizeShift)).ShouldBe([(2, 0UL, 30), (3, Iova, 21)]);
        s1[0].Output.ShouldBe(Next(n.S1, Iova, 1));
        s1[1].Output.ShouldBe(Next(n.S1, Iova, 2));
        s1.Select(e => e.OutputPa).ShouldBe([s1[0].Output + n.Delta, s1[1].Output + n.Delta]);

        // Stage 2 (40-bit, start level 1): levels 2 and 3 for the tables' IPA region and for the output IPA's,
        // read once each: the output walk's path is its own (another 1 GiB region), the tables' walks share theirs.
        var s2 = entries.Where(e => e.Kind == WalkCacheKind.Stage2Table).Select(e => (e.Level, e.InputBase, e.Output)).Order().ToList();
        s2.ShouldBe(new[]
        {
            (2, 0UL, Next(n.S2, Streams.IpaTables, 1)),
            (2, Ipa, Next(n.S2, Ipa, 1)),
            (3, Streams.IpaTables & ~0x1F_FFFFUL, Next(n.S2, Streams.IpaTables, 2)),
            (3, Ipa, Next(n.S2, Ipa, 2)),
        }.Order().ToList());
        entries.Count.ShouldBe(6);
        // As three walk records: stage 1's, and stage 2's for the tables' IPA region and for the output's.
        h.Smmu.WalkCache.Count.ShouldBe(3);
    }

    [Fact]
    public void ClearsPastTheGenerationBitsForgetEveryEntry()
    {
        // A slot keeps the generation it was made in within 24 bits; when the count runs out, Clear
        // empties the slots themselves, so an entry of generation 1 cannot come back as valid.
        var (h, _) = TranslatedOnce();
        var before = h.Smmu.WalkCache.Entries.ToHashSet();
        before.Count.ShouldBe(6);
        for (long i = 0; i < WalkCache.GenerationLimit; i++) h.Smmu.WalkCache.Clear();
        h.Smmu.WalkCache.Entries.ShouldBeEmpty();
        h.Smmu.Tlb.Clear();
        h.TranslateOk(5, Iova).ShouldBe(Pa);
        h.Smmu.WalkCache.Entries.ToHashSet().SetEquals(before).ShouldBeTrue();
    }

    [Fact]
    public void AMissInTheSameLastLevelRegionReadsOneDescriptorPerStage()
    {
        // The stage-1 record gives the L3 table's PA (no stage-2 fetch for it), the output's stage-2
        // record its last-level table: two lookups, two descriptor reads, nothing new to insert.
        var (h, n) = TranslatedOnce();
        n.MapPage(Iova + 0x1000, Ipa + 0x1000, Pa + 0x1000);
        var before = h.Smmu.WalkCache.Entries.ToHashSet();
        long hits = h.Smmu.WalkCache.Hits, misses = h.Smmu.WalkCache.Misses;
        h.TranslateOk(5, Iova + 0x1000).ShouldBe(Pa + 0x1000);
        (h.Smmu.WalkCache.Hits - hits, h.Smmu.WalkCache.Misses - misses).ShouldBe((2L, 0L));
        h.Smmu.WalkCache.Entries.ToHashSet().SetEquals(before).ShouldBeTrue();
    }

    [Fact]
    public void WalksThatEndInBlocksAreFoundFromAnotherBlockOfTheSameTable()
    {
        // 2 MiB blocks at both stages: no last-level tables, so the records are found through the
        // region of the level-2 tables (1 GiB). The next block's walk reads one descriptor per stage.
        var h = new SmmuHarness();
        var n = Streams.NestedStream(h, 5, new TestAllocator(0x2000_0000), asid: 1, vmid: 3);
        const ulong block = 0x20_0000;
        for (ulong k = 0; k < 2; k++)
        {
            n.S1.Map(Iova + k * block, Ipa + k * block, 2);
            n.S2.Map(Ipa + k * block, Pa + k * block, 2);
        }
        n.MapTables();
        h.TranslateOk(5, Iova).ShouldBe(Pa);
        var entries = h.Smmu.WalkCache.Entries;
        entries.Where(e => e.Kind == WalkCacheKind.Stage1Table).Select(e => e.Level).ShouldBe([2]);
        long hits = h.Smmu.WalkCache.Hits, misses = h.Smmu.WalkCache.Misses;
        h.TranslateOk(5, Iova + block).ShouldBe(Pa + block);
        (h.Smmu.WalkCache.Hits - hits, h.Smmu.WalkCache.Misses - misses).ShouldBe((2L, 0L));
        h.Smmu.WalkCache.Entries.ToHashSet().SetEquals(entries).ShouldBeTrue("nothing new to insert");
    }

    [Fact]
    public void AStage1TableLargerThanItsStage2PageIsCachedWithoutItsPa()
    {
        // 64K stage-1 tables over 4K stage-2 pages: no one stage-2 mapping covers a table, so the
        // stage-1 entries keep only the tables' IPAs and every fetch goes through stage 2, which
        // then shows a table page moved elsewhere without any invalidation of stage 1.
        var h = new SmmuHarness();
        var pa = new TestAllocator(0x2000_0000);
        var s2 = new TestPageTable(h.Memory, pa, 12, 40, 1, stage2: true);
        var ipa = new TestAllocator(Streams.IpaTables);
        ulong cdIpa = ipa.Allocate(0x1000, 0x1000);
        var s1 = new TestPageTable(h.Memory, ipa, 16, 48, 1, stage2: false, toPa: a => a + Streams.IpaDelta);
        h.WriteCd(cdIpa + Streams.IpaDelta, ContextDescriptor.Create(s1.Root, 1, t0sz: 16, tg0: 1, ips: Vmsa.Ps(48)));
        h.WriteSte(5, Streams.Stage2Ste(s2, 3) with { W0 = StreamTableEntry.Create(SteConfig.Nested, s1ContextPtr: cdIpa).W0 });
        const ulong page64K = 0x1_0000, next = Iova + page64K;
        s1.Map(Iova, Ipa, 3);
        s1.Map(next, Ipa + page64K, 3);
        s2.Map(Ipa, Pa, 3);
        s2.Map(Ipa + page64K, Pa + page64K, 3);
        for (ulong a = Streams.IpaTables; a < ipa.Next; a += 0x1000) s2.Map(a, a + Streams.IpaDelta, 3);
        h.TranslateOk(5, Iova).ShouldBe(Pa);

        var s1Entries = h.Smmu.WalkCache.Entries.Where(e => e.Kind == WalkCacheKind.Stage1Table).ToList();
        s1Entries.Select(e => e.Level).Order().ShouldBe([2, 3]);
        s1Entries.ShouldAllBe(e => e.OutputPa == null);

        // Move the 4K page of the L3 table that holds next's descriptor to a copy mapping next elsewhere.
        ulong descIpa = s1.DescriptorAddress(s1.WalkTo(Iova, 3) & ~(page64K - 1), 3, next);
        ulong copy = 0x7_0000_0000, elsewhere = Pa + 0x10_0000;
        for (ulong i = 0; i < 0x1000; i += 8) h.Memory.WriteUInt64(copy + i, h.Memory.ReadUInt64((descIpa & ~0xFFFUL) + Streams.IpaDelta + i));
        h.Memory.WriteUInt64(copy + (descIpa & 0xFFF), s1.EncodeAddress(Ipa + 2 * page64K, 16) | s1.DefaultAttributes | TestPageTable.Valid | TestPageTable.TableOrPage);
        s2.Map(Ipa + 2 * page64K, elsewhere, 3);
        s2.Map(descIpa & ~0xFFFUL, copy, 3);
        h.TranslateOk(5, next).ShouldBe(elsewhere);
    }

    /// <summary>The table the descriptor at <paramref name="level"/> on <paramref name="ia"/>'s walk points to (4K granule, 48-bit addresses).</summary>
    private static ulong Next(TestPageTable t, ulong ia, int level) => t.ReadDescriptor(t.WalkTo(ia, level)) & 0x0000_FFFF_FFFF_F000;
}

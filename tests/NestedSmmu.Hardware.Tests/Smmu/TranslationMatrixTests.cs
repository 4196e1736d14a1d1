namespace NestedSmmu.Hardware.Tests.Smmu;

public enum Stages { Stage1, Stage2, Nested }

/// <summary>
/// Granule x start level x stage x leaf kind. Tables come from the test's own builder
/// (<see cref="TestPageTable"/>), the SMMU is programmed through its registers, and the expected
/// output address is computed arithmetically.
/// </summary>
public class TranslationMatrixTests
{
    private const ulong DataPa = 0x80_0000_0000;      // 512 GiB: aligned for every leaf size used
    private const ulong IpaDelta = 0x40_0000_0000;    // nested: stage-1 tables and CD live at IPA, PA = IPA + delta
    private const ulong IpaTables = 0x0100_0000;
    private const ulong IpaData = 0x0800_0000;

    public static TheoryData<int, int, int, int, Stages> Cases()
    {
        var data = new TheoryData<int, int, int, int, Stages>();
        foreach (int g in new[] { 12, 14, 16 })
        {
            int stride = g - 3;
            for (int start = 0; start <= 3; start++)
            {
                int shift = Vmsa.LevelShift(g, start);
                // Input sizes for this start level: the largest and the smallest it resolves, within T0SZ 16..39.
                var sizes = new SortedSet<int> { Math.Min(48, shift + stride), Math.Max(25, shift + 1) };
                foreach (int bits in sizes)
                {
                    if (bits > 48 || bits < 25 || Vmsa.Stage1StartLevel(g, bits) != start) continue;
                    for (int leaf = start; leaf <= 3; leaf++)
                    {
                        if (leaf < 3 && !Vmsa.BlockAllowed(g, leaf, lpa: false)) continue;
                        foreach (var stage in Enum.GetValues<Stages>()) data.Add(g, start, bits, leaf, stage);
                    }
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TranslatesThroughTheModelTables(int pageShift, int startLevel, int inputBits, int leafLevel, Stages stage)
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48 });
        var pa = new TestAllocator(0x2000_0000);
        ulong iova = Vmsa.PatternAddress(inputBits);
        ulong expected;
        const uint sid = 5;
        const ulong cdPa = 0x1300_0000;

        switch (stage)
        {
            case Stages.Stage1:
            {
                var s1 = new TestPageTable(h.Memory, pa, pageShift, inputBits, startLevel, stage2: false);
                ulong leaf = s1.LeafSize(leafLevel);
                ulong oa = Vmsa.AlignUp(DataPa, leaf);
                s1.Map(iova, oa, leafLevel);
                h.WriteCd(cdPa, ContextDescriptor.Create(s1.Root, asid: 7, t0sz: (uint)(64 - inputBits), tg0: Vmsa.Tg0(pageShift), ips: Vmsa.Ps(48)));
                h.WriteSte(sid, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: cdPa));
                expected = oa + (iova & (leaf - 1));
                CheckOtherPageOfLeaf(h, sid, iova, oa, leaf, 1UL << pageShift);
                break;
            }
            case Stages.Stage2:
            {
                var s2 = new TestPageTable(h.Memory, pa, pageShift, inputBits, startLevel, stage2: true);
                ulong leaf = s2.LeafSize(leafLevel);
                ulong oa = Vmsa.AlignUp(DataPa, leaf);
                s2.Map(iova, oa, leafLevel);
                h.WriteSte(sid, Stage2Ste(s2, vmid: 3));
                expected = oa + (iova & (leaf - 1));
                CheckOtherPageOfLeaf(h, sid, iova, oa, leaf, 1UL << pageShift);
                break;
            }
            default:
            {
                // Stage 2 starts at the same level with as many concatenated tables as it allows (up to 16).
                int ia2 = Math.Min(48, Vmsa.LevelShift(pageShift, startLevel) + Vmsa.Stride(pageShift) + 4);
                var s2 = new TestPageTable(h.Memory, pa, pageShift, ia2, startLevel, stage2: true);
                var ipa = new TestAllocator(IpaTables);
                ulong cdIpa = ipa.Allocate(64, 64);
                var s1 = new TestPageTable(h.Memory, ipa, pageShift, inputBits, startLevel, stage2: false, toPa: a => a + IpaDelta);
                ulong s1Leaf = s1.LeafSize(leafLevel);
                ulong ipaBase = Vmsa.AlignUp(IpaData, s1Leaf);
                (ipaBase + s1Leaf).ShouldBeLessThanOrEqualTo(1UL << ia2, "test layout: the stage-1 output fits the IPA space");
                s1.Map(iova, ipaBase, leafLevel);
                ulong dataIpa = ipaBase + (iova & (s1Leaf - 1));
                ulong s2Leaf = s2.LeafSize(leafLevel);
                ulong oa = Vmsa.AlignUp(DataPa, s2Leaf);
                s2.Map(dataIpa, oa, leafLevel);
                for (ulong a = IpaTables & ~(s2.PageSize - 1); a < ipa.Next; a += s2.PageSize) s2.Map(a, a + IpaDelta, 3);
                h.WriteCd(cdIpa + IpaDelta, ContextDescriptor.Create(s1.Root, asid: 7, t0sz: (uint)(64 - inputBits), tg0: Vmsa.Tg0(pageShift), ips: Vmsa.Ps(48)));
                var ste = Stage2Ste(s2, vmid: 3);
                h.WriteSte(sid, ste with { W0 = StreamTableEntry.Create(SteConfig.Nested, s1ContextPtr: cdIpa).W0 });
                expected = oa + (dataIpa & (s2Leaf - 1));
                break;
            }
        }

        h.TranslateOk(sid, iova, AccessKind.Read).ShouldBe(expected);
        h.TranslateOk(sid, iova ^ 0x18, AccessKind.Write).ShouldBe(expected ^ 0x18);
        long hits = h.Smmu.Tlb.Hits;
        h.TranslateOk(sid, iova, AccessKind.Write).ShouldBe(expected);
        h.Smmu.Tlb.Hits.ShouldBe(hits + 1, "the repeated access hits the IOTLB");
        h.NoEvents();
    }

    private static void CheckOtherPageOfLeaf(SmmuHarness h, uint sid, ulong iova, ulong oa, ulong leaf, ulong page)
    {
        if (leaf == page) return;
        // Another page of the same block: the offset inside the block passes through.
        ulong other = iova ^ (leaf >> 1) ^ page;
        h.TranslateOk(sid, other).ShouldBe(oa + (other & (leaf - 1)));
    }

    internal static StreamTableEntry Stage2Ste(TestPageTable s2, ushort vmid, int ps = 48) =>
        StreamTableEntry.Create(SteConfig.Stage2, s2Vmid: vmid, s2T0sz: (uint)(64 - s2.InputBits), s2Sl0: Vmsa.S2Sl0(s2.PageShift, s2.StartLevel),
            s2Tg: Vmsa.Tg0(s2.PageShift), s2Ps: Vmsa.Ps(ps), s2Ttb: s2.Root);

    public static TheoryData<int, int, int, int> ConcatenatedCases()
    {
        var data = new TheoryData<int, int, int, int>();
        // (granule, start level, concatenated tables); the IPA selects the last table and table 1.
        foreach (int g in new[] { 12, 14, 16 })
        {
            for (int start = 0; start <= 3; start++)
            {
                if (g == 12 && start == 3) continue; // 4 KiB stage 2 cannot start at level 3
                if (g == 16 && start == 0) continue; // 64 KiB has no level 0
                foreach (int tables in new[] { 2, 4, 8, 16 })
                {
                    int ia = Vmsa.LevelShift(g, start) + Vmsa.Stride(g) + (int)Math.Log2(tables);
                    if (ia > 48) continue;
                    foreach (int which in new SortedSet<int> { 1, tables - 1 }) data.Add(g, start, tables, which);
                }
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ConcatenatedCases))]
    public void Stage2ConcatenatedStartTables(int pageShift, int startLevel, int tables, int whichTable)
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48 });
        int ia = Vmsa.LevelShift(pageShift, startLevel) + Vmsa.Stride(pageShift) + (int)Math.Log2(tables);
        var s2 = new TestPageTable(h.Memory, new TestAllocator(0x2000_0000), pageShift, ia, startLevel, stage2: true);
        s2.ConcatenatedTables.ShouldBe(tables);
        s2.StartTableBytes.ShouldBe((ulong)tables << pageShift);
        // An IPA whose start-level index falls in table `whichTable` of the concatenation.
        int tableBits = Vmsa.LevelShift(pageShift, startLevel) + Vmsa.Stride(pageShift);
        ulong ipa = ((ulong)whichTable << tableBits) | (Vmsa.PatternAddress(tableBits) & Vmsa.Mask(tableBits - 1));
        ulong oa = DataPa + ((ulong)whichTable << 24);
        s2.Map(ipa, oa, 3);
        // The same index in table 0 maps elsewhere, so a walker that ignores the concatenation (QEMU quirk Q1) is caught.
        ulong aliasInTable0 = ipa & Vmsa.Mask(tableBits);
        s2.Map(aliasInTable0, DataPa + 0x7000_0000, 3);
        h.WriteSte(9, Stage2Ste(s2, vmid: 1));

        h.TranslateOk(9, ipa).ShouldBe(oa + (ipa & ((1UL << pageShift) - 1)));
        h.TranslateOk(9, aliasInTable0).ShouldBe(DataPa + 0x7000_0000 + (ipa & ((1UL << pageShift) - 1)));
        h.NoEvents();
    }

    [Theory]
    [InlineData(Stages.Stage1)]
    [InlineData(Stages.Stage2)]
    public void SixtyFourKibLevel1BlockAndTablesAbove48BitsWith52BitPa(Stages stage)
    {
        // FEAT_LPA: with a 52-bit OAS and 64 KiB pages, OA[51:48] sits in descriptor bits [15:12], and level 1 blocks (4 TiB) exist.
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 52 });
        var pa = new TestAllocator(0xF_1234_0000_0000); // tables above 2^48
        var t = new TestPageTable(h.Memory, pa, 16, 48, 1, stage2: stage == Stages.Stage2, lpa: true);
        ulong iova = Vmsa.PatternAddress(48);
        ulong block = t.LeafSize(1);
        block.ShouldBe(1UL << 42);
        ulong oa = 0xA_0000_0000_0000;
        t.Map(iova, oa, 1);
        ulong pageIova = iova ^ (1UL << 47);
        t.Map(pageIova, 0xC_DEF0_1234_0000, 3);
        if (stage == Stages.Stage1)
        {
            h.WriteCd(0x1300_0000, ContextDescriptor.Create(t.Root, 1, t0sz: 16, tg0: 1, ips: Vmsa.Ps(52)));
            h.WriteSte(2, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: 0x1300_0000));
        }
        else
        {
            h.WriteSte(2, Stage2Ste(t, vmid: 1, ps: 52));
        }
        h.TranslateOk(2, iova).ShouldBe(oa + (iova & (block - 1)));
        h.TranslateOk(2, pageIova).ShouldBe(0xC_DEF0_1234_0000 + (pageIova & 0xFFFF));
        h.NoEvents();
    }

    [Fact]
    public void NestedWithDifferentGranulesPerStage()
    {
        // Stage 1 with 4 KiB pages over a stage 2 with 64 KiB pages: a 2 MiB stage-1 block meets 64 KiB stage-2 pages.
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48 });
        var s2 = new TestPageTable(h.Memory, new TestAllocator(0x2000_0000), 16, 40, 2, stage2: true);
        var ipa = new TestAllocator(IpaTables);
        ulong cdIpa = ipa.Allocate(64, 64);
        var s1 = new TestPageTable(h.Memory, ipa, 12, 39, 1, stage2: false, toPa: a => a + IpaDelta);
        ulong iova = 0x12_3456_7000 + 0xABC;
        s1.Map(iova, 0x4000_0000, 2);
        ulong dataIpa = 0x4000_0000 + (iova & 0x1F_FFFF);
        s2.Map(dataIpa, 0x99_0000_0000, 3);
        for (ulong a = IpaTables; a < ipa.Next; a += 0x1_0000) s2.Map(a, a + IpaDelta, 3);
        h.WriteCd(cdIpa + IpaDelta, ContextDescriptor.Create(s1.Root, 1, t0sz: 25, tg0: 0, ips: Vmsa.Ps(48)));
        h.WriteSte(1, Stage2Ste(s2, 4) with { W0 = StreamTableEntry.Create(SteConfig.Nested, s1ContextPtr: cdIpa).W0 });
        h.TranslateOk(1, iova).ShouldBe(0x99_0000_0000 + (dataIpa & 0xFFFF));
        // The IOTLB entry is the smaller of the two (64 KiB): the neighbouring 64 KiB of the stage-1 block is not mapped at stage 2.
        var r = h.Translate(1, iova + 0x1_0000);
        r.Status.ShouldBe(TranslationStatus.Fault);
        r.Event.S2.ShouldBeTrue();
        r.Event.Class.ShouldBe(FaultClass.IN);
    }
}

namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>Stream table formats (linear, 2-level with each SPLIT) and CD tables (linear, 2-level 4K/64K leaves) with substreams.</summary>
public class StreamTableAndSubstreamTests
{
    private const ulong Iova = 0x10_0000 + 0x234;

    /// <summary>A stage-2 STE whose table maps IPA <see cref="Iova"/> to a PA unique to <paramref name="tag"/>.</summary>
    private static (StreamTableEntry Ste, ulong Pa) UniqueStage2(SmmuHarness h, TestAllocator pa, uint tag)
    {
        var t = new TestPageTable(h.Memory, pa, 12, 39, 1, stage2: true);
        ulong oa = 0x70_0000_0000 + ((ulong)tag << 16);
        t.Map(Iova, oa, 3);
        return (TranslationMatrixTests.Stage2Ste(t, vmid: (ushort)(tag * 7 + 1)), oa + (Iova & 0xFFF)); // a VMID of its own: same-VMID streams share TLB entries
    }

    [Theory]
    [InlineData(false, 8, 8)]
    [InlineData(true, 16, 6)]
    [InlineData(true, 16, 8)]
    [InlineData(true, 16, 10)]
    [InlineData(true, 20, 8)]
    public void EachStreamIdFindsItsOwnSte(bool twoLevel, int sidBits, int split)
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SidBits = 20 }, twoLevel, sidBits, split);
        var pa = new TestAllocator(0x2000_0000);
        uint max = (1u << sidBits) - 1;
        uint[] sids = [0, 1, (1u << split) - 1, 1u << split, 0x2A5 & max, max - 1, max];
        var expected = new Dictionary<uint, ulong>();
        foreach (uint sid in sids.Where(s => s <= max).Distinct())
        {
            var (ste, outPa) = UniqueStage2(h, pa, sid);
            h.WriteSte(sid, ste);
            expected[sid] = outPa;
        }
        foreach (var (sid, outPa) in expected) h.TranslateOk(sid, Iova).ShouldBe(outPa, $"SID 0x{sid:X}");
        h.NoEvents();
    }

    [Fact]
    public void StreamIdsBeyondTheTableOrTheirSpanAreBadStreamIds()
    {
        // 2-level, SPLIT 8, LOG2SIZE 12: 16 L1 descriptors.
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48 }, twoLevelStreamTable: true, streamIdBits: 12, split: 8);
        var pa = new TestAllocator(0x2000_0000);
        // L1[0]: full span; L1[1]: Span 3 = 4 STEs; L1[2]: Span 0 (invalid); L1[3]: Span 10 > SPLIT + 1; L1[4]: Span 12 (reserved).
        var (ste, _) = UniqueStage2(h, pa, 1);
        h.WriteSte(0x005, ste);
        h.WriteL1Std(1, 0x1500_0000, 3);
        for (uint i = 0; i < 4; i++) h.Memory.WriteUInt64s(0x1500_0000 + i * 64, [ste.W0, ste.W1, ste.W2, ste.W3, 0, 0, 0, 0]);
        h.WriteL1Std(2, 0x1501_0000, 0);
        h.WriteL1Std(3, 0x1502_0000, 10);
        h.WriteL1Std(4, 0x1504_0000, 12);

        h.TranslateOk(0x005, Iova);
        h.TranslateOk(0x103, Iova); // index 3 < 2^(3-1)
        foreach (uint bad in new uint[] { 0x104, 0x1FF, 0x200, 0x300, 0x400, 0x1000, 0xFFFF_FFFF })
        {
            var r = h.Translate(bad, Iova);
            r.Status.ShouldBe(TranslationStatus.Fault, $"SID 0x{bad:X}");
            h.SingleEvent().ShouldBe(new EventRecord(0x02UL | ((ulong)bad << 32), 0, 0, 0), $"SID 0x{bad:X}");
        }
    }

    [Fact]
    public void LinearStreamTableLog2SizeLimitsStreamIds()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SidBits = 16 }, streamIdBits: 5);
        var (ste, pa) = UniqueStage2(h, new TestAllocator(0x2000_0000), 31);
        h.WriteSte(31, ste);
        h.TranslateOk(31, Iova).ShouldBe(pa);
        h.Translate(32, Iova).Event.Type.ShouldBe(EventType.C_BAD_STREAMID);
        h.SingleEvent().SID.ShouldBe(32u);
    }

    /// <summary>Writes a stage-1 table for one CD mapping <see cref="Iova"/> to a PA unique to the substream.</summary>
    private static (ContextDescriptor Cd, ulong Pa) UniqueCd(SmmuHarness h, TestAllocator tables, uint ssid, Func<ulong, ulong>? toPa = null, ulong outBase = 0x60_0000_0000)
    {
        var t = new TestPageTable(h.Memory, tables, 12, 39, 1, stage2: false, toPa);
        ulong oa = outBase + ((ulong)ssid << 16);
        t.Map(Iova, oa, 3);
        return (ContextDescriptor.Create(t.Root, asid: (ushort)(ssid + 1), t0sz: 25, ips: Vmsa.Ps(48)), oa + (Iova & 0xFFF));
    }

    public static TheoryData<uint, uint, uint[]> CdLayouts() => new()
    {
        // S1Fmt, S1CDMax, SubstreamIDs used
        { 0u, 4u, [1, 2, 7, 15] },              // linear table of 16 CDs
        { 1u, 10u, [1, 0x3F, 0x40, 0x155, 0x3FF] }, // 2-level, 4 KiB leaves of 64 CDs: 16 L1CDs
        { 2u, 16u, [5, 0x3FF, 0x400, 0xBEEF, 0xFFFF] }, // 2-level, 64 KiB leaves of 1024 CDs: 64 L1CDs
        { 1u, 20u, [1, 0xFFFFF, 0x81234] },       // SSIDSIZE 20: 16384 L1CDs
    };

    [Theory]
    [MemberData(nameof(CdLayouts))]
    public void SubstreamsSelectTheirOwnContextDescriptor(uint s1Fmt, uint s1CdMax, uint[] ssids)
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 20 });
        var tables = new TestAllocator(0x2000_0000);
        const ulong ctx = 0x3000_0000;
        int leafCds = s1Fmt == 1 ? 64 : 1024;
        var expected = new Dictionary<uint, ulong>();
        foreach (uint ssid in ssids.Append(0u))
        {
            var (cd, outPa) = UniqueCd(h, tables, ssid);
            ulong cdAddress;
            if (s1Fmt == 0) cdAddress = ctx + ssid * 64UL;
            else
            {
                ulong l1 = ctx + (ulong)(ssid / leafCds) * 8;
                ulong l2 = 0x3800_0000 + (ulong)(ssid / leafCds) * 0x1_0000;
                h.Memory.WriteUInt64(l1, L1ContextDescriptor.Create(l2).Word);
                cdAddress = l2 + (ulong)(ssid % leafCds) * 64;
            }
            h.WriteCd(cdAddress, cd);
            expected[ssid] = outPa;
        }
        h.WriteSte(3, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: ctx, s1Fmt: s1Fmt, s1CdMax: s1CdMax, s1Dss: 2));
        foreach (uint ssid in ssids) h.TranslateOk(3, Iova, ssid: ssid).ShouldBe(expected[ssid], $"SSID 0x{ssid:X}");
        // No SubstreamID with S1DSS = 0b10: CD 0.
        h.TranslateOk(3, Iova).ShouldBe(expected[0]);
        h.NoEvents();
        h.Smmu.CachedCdCount.ShouldBe(ssids.Length + 1);
    }

    [Fact]
    public void NestedTwoLevelCdTableIsReadThroughStage2()
    {
        // STE.S1ContextPtr and L1CD.L2Ptr are IPAs when stage 2 is enabled.
        const ulong delta = 0x40_0000_0000;
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 8 });
        var s2 = new TestPageTable(h.Memory, new TestAllocator(0x2000_0000), 12, 40, 1, stage2: true);
        var ipa = new TestAllocator(0x0100_0000);
        ulong l1Ipa = ipa.Allocate(0x1000, 0x1000);
        ulong l2Ipa = ipa.Allocate(0x1000, 0x1000);
        var expected = new Dictionary<uint, ulong>();
        foreach (uint ssid in new uint[] { 1, 0x25 })
        {
            var (cd, outIpaPlusOffset) = UniqueCd(h, ipa, ssid, a => a + delta, outBase: 0x4000_0000);
            h.WriteCd(l2Ipa + delta + (ssid % 64) * 64, cd);
            expected[ssid] = outIpaPlusOffset;
        }
        h.Memory.WriteUInt64(l1Ipa + delta, L1ContextDescriptor.Create(l2Ipa).Word);
        for (ulong a = 0x0100_0000; a < ipa.Next; a += 0x1000) s2.Map(a, a + delta, 3);
        foreach (var (ssid, dataIpa) in expected) s2.Map(dataIpa, 0x99_0000_0000 + ((ulong)ssid << 12), 3);
        h.WriteSte(7, TranslationMatrixTests.Stage2Ste(s2, vmid: 2) with
        {
            W0 = StreamTableEntry.Create(SteConfig.Nested, s1ContextPtr: l1Ipa, s1Fmt: 1, s1CdMax: 6).W0,
            W1 = StreamTableEntry.Create(SteConfig.Nested, s1Dss: 1).W1,
        });
        foreach (var (ssid, dataIpa) in expected) h.TranslateOk(7, Iova, ssid: ssid).ShouldBe(0x99_0000_0000 + ((ulong)ssid << 12) + (dataIpa & 0xFFF));
        // S1DSS = bypass: no SubstreamID skips stage 1, the input is an IPA.
        s2.Map(0x5555_5000, 0x77_7777_7000, 3);
        h.TranslateOk(7, 0x5555_5123).ShouldBe(0x77_7777_7123UL);
        h.NoEvents();
    }
}

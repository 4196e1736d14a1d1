namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>Configuration cache invalidation (IHI 0070 4.3): CFGI_STE, CFGI_STE_RANGE, CFGI_ALL, CFGI_CD, CFGI_CD_ALL.</summary>
public class ConfigInvalidationTests
{
    private const ulong Ipa = 0x10_0000;

    /// <summary>Stage-2 streams 0..15, each translated once (STE cached), then every STE rewritten to abort in memory.</summary>
    private static SmmuHarness CachedStreamsThenAbortInMemory()
    {
        var h = new SmmuHarness();
        var pa = new TestAllocator(0x2000_0000);
        for (uint sid = 0; sid < 16; sid++)
        {
            var t = Streams.Stage2(h, sid, pa, vmid: (ushort)(sid + 1));
            t.Map(Ipa, 0x8_0000_0000UL + sid * 0x1000UL, 3);
            h.TranslateOk(sid, Ipa);
        }
        h.Smmu.CachedStreamCount.ShouldBe(16);
        for (uint sid = 0; sid < 16; sid++) h.WriteSte(sid, StreamTableEntry.Create(SteConfig.Abort));
        return h;
    }

    private static void ExpectFresh(SmmuHarness h, IEnumerable<uint> fresh)
    {
        var set = fresh.ToHashSet();
        for (uint sid = 0; sid < 16; sid++)
            h.Translate(sid, Ipa).Status.ShouldBe(set.Contains(sid) ? TranslationStatus.Abort : TranslationStatus.Success, $"SID {sid}");
    }

    [Fact]
    public void CfgiSteInvalidatesOneStream()
    {
        var h = CachedStreamsThenAbortInMemory();
        h.SubmitAndSync(Command.CfgiSte(5));
        ExpectFresh(h, [5]);
        h.SubmitAndSync(Command.CfgiSte(6, leaf: false));
        ExpectFresh(h, [5, 6]);
    }

    [Theory]
    [InlineData(0u, 0u, new uint[] { 0, 1 })]
    [InlineData(5u, 0u, new uint[] { 4, 5 })]
    [InlineData(6u, 1u, new uint[] { 4, 5, 6, 7 })]
    [InlineData(13u, 2u, new uint[] { 8, 9, 10, 11, 12, 13, 14, 15 })]
    [InlineData(3u, 3u, new uint[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 })]
    public void CfgiSteRangeInvalidatesAnAlignedPowerOfTwo(uint sid, uint range, uint[] fresh)
    {
        // 2^(Range + 1) StreamIDs from StreamID aligned down to that size.
        var h = CachedStreamsThenAbortInMemory();
        h.SubmitAndSync(Command.CfgiSteRange(sid, range));
        ExpectFresh(h, fresh);
    }

    [Fact]
    public void CfgiAllInvalidatesEveryStream()
    {
        var h = CachedStreamsThenAbortInMemory();
        h.SubmitAndSync(Command.CfgiAll());
        h.Smmu.CachedStreamCount.ShouldBe(0);
        ExpectFresh(h, Enumerable.Range(0, 16).Select(i => (uint)i));
    }

    [Fact]
    public void CdInvalidationBySubstreamAndForAStream()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 4 });
        var pa = new TestAllocator(0x2000_0000);
        const ulong ctx = 0x3000_0000, va = 0x10_0000;
        foreach (uint sid in new uint[] { 1, 2 })
        {
            for (uint ssid = 0; ssid < 4; ssid++)
            {
                var t = new TestPageTable(h.Memory, pa, 12, 39, 1, stage2: false);
                t.Map(va, 0x8_0000_0000 + ((ulong)sid << 24) + ((ulong)ssid << 12), 3);
                h.WriteCd(ctx + sid * 0x1000 + ssid * 64, ContextDescriptor.Create(t.Root, (ushort)(sid * 16 + ssid), t0sz: 25, ips: Vmsa.Ps(48)));
            }
            h.WriteSte(sid, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: ctx + sid * 0x1000, s1CdMax: 2, s1Dss: 2));
            for (uint ssid = 1; ssid < 4; ssid++) h.TranslateOk(sid, va, ssid: ssid);
            h.TranslateOk(sid, va); // CD 0
        }
        h.Smmu.CachedCdCount.ShouldBe(8);
        // Invalidate every CD in memory (V = 0).
        for (uint sid = 1; sid <= 2; sid++)
            for (uint ssid = 0; ssid < 4; ssid++) h.Memory.WriteUInt64(ctx + sid * 0x1000 + ssid * 64, 0);

        h.SubmitAndSync(Command.CfgiCd(1, 2));
        h.Translate(1, va, ssid: 2).Event.Type.ShouldBe(EventType.C_BAD_CD);
        h.TranslateOk(1, va, ssid: 3);
        h.TranslateOk(2, va, ssid: 2);
        h.SubmitAndSync(Command.CfgiCd(1, 0)); // CFGI_CD names substream 0 by SSID 0: the CD of transactions without one
        h.Translate(1, va).Event.Type.ShouldBe(EventType.C_BAD_CD);
        h.SubmitAndSync(Command.CfgiCdAll(1));
        h.Translate(1, va, ssid: 3).Event.Type.ShouldBe(EventType.C_BAD_CD);
        h.TranslateOk(2, va, ssid: 3);
        // CFGI_STE also drops the CDs cached through that STE (IHI 0070 5.2.1).
        h.SubmitAndSync(Command.CfgiSte(2));
        h.Translate(2, va, ssid: 1).Event.Type.ShouldBe(EventType.C_BAD_CD);
    }

    [Fact]
    public void DisablingTheSmmuDropsTheConfigurationCache()
    {
        var h = new SmmuHarness();
        var t = Streams.Stage2(h, 1, new TestAllocator(0x2000_0000));
        t.Map(Ipa, 0x8_0000_0000, 3);
        h.TranslateOk(1, Ipa);
        h.Smmu.CachedStreamCount.ShouldBe(1);
        h.Write(SmmuRegister.CR0, SmmuHarness.CR0_EVENTQEN | SmmuHarness.CR0_CMDQEN);
        h.Smmu.CachedStreamCount.ShouldBe(0);
    }
}

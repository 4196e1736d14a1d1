namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>Stage-1 regime details: the TTB1 half, Top Byte Ignore, and the EL2 StreamWorlds (IHI 0070 3.4.1, 5.4, 3.17.5).</summary>
public class Stage1RegimeTests
{
    private const ulong CdPa = 0x1300_0000;

    [Fact]
    public void UpperHalfTranslatesThroughTtb1()
    {
        var h = new SmmuHarness();
        var pa = new TestAllocator(0x2000_0000);
        var lower = new TestPageTable(h.Memory, pa, 12, 39, 1, stage2: false);
        var upper = new TestPageTable(h.Memory, pa, 16, 42, 2, stage2: false); // TTB1: 64 KiB granule, T1SZ 22
        lower.Map(0x10_0000, 0x8_0000_0000, 3);
        ulong high = 0xFFFF_FC12_3456_0000 + 0x789;
        upper.Map(high, 0x9_0000_0000, 3);
        var cd = ContextDescriptor.Create(lower.Root, 1, t0sz: 25, ips: Vmsa.Ps(48), epd1: false);
        cd = cd with { W0 = Bits.Set(Bits.Set(cd.W0, 21, 16, 22), 23, 22, Vmsa.Tg1(16)), W2 = upper.Root };
        h.WriteCd(CdPa, cd);
        h.WriteSte(1, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: CdPa));
        h.TranslateOk(1, 0x10_0123).ShouldBe(0x8_0000_0123UL);
        h.TranslateOk(1, high).ShouldBe(0x9_0000_0789UL);
        // VA[55] selects TTB1, but bits [63:42] must all be ones: a hole in between faults.
        ulong hole = 0xFFF0_0012_3456_0000;
        h.Translate(1, hole).Event.Type.ShouldBe(EventType.F_TRANSLATION);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_TRANSLATION, 1, hole, AccessKind.Read));
    }

    [Fact]
    public void TopByteIgnore()
    {
        var h = new SmmuHarness();
        var t = new TestPageTable(h.Memory, new TestAllocator(0x2000_0000), 12, 39, 1, stage2: false);
        t.Map(0x10_0000, 0x8_0000_0000, 3);
        var plain = ContextDescriptor.Create(t.Root, 1, t0sz: 25, ips: Vmsa.Ps(48));
        h.WriteCd(CdPa, plain with { W0 = Bits.Set(plain.W0, 38, true) });     // TBI0
        h.WriteCd(CdPa + 64, plain with { W0 = Bits.Set(plain.W0, 63, 48, 2) }); // no TBI, ASID 2
        h.WriteSte(1, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: CdPa));
        h.WriteSte(2, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: CdPa + 64));
        const ulong tagged = 0xAB00_0000_0010_0042;
        h.TranslateOk(1, tagged).ShouldBe(0x8_0000_0042UL);
        h.Translate(2, tagged).Event.Type.ShouldBe(EventType.F_TRANSLATION);
        // InputAddr records all 64 bits as presented, tag included (IHI 0070 7.3).
        h.SingleEvent().InputAddress.ShouldBe(tagged);
    }

    private static SmmuHarness El2Harness(bool e2h) =>
        new(new SmmuFeatures { OasBits = 48, Hyp = true }, cr2: (e2h ? SmmuHarness.CR2_E2H : 0) | SmmuHarness.CR2_RECINVSID);

    [Fact]
    public void El2WithoutE2hHasNoAsids()
    {
        var h = El2Harness(e2h: false);
        var pa = new TestAllocator(0x2000_0000);
        // Two EL2 streams with different CD.ASIDs and different tables for the same VA: without E2H the
        // translations are not ASID-tagged, so they share IOTLB entries (IHI 0070 5.4 CD.ASID is IGNORED).
        var a = Streams.Stage1(h, 1, pa, asid: 5, strw: 2);
        var b = Streams.Stage1(h, 2, pa, asid: 6, strw: 2);
        a.Map(0x10_0000, 0x8_0000_0000, 3);
        b.Map(0x10_0000, 0x9_0000_0000, 3);
        h.TranslateOk(1, 0x10_0000).ShouldBe(0x8_0000_0000UL);
        h.TranslateOk(2, 0x10_0000).ShouldBe(0x8_0000_0000UL, "the EL2 regime's entry is shared");
        h.SubmitAndSync(Command.TlbiEl2Asid(5));
        h.Smmu.Tlb.TryLookup(TlbRegime.El2, 0, 5, 0x10_0000, out _).ShouldBeTrue("TLBI_EL2_ASID does not reach untagged entries");
        h.SubmitAndSync(Command.TlbiEl2All());
        h.TranslateOk(2, 0x10_0000).ShouldBe(0x9_0000_0000UL);
    }

    [Fact]
    public void El2WithoutE2hIgnoresEpd0()
    {
        var h = El2Harness(e2h: false);
        var t = Streams.Stage1(h, 1, new TestAllocator(0x2000_0000), strw: 2, cd: c => c with { W0 = Bits.Set(c.W0, 14, true) });
        t.Map(0x10_0000, 0x8_0000_0000, 3);
        h.TranslateOk(1, 0x10_0000).ShouldBe(0x8_0000_0000UL);
    }

    [Fact]
    public void El2WithE2hIsAsidTagged()
    {
        var h = El2Harness(e2h: true);
        var pa = new TestAllocator(0x2000_0000);
        var a = Streams.Stage1(h, 1, pa, asid: 5, strw: 2);
        var b = Streams.Stage1(h, 2, pa, asid: 6, strw: 2);
        a.Map(0x10_0000, 0x8_0000_0000, 3);
        b.Map(0x10_0000, 0x9_0000_0000, 3);
        h.TranslateOk(1, 0x10_0000).ShouldBe(0x8_0000_0000UL);
        h.TranslateOk(2, 0x10_0000).ShouldBe(0x9_0000_0000UL);
        // EL2 streams ignore S2VMID and are invalidated by TLBI_EL2_*, not TLBI_NH_*.
        h.SubmitAndSync(Command.TlbiNhAll(0), Command.TlbiNsnhAll());
        h.Smmu.Tlb.TryLookup(TlbRegime.El2, 0, 5, 0x10_0000, out _).ShouldBeTrue();
        h.SubmitAndSync(Command.TlbiEl2Va(5, 0x10_0000));
        h.Smmu.Tlb.TryLookup(TlbRegime.El2, 0, 5, 0x10_0000, out _).ShouldBeFalse();
        h.Smmu.Tlb.TryLookup(TlbRegime.El2, 0, 6, 0x10_0000, out _).ShouldBeTrue();
    }

    [Fact]
    public void NestedStage1OutputBeyondIpsIsAStage1AddressSizeFault()
    {
        var h = new SmmuHarness();
        var n = Streams.NestedStream(h, 3, new TestAllocator(0x2000_0000), cd: c => c with { W0 = Bits.Set(c.W0, 34, 32, Vmsa.Ps(32)) });
        n.S1.Map(0x10_0000, 0x1_0000_0000, 3); // IPA beyond a 32-bit IPS
        n.MapTables();
        h.Translate(3, 0x10_0000).Event.Type.ShouldBe(EventType.F_ADDR_SIZE);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_ADDR_SIZE, 3, 0x10_0000, AccessKind.Read));
    }
}

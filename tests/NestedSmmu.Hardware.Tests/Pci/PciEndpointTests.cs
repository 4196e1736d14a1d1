using NestedSmmu.Hardware.Pci;

namespace NestedSmmu.Hardware.Tests.Pci;

/// <summary>Endpoint DMA through an SMMU stream, and the endpoint's ATC under ATC_INV.</summary>
public class PciEndpointTests
{
    private const ulong Iova = 0x10_0000 + 0x40;
    private const ulong Pa = 0x8_1234_5000;

    private static (SmmuHarness H, TestPageTable T) Stage1Stream(uint sid = 0x0100, ushort asid = 1, bool ats = false, int ssidBits = 0)
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Ats = ats, SsidBits = ssidBits }, streamIdBits: 16);
        var t = Streams.Stage1(h, sid, new TestAllocator(0x2000_0000), asid: asid,
            ste: ats ? s => s with { W1 = Bits.Set(s.W1, 29, 28, 1) } : null);
        t.Map(Iova, Pa, 3);
        return (h, t);
    }

    [Fact]
    public void DmaLandsAtTheTranslatedAddress()
    {
        var (h, _) = Stage1Stream();
        var ep = new PciEndpoint("nvme", RequesterId.Create(1, 0, 0), 0x0100, h.Smmu, h.Memory);
        byte[] data = [1, 2, 3, 4, 5, 6, 7, 8];
        ep.Write(Iova, data).IsSuccess.ShouldBeTrue();
        var back = new byte[8];
        h.Memory.Read(Pa + 0x40, back);
        back.ShouldBe(data);
        h.Memory.WriteUInt64(Pa + 0x48, 0x1122_3344_5566_7788);
        var read = new byte[8];
        ep.Read(Iova + 8, read).IsSuccess.ShouldBeTrue();
        BitConverter.ToUInt64(read).ShouldBe(0x1122_3344_5566_7788UL);
        ep.DmaCount.ShouldBe(2);
        ep.RequesterId.ToString().ShouldBe("01:00.0");
    }

    [Fact]
    public void FaultingDmaTouchesNothing()
    {
        var (h, _) = Stage1Stream();
        var ep = new PciEndpoint("nic", RequesterId.Create(1, 0, 1), 0x0100, h.Smmu, h.Memory);
        int pages = h.Memory.AllocatedPages;
        ep.Write(Iova + 0x1000, [9, 9, 9, 9]).IsSuccess.ShouldBeFalse();
        h.Memory.AllocatedPages.ShouldBe(pages + 1, "only the event queue page was written");
        h.Memory.IsAllocated(SmmuHarness.EventqBase).ShouldBeTrue();
        var buffer = new byte[] { 0xEE, 0xEE };
        var r = ep.Read(Iova + 0x1000, buffer);
        r.Translation.Event.Type.ShouldBe(EventType.F_TRANSLATION);
        buffer.ShouldBe([(byte)0xEE, (byte)0xEE]);
        h.TakeEvents().Count.ShouldBe(2);
    }

    [Fact]
    public void AtsEndpointUsesItsAtcAfterTheFirstAccessUntilAtcInv()
    {
        var (h, t) = Stage1Stream(ats: true);
        var ep = new PciEndpoint("gpu", RequesterId.Create(2, 0, 0), 0x0100, h.Smmu, h.Memory, atsCapable: true) { AtsEnabled = true };
        var first = ep.Resolve(Iova, AccessKind.Read);
        first.FromAtc.ShouldBeFalse();
        first.Translation.PhysicalAddress.ShouldBe(Pa + 0x40);
        long translations = h.Smmu.Counters.Translations;
        var second = ep.Resolve(Iova + 8, AccessKind.Write);
        second.FromAtc.ShouldBeTrue();
        second.Translation.PhysicalAddress.ShouldBe(Pa + 0x48);
        h.Smmu.Counters.Translations.ShouldBe(translations, "the SMMU was not asked again");

        // Remap: the SMMU TLB and the ATC both hold the old translation until invalidated, in that order (IHI 0070 3.9.1).
        t.Map(Iova, 0x9_0000_0000, 3);
        ep.Resolve(Iova, AccessKind.Read).Translation.PhysicalAddress.ShouldBe(Pa + 0x40);
        h.SubmitAndSync(Command.TlbiNhVa(0, 1, Iova));
        ep.Resolve(Iova, AccessKind.Read).Translation.PhysicalAddress.ShouldBe(Pa + 0x40, "the ATC still answers");
        h.SubmitAndSync(Command.AtcInv(0x0100, null, Iova, 0));
        var fresh = ep.Resolve(Iova, AccessKind.Read);
        fresh.FromAtc.ShouldBeFalse();
        fresh.Translation.PhysicalAddress.ShouldBe(0x9_0000_0040UL);
    }

    [Fact]
    public void AtsDisabledEndpointAlwaysAsksTheSmmu()
    {
        var (h, _) = Stage1Stream(ats: true);
        var ep = new PciEndpoint("gpu", RequesterId.Create(2, 0, 0), 0x0100, h.Smmu, h.Memory, atsCapable: true);
        ep.Resolve(Iova, AccessKind.Read).FromAtc.ShouldBeFalse();
        ep.Resolve(Iova, AccessKind.Read).FromAtc.ShouldBeFalse();
        ep.Atc.Count.ShouldBe(0);
    }

    private static (SmmuHarness H, PciEndpoint Ep) AtcWithEntries()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Ats = true, SsidBits = 8 }, streamIdBits: 16);
        var ep = new PciEndpoint("accel", RequesterId.Create(3, 0, 0), 0x0300, h.Smmu, h.Memory, atsCapable: true) { AtsEnabled = true };
        foreach (uint? pasid in new uint?[] { null, 1, 2 })
            foreach (ulong a in new ulong[] { 0x20_0000, 0x20_1000, 0x20_F000, 0x21_0000, 0x40_0000 })
                ep.Atc.Insert(pasid, a, 0x7_0000_0000 + a, Permissions.ReadWrite);
        return (h, ep);
    }

    private static List<(uint? Pasid, ulong Address)> Remaining(PciEndpoint ep)
    {
        var list = new List<(uint?, ulong)>();
        foreach (uint? pasid in new uint?[] { null, 1, 2 })
            foreach (ulong a in new ulong[] { 0x20_0000, 0x20_1000, 0x20_F000, 0x21_0000, 0x40_0000 })
                if (ep.Atc.TryLookup(pasid, a, out _, out _)) list.Add((pasid, a));
        return list;
    }

    public static TheoryData<string> AtcInvCases() => new(AtcCases.Keys);

    private static readonly Dictionary<string, (Command Command, Func<uint?, ulong, bool> Removed)> AtcCases = new()
    {
        // ATC_INV: 2^Size 4 KiB pages, naturally aligned (IHI 0070 4.5.1); Size 52 is everything.
        ["PASID 1, one page"] = (Command.AtcInv(0x0300, 1, 0x20_1000, 0), (p, a) => p == 1 && a == 0x20_1000),
        ["PASID 1, 64 KiB aligned down"] = (Command.AtcInv(0x0300, 1, 0x20_5000, 4), (p, a) => p == 1 && a is >= 0x20_0000 and < 0x21_0000),
        ["PASID 2, everything"] = (Command.AtcInv(0x0300, 2, 0, 52), (p, _) => p == 2),
        ["global, 2 MiB"] = (Command.AtcInv(0x0300, 1, 0x20_0000, 9, global: true), (_, a) => a is >= 0x20_0000 and < 0x40_0000),
        // Without SSV the PCIe Invalidate Request has no PASID prefix and hits every PASID's entries in the range.
        ["no PASID, one page"] = (Command.AtcInv(0x0300, null, 0x20_F000, 0), (_, a) => a == 0x20_F000),
        ["another StreamID"] = (Command.AtcInv(0x0301, null, 0, 52), (_, _) => false),
    };

    [Theory]
    [MemberData(nameof(AtcInvCases))]
    public void AtcInvRemovesOnlyItsRangeAndPasid(string name)
    {
        var (h, ep) = AtcWithEntries();
        var (command, removed) = AtcCases[name];
        var before = Remaining(ep);
        h.SubmitAndSync(command);
        Remaining(ep).ShouldBe(before.Where(e => !removed(e.Pasid, e.Address)).ToList(), name);
    }

    [Fact]
    public void AtcInvForAnUnregisteredEndpointIsHarmless()
    {
        var (h, ep) = AtcWithEntries();
        h.Smmu.UnregisterAtc(0x0300, ep.Atc);
        h.SubmitAndSync(Command.AtcInv(0x0300, null, 0, 52));
        ep.Atc.Count.ShouldBe(15);
    }
}

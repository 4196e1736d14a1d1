namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>
/// Translation-related faults (IHI 0070 7.3.13-7.3.16) with their full records: stage 1, stage 2,
/// stage 2 during a nested stage-1 walk (CLASS = TT) and during a CD fetch (CLASS = CD), and the
/// CD.R / STE.S2R record controls.
/// </summary>
public class TranslationFaultTests
{
    private const ulong Iova = 0x12_3456_7890;
    private const ulong Pa = 0x5_0000_0000;
    private static readonly AccessKind[] Both = [AccessKind.Read, AccessKind.Write];

    private static SmmuHarness NewHarness(int httu = 0) => new(new SmmuFeatures { OasBits = 48, Httu = httu });

    [Theory]
    [InlineData(AccessKind.Read)]
    [InlineData(AccessKind.Write)]
    public void Stage1TranslationFaults(AccessKind access)
    {
        var h = NewHarness();
        var t = Streams.Stage1(h, 1, new TestAllocator(0x2000_0000));
        t.Map(Iova, Pa, 3);
        // An unmapped page, an invalid level-1 entry, an input beyond T0SZ, an upper-half (TTB1, EPD1) address.
        foreach (ulong input in new ulong[] { Iova + 0x1000, 0x40_0000_0000 + 0x10, 1UL << 39, 0xFFFF_FF80_0000_1000 })
        {
            var r = h.Translate(1, input, access);
            r.Status.ShouldBe(TranslationStatus.Fault);
            r.Stage.ShouldBe(1);
            h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_TRANSLATION, 1, input, access), $"0x{input:X}");
        }
        h.TranslateOk(1, Iova, access).ShouldBe(Pa + 0x890);
    }

    [Fact]
    public void Stage1TranslationFaultWithSubstream()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 4 });
        Streams.Stage1(h, 1, new TestAllocator(0x2000_0000), ste: s => s with { W0 = Bits.Set(s.W0, 63, 59, 0) });
        h.WriteSte(1, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: Streams.CdPa, s1CdMax: 2, s1Dss: 2));
        h.WriteCd(Streams.CdPa + 3 * 64, ContextDescriptor.Create(0x2100_0000, 3, t0sz: 25, ips: Vmsa.Ps(48)));
        h.Translate(1, Iova, AccessKind.Write, ssid: 3).Event.Type.ShouldBe(EventType.F_TRANSLATION);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_TRANSLATION, 1, Iova, AccessKind.Write, ssid: 3));
    }

    [Theory]
    [InlineData(AccessKind.Read)]
    [InlineData(AccessKind.Write)]
    public void Stage2TranslationFaults(AccessKind access)
    {
        var h = NewHarness();
        var t = Streams.Stage2(h, 2, new TestAllocator(0x2000_0000), vmid: 4);
        t.Map(Iova, Pa, 3);
        // An unmapped IPA, and an IPA beyond the 40-bit S2T0SZ range but within the IAS: stage-2 translation faults.
        foreach (ulong ipa in new ulong[] { Iova + 0x2000, (1UL << 40) + 0x5000 })
        {
            h.Translate(2, ipa, access).Stage.ShouldBe(2);
            h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_TRANSLATION, 2, ipa, access, s2: true, cls: Evt.ClassIn, ipa: ipa));
        }
        // Beyond the IAS (48 bits): a stage-1 address size fault although stage 1 is bypassed (IHI 0070 3.4).
        h.Translate(2, 1UL << 48, access).Event.Type.ShouldBe(EventType.F_ADDR_SIZE);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_ADDR_SIZE, 2, 1UL << 48, access));
    }

    [Theory]
    [InlineData(AccessKind.Read)]
    [InlineData(AccessKind.Write)]
    public void NestedStage2FaultDuringStage1WalkIsClassTt(AccessKind access)
    {
        var h = NewHarness();
        var n = Streams.NestedStream(h, 3, new TestAllocator(0x2000_0000));
        n.MapPage(Iova, 0x4000_0000, Pa);
        // Leave the page holding the stage-1 level-2 table unmapped at stage 2.
        ulong l2Descriptor = n.S1.WalkTo(Iova, 2);
        n.MapTables(except: l2Descriptor & ~0xFFFUL);
        var r = h.Translate(3, Iova, access);
        r.Stage.ShouldBe(2);
        // S2 = 1, CLASS = TT, IPA = the stage-1 descriptor's IPA (7.3.13), TTRnW = 1 (a descriptor read).
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_TRANSLATION, 3, Iova, access, s2: true, cls: Evt.ClassTt, ipa: l2Descriptor, ttRead: true));
    }

    [Fact]
    public void AStage1TableIpaBeyondTheStage2InputRangeIsAStage2TranslationFault()
    {
        // Stage 1's IPS (44 bits here) may exceed the stage-2 input size (40 bits): a table IPA above
        // 2^40 cannot be walked at stage 2 at all (a stage-2 Translation fault, CLASS = TT), even where
        // its low 40 bits name a mapped table; a walk that dropped the high bits would find that one.
        var h = NewHarness();
        var n = Streams.NestedStream(h, 3, new TestAllocator(0x2000_0000));
        n.MapPage(Iova, 0x4000_0000, Pa);
        n.MapTables();
        h.TranslateOk(3, Iova).ShouldBe(Pa | (Iova & 0xFFF));
        const ulong beyond = 1UL << 40;
        ulong l1Descriptor = n.S1.WalkTo(Iova, 1);
        n.S1.WriteDescriptor(l1Descriptor, n.S1.ReadDescriptor(l1Descriptor) + beyond);
        foreach (var explain in new[] { false, true })
        {
            h.Smmu.Tlb.Clear();
            h.Smmu.WalkCache.Clear();
            var r = h.Smmu.Translate(3, null, Iova, AccessKind.Read, explain ? new TranslationTrace() : null);
            r.Stage.ShouldBe(2, explain ? "traced" : "untraced");
            ulong l2Descriptor = n.S1.WalkTo(Iova, 2); // the table IPA above 2^40 (from the changed L1 descriptor)
            h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_TRANSLATION, 3, Iova, AccessKind.Read, s2: true, cls: Evt.ClassTt, ipa: l2Descriptor, ttRead: true));
        }
    }

    [Theory]
    [InlineData(AccessKind.Read)]
    [InlineData(AccessKind.Write)]
    public void NestedStage2FaultDuringCdFetchIsClassCd(AccessKind access)
    {
        var h = NewHarness();
        var n = Streams.NestedStream(h, 3, new TestAllocator(0x2000_0000));
        n.MapPage(Iova, 0x4000_0000, Pa);
        n.MapTables(except: n.CdIpa);
        h.Translate(3, Iova, access).Stage.ShouldBe(2);
        // S2 = 1, CLASS = CD, IPA = the CD's IPA, InputAddr = the transaction's address.
        var e = h.SingleEvent();
        var expected = Evt.Translation(Evt.F_TRANSLATION, 3, Iova, access, s2: true, cls: Evt.ClassCd, ipa: n.CdIpa);
        const ulong ttRnW = 1UL << 44; // UNKNOWN for CLASS = CD (7.3.16): not compared
        (e with { W1 = e.W1 & ~ttRnW }).ShouldBe(expected);
    }

    [Theory]
    [InlineData(AccessKind.Read)]
    [InlineData(AccessKind.Write)]
    public void NestedStage2FaultOnTheOutputIpaIsClassIn(AccessKind access)
    {
        var h = NewHarness();
        var n = Streams.NestedStream(h, 3, new TestAllocator(0x2000_0000));
        n.S1.Map(Iova, 0x4000_0000, 3); // no stage-2 mapping of the output
        n.MapTables();
        h.Translate(3, Iova, access).Stage.ShouldBe(2);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_TRANSLATION, 3, Iova, access, s2: true, cls: Evt.ClassIn, ipa: 0x4000_0000));
    }

    [Fact]
    public void AddressSizeFaults()
    {
        var h = NewHarness();
        var pa = new TestAllocator(0x2000_0000);
        // Stage 1 with a 32-bit IPS: a leaf output, and a next-level table address, beyond it.
        var t = Streams.Stage1(h, 1, pa, cd: c => c with { W0 = Bits.Set(c.W0, 34, 32, Vmsa.Ps(32)) });
        t.Map(Iova, 0x1_0000_0000, 3);
        h.Translate(1, Iova).Event.Type.ShouldBe(EventType.F_ADDR_SIZE);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_ADDR_SIZE, 1, Iova, AccessKind.Read));
        ulong other = 0x30_0000_0000;
        t.WriteDescriptor(t.DescriptorAddress(t.Root, 1, other), 0x2_0000_0000 | 3); // table descriptor pointing above 2^32
        h.Translate(1, other, AccessKind.Write).Event.Type.ShouldBe(EventType.F_ADDR_SIZE);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_ADDR_SIZE, 1, other, AccessKind.Write));
        // Stage 2 with a 36-bit S2PS: the output beyond it.
        var s2 = Streams.Stage2(h, 2, pa, ps: 36);
        s2.Map(Iova, 0x10_0000_0000, 3);
        h.Translate(2, Iova).Event.Type.ShouldBe(EventType.F_ADDR_SIZE);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_ADDR_SIZE, 2, Iova, AccessKind.Read, s2: true, ipa: Iova));
    }

    [Fact]
    public void BypassedStagesCheckTheInputAddressSize()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 40, SsidBits = 4 });
        // STE.Config = bypass: an input beyond the OAS is a stage-1 F_ADDR_SIZE (IHI 0070 3.4).
        h.WriteSte(1, StreamTableEntry.Create(SteConfig.Bypass));
        h.TranslateOk(1, (1UL << 40) - 1).ShouldBe((1UL << 40) - 1);
        h.Translate(1, 1UL << 40, AccessKind.Write).Event.Type.ShouldBe(EventType.F_ADDR_SIZE);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_ADDR_SIZE, 1, 1UL << 40, AccessKind.Write));
        // S1DSS = bypass without stage 2: the same against the IAS.
        h.WriteSte(2, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: Streams.CdPa, s1CdMax: 2, s1Dss: 1));
        h.TranslateOk(2, 0x1234).ShouldBe(0x1234UL);
        h.Translate(2, 0x100_0000_1234).Event.Type.ShouldBe(EventType.F_ADDR_SIZE);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_ADDR_SIZE, 2, 0x100_0000_1234, AccessKind.Read));
    }

    [Fact]
    public void DisabledSmmuBypassesOrAborts()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 44 }, enable: false);
        h.TranslateOk(1, 0xABC_DEF0_1234).ShouldBe(0xABC_DEF0_1234UL);
        // Beyond the OAS: aborted without an event (IHI 0070 3.4).
        h.Translate(1, 1UL << 44).Status.ShouldBe(TranslationStatus.Abort);
        // GBPA.ABORT: everything aborts (UPDATE must be set for the write to take effect).
        h.Write(SmmuRegister.GBPA, SmmuV3.GBPA_ABORT | SmmuV3.GBPA_UPDATE);
        h.Read(SmmuRegister.GBPA).ShouldBe(SmmuV3.GBPA_ABORT); // UPDATE reads 0 once done; the written SHCFG (0) replaced the reset 0b01
        h.Translate(1, 0x1000).Status.ShouldBe(TranslationStatus.Abort);
        h.Write(SmmuRegister.CR0, SmmuHarness.CR0_EVENTQEN);
        h.NoEvents();
    }

    [Theory]
    [InlineData(AccessKind.Read)]
    [InlineData(AccessKind.Write)]
    public void AccessFlagFaults(AccessKind access)
    {
        var h = NewHarness();
        var pa = new TestAllocator(0x2000_0000);
        var t = Streams.Stage1(h, 1, pa);
        t.Map(Iova, Pa, 3, t.DefaultAttributes & ~TestPageTable.AF);
        h.Translate(1, Iova, access).Event.Type.ShouldBe(EventType.F_ACCESS);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_ACCESS, 1, Iova, access));
        var s2 = Streams.Stage2(h, 2, pa);
        s2.Map(Iova, Pa, 3, s2.DefaultAttributes & ~TestPageTable.AF);
        h.Translate(2, Iova, access).Event.Type.ShouldBe(EventType.F_ACCESS);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_ACCESS, 2, Iova, access, s2: true, ipa: Iova));
        // AFFD / S2AFFD: the flag counts as set.
        var t3 = Streams.Stage1(h, 3, pa, asid: 3, cd: c => c with { W0 = Bits.Set(c.W0, 35, true) });
        t3.Map(Iova, Pa, 3, t3.DefaultAttributes & ~TestPageTable.AF);
        h.TranslateOk(3, Iova, access).ShouldBe(Pa + 0x890);
    }

    [Fact]
    public void HardwareAccessFlagUpdateSetsAfInMemory()
    {
        var h = NewHarness(httu: 1);
        var pa = new TestAllocator(0x2000_0000);
        var t = Streams.Stage1(h, 1, pa, cd: c => c with { W0 = Bits.Set(c.W0, 43, true) });
        ulong leaf = t.Map(Iova, Pa, 3, t.DefaultAttributes & ~TestPageTable.AF);
        h.TranslateOk(1, Iova).ShouldBe(Pa + 0x890);
        (t.ReadDescriptor(leaf) & TestPageTable.AF).ShouldBe(TestPageTable.AF);
        // Stage 2 with S2HA.
        var s2 = new TestPageTable(h.Memory, pa, 12, 40, 1, stage2: true);
        ulong s2Leaf = s2.Map(Iova, Pa, 3, s2.DefaultAttributes & ~TestPageTable.AF);
        h.WriteSte(2, Streams.Stage2Ste(s2, 2) with { W2 = Bits.Set(Streams.Stage2Ste(s2, 2).W2, 56, true) });
        h.TranslateOk(2, Iova, AccessKind.Write).ShouldBe(Pa + 0x890);
        (s2.ReadDescriptor(s2Leaf) & TestPageTable.AF).ShouldBe(TestPageTable.AF);
        h.NoEvents();
    }

    [Theory]
    [InlineData(AccessKind.Read)]
    [InlineData(AccessKind.Write)]
    public void AccessFlagUpdateThroughAReadOnlyStage2MappingIsAStage2PermissionFaultOnAWrite(AccessKind access)
    {
        var h = NewHarness(httu: 1);
        var n = Streams.NestedStream(h, 3, new TestAllocator(0x2000_0000), cd: c => c with { W0 = Bits.Set(c.W0, 43, true) });
        ulong leaf = n.S1.Map(Iova, 0x4000_0000, 3, n.S1.DefaultAttributes & ~TestPageTable.AF);
        n.S2.Map(0x4000_0000, Pa, 3);
        // Map the page holding the stage-1 leaf read-only at stage 2, the rest read-write.
        ulong leafPage = leaf & ~0xFFFUL;
        n.MapTables(except: leafPage);
        n.S2.Map(leafPage, leafPage + Streams.IpaDelta, 3, n.S2.DefaultAttributes & ~TestPageTable.S2ApWrite);
        h.Translate(3, Iova, access).Stage.ShouldBe(2);
        // TTRnW = 0: the descriptor write faulted (7.3.16); RnW is the transaction's.
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_PERMISSION, 3, Iova, access, s2: true, cls: Evt.ClassTt, ipa: leaf, ttRead: false));
        (n.S1.ReadDescriptor(leaf) & TestPageTable.AF).ShouldBe(0UL);
    }

    [Fact]
    public void PermissionFaults()
    {
        var h = NewHarness();
        var pa = new TestAllocator(0x2000_0000);
        var t = Streams.Stage1(h, 1, pa);
        // Stage 1 read-only (AP[2] = 1): reads pass, writes fault.
        t.Map(Iova, Pa, 3, t.DefaultAttributes | TestPageTable.S1ApReadOnly);
        h.TranslateOk(1, Iova).ShouldBe(Pa + 0x890);
        h.Translate(1, Iova, AccessKind.Write).Event.Type.ShouldBe(EventType.F_PERMISSION);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_PERMISSION, 1, Iova, AccessKind.Write));
        // Privileged-only page (AP[1] = 0): an unprivileged device access faults either way.
        ulong priv = Iova + 0x1000;
        t.Map(priv, Pa, 3, t.DefaultAttributes & ~TestPageTable.S1ApEl0);
        h.Translate(1, priv).Event.Type.ShouldBe(EventType.F_PERMISSION);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_PERMISSION, 1, priv, AccessKind.Read));
        // APTable[1] in a table descriptor removes write permission below it.
        ulong other = 0x45_0000_0000;
        t.Map(other, Pa, 3);
        ulong l1 = t.WalkTo(other, 1);
        t.WriteDescriptor(l1, t.ReadDescriptor(l1) | (1UL << 62));
        h.TranslateOk(1, other).ShouldBe(Pa);
        h.Translate(1, other, AccessKind.Write).Event.Type.ShouldBe(EventType.F_PERMISSION);
        h.SingleEvent();
        // Stage 2 write-only (S2AP = 0b10): writes pass, reads fault at stage 2, even after a write filled the IOTLB.
        var s2 = Streams.Stage2(h, 2, pa);
        s2.Map(Iova, Pa, 3, s2.DefaultAttributes & ~TestPageTable.S2ApRead);
        h.TranslateOk(2, Iova, AccessKind.Write).ShouldBe(Pa + 0x890);
        h.Translate(2, Iova).Event.Type.ShouldBe(EventType.F_PERMISSION);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_PERMISSION, 2, Iova, AccessKind.Read, s2: true, ipa: Iova));
        // Stage 2 read-only under a nested stream: the stage-1 write passes, stage 2 refuses it.
        var n = Streams.NestedStream(h, 3, pa, vmid: 7);
        n.MapPage(Iova, 0x4000_0000, Pa, s2Attributes: n.S2.DefaultAttributes & ~TestPageTable.S2ApWrite);
        n.MapTables();
        h.TranslateOk(3, Iova).ShouldBe(Pa + 0x890);
        h.Translate(3, Iova, AccessKind.Write).Event.Type.ShouldBe(EventType.F_PERMISSION);
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_PERMISSION, 3, Iova, AccessKind.Write, s2: true, cls: Evt.ClassIn, ipa: 0x4000_0000));
    }

    [Fact]
    public void UnrecordedFaultsAbortWithoutAnEvent()
    {
        var h = NewHarness();
        var pa = new TestAllocator(0x2000_0000);
        // CD.R = 0: stage-1 faults are not recorded.
        Streams.Stage1(h, 1, pa, cd: c => c with { W0 = Bits.Set(c.W0, 45, false) });
        foreach (var access in Both) h.Translate(1, Iova, access).Status.ShouldBe(TranslationStatus.Abort);
        // STE.S2R = 0: stage-2 faults are not recorded.
        Streams.Stage2(h, 2, pa, s2R: false);
        h.Translate(2, Iova).Status.ShouldBe(TranslationStatus.Abort);
        h.NoEvents();
        // Nested: CD.R = 0 does not silence a stage-2 fault (S2R = 1), and S2R = 0 does not silence a stage-1 fault.
        var n = Streams.NestedStream(h, 3, pa, vmid: 3, cd: c => c with { W0 = Bits.Set(c.W0, 45, false) });
        n.S1.Map(Iova, 0x4000_0000, 3);
        n.MapTables();
        h.Translate(3, Iova).Event.S2.ShouldBeTrue();
        h.SingleEvent().Type.ShouldBe(EventType.F_TRANSLATION);
        h.Translate(3, Iova + 0x1000).Status.ShouldBe(TranslationStatus.Abort); // stage 1 fault, CD.R = 0
        var m = Streams.NestedStream(h, 4, new TestAllocator(0x3000_0000), vmid: 4, s2R: false, delta: 0x60_0000_0000);
        m.MapTables();
        h.Translate(4, Iova).Event.Type.ShouldBe(EventType.F_TRANSLATION); // nothing mapped at stage 1: recorded (CD.R = 1)
        h.SingleEvent().S2.ShouldBeFalse();
        m.S1.Map(Iova, 0x4000_0000, 3);
        h.Translate(4, Iova).Status.ShouldBe(TranslationStatus.Abort); // the output IPA is unmapped at stage 2: S2R = 0
        h.NoEvents();
    }
    private static EventRecord WalkAbort(uint sid, ulong input, AccessKind access, bool s2, uint cls, ulong fetch) =>
        new(Evt.W0(Evt.F_WALK_EABT, sid), (access == AccessKind.Read ? 1UL << 35 : 0) | (s2 ? 1UL << 39 : 0) | ((ulong)cls << 40),
            input, fetch & 0x000F_FFFF_FFFF_FFF8);

    [Fact]
    public void ExternalAbortOnAStage1DescriptorIsWalkEabt()
    {
        var h = NewHarness();
        // CD.R = 0: F_WALK_EABT is not a translation-related fault, so it is recorded anyway (IHI 0070 5.5).
        var t = Streams.Stage1(h, 1, new TestAllocator(0x2000_0000), cd: c => c with { W0 = Bits.Set(c.W0, 45, false) });
        t.Map(Iova, Pa, 3);
        ulong l3 = t.WalkTo(Iova, 3);
        h.Memory.AddAbortRange(l3 & ~0xFFFUL, 0x1000);
        h.Translate(1, Iova, AccessKind.Write).Event.Type.ShouldBe(EventType.F_WALK_EABT);
        // 7.3.12: a stage-1-only walk's abort is S2 = 0, CLASS = TT, with the descriptor's PA.
        h.SingleEvent().ShouldBe(WalkAbort(1, Iova, AccessKind.Write, s2: false, Evt.ClassTt, l3));
    }

    [Fact]
    public void ExternalAbortOnAStage2DescriptorIsWalkEabtClassIn()
    {
        var h = NewHarness();
        var t = Streams.Stage2(h, 2, new TestAllocator(0x2000_0000), s2R: false);
        t.Map(Iova, Pa, 3);
        ulong l2 = t.WalkTo(Iova, 2);
        h.Memory.AddAbortRange(l2, 8);
        h.Translate(2, Iova).Event.Type.ShouldBe(EventType.F_WALK_EABT);
        h.SingleEvent().ShouldBe(WalkAbort(2, Iova, AccessKind.Read, s2: true, Evt.ClassIn, l2));
    }

    [Fact]
    public void ExternalAbortsDuringANestedWalk()
    {
        var h = NewHarness();
        var pa = new TestAllocator(0x2000_0000);
        // Stage-2 start table aborts: the first stage-2 walk is the CD fetch's: S2 = 1, CLASS = CD.
        var n = Streams.NestedStream(h, 3, pa);
        n.MapPage(Iova, 0x4000_0000, Pa);
        n.MapTables();
        ulong s2Root = n.S2.DescriptorAddress(n.S2.Root, 1, n.CdIpa);
        h.Memory.AddAbortRange(s2Root, 8);
        h.Translate(3, Iova).Event.Type.ShouldBe(EventType.F_WALK_EABT);
        h.SingleEvent().ShouldBe(WalkAbort(3, Iova, AccessKind.Read, s2: true, Evt.ClassCd, s2Root));

        // A stage-1 table whose IPA translates, but whose PA aborts: S2 = 0, CLASS = TT (7.3.12).
        var m = Streams.NestedStream(h, 4, pa, vmid: 4, delta: 0x60_0000_0000);
        m.MapPage(Iova, 0x4000_0000, Pa);
        m.MapTables();
        ulong s1Leaf = m.S1.WalkTo(Iova, 3);
        h.Memory.AddAbortRange(s1Leaf + m.Delta, 8);
        h.Translate(4, Iova, AccessKind.Write).Event.Type.ShouldBe(EventType.F_WALK_EABT);
        h.SingleEvent().ShouldBe(WalkAbort(4, Iova, AccessKind.Write, s2: false, Evt.ClassTt, s1Leaf + m.Delta));

        // The stage-2 walk of a stage-1 table's IPA aborts: S2 = 1, CLASS = TT.
        var k = Streams.NestedStream(h, 5, pa, vmid: 5, delta: 0x70_0000_0000);
        k.MapPage(Iova, 0x4000_0000, Pa);
        k.MapTables();
        h.TranslateOk(5, Iova); // caches the CD
        h.SubmitAndSync(Command.TlbiS12Vmall(5));
        ulong s2Leaf = k.S2.WalkTo(k.S1.Root, 3);
        h.Memory.AddAbortRange(s2Leaf, 8);
        h.Translate(5, Iova).Event.Type.ShouldBe(EventType.F_WALK_EABT);
        h.SingleEvent().ShouldBe(WalkAbort(5, Iova, AccessKind.Read, s2: true, Evt.ClassTt, s2Leaf));
    }
}

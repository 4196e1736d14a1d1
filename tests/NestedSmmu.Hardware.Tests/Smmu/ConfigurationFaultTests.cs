namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>
/// Configuration errors and fetch aborts (IHI 0070 7.3.3-7.3.11): C_BAD_STREAMID, F_STE_FETCH,
/// C_BAD_STE, F_STREAM_DISABLED, C_BAD_SUBSTREAMID, F_CD_FETCH, C_BAD_CD, each with its full record
/// read back from the event queue in memory.
/// </summary>
public class ConfigurationFaultTests
{
    private const ulong Iova = 0x4000_1234;

    [Theory]
    [InlineData(null)]
    [InlineData(0x1234u)]
    public void BadStreamIdRecordsTheStreamAndSubstream(uint? ssid)
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 16 }, streamIdBits: 6);
        var r = h.Translate(64, Iova, AccessKind.Write, ssid);
        r.Status.ShouldBe(TranslationStatus.Fault);
        r.Recorded.ShouldBeTrue();
        // 7.3.3: StreamID [63:32], SubstreamID [31:12], SSV [11].
        h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_STREAMID, 64, ssid));
    }

    [Fact]
    public void BadStreamIdIsRecordedOnlyWithRecinvsid()
    {
        // 7.3.3: "Recorded when SMMU_(*_)CR2.RECINVSID == 1"; the transaction aborts either way (5.1.1).
        var h = new SmmuHarness(streamIdBits: 6, cr2: SmmuHarness.CR2_PTM);
        h.Translate(64, Iova).Status.ShouldBe(TranslationStatus.Abort);
        h.NoEvents();
        // CR2 is writable only while SMMUEN = 0.
        h.Write(SmmuRegister.CR2, SmmuHarness.CR2_RECINVSID);
        h.Read(SmmuRegister.CR2).ShouldBe(SmmuHarness.CR2_PTM);
        h.Write(SmmuRegister.CR0, 0);
        h.Write(SmmuRegister.CR2, SmmuHarness.CR2_RECINVSID);
        h.Write(SmmuRegister.CR0, SmmuHarness.CR0_SMMUEN | SmmuHarness.CR0_EVENTQEN);
        h.Translate(64, Iova).Event.Type.ShouldBe(EventType.C_BAD_STREAMID);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_STREAMID, 64));
    }

    [Fact]
    public void SteFetchAbortReportsTheSteAddress()
    {
        var h = new SmmuHarness();
        h.Memory.AddAbortRange(SmmuHarness.StrtabBase + 3 * 64, 64);
        h.Translate(3, Iova).Event.Type.ShouldBe(EventType.F_STE_FETCH);
        h.SingleEvent().ShouldBe(Evt.Fetch(Evt.F_STE_FETCH, 3, SmmuHarness.StrtabBase + 3 * 64));
        h.Translate(2, Iova).Event.Type.ShouldBe(EventType.C_BAD_STE); // the neighbour is readable (and zero: V = 0)
    }

    [Fact]
    public void SteFetchAbortWithASubstream()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 8 });
        h.Memory.AddAbortRange(SmmuHarness.StrtabBase, 0x1000);
        h.Translate(5, Iova, ssid: 9).Event.Type.ShouldBe(EventType.F_STE_FETCH);
        h.SingleEvent().ShouldBe(Evt.Fetch(Evt.F_STE_FETCH, 5, SmmuHarness.StrtabBase + 5 * 64, ssid: 9));
    }

    [Fact]
    public void TwoLevelStreamTableFetchAbortsAtEitherLevel()
    {
        var h = new SmmuHarness(twoLevelStreamTable: true, streamIdBits: 16, split: 8);
        // Level 1 descriptor of SID 0x0305 unreadable.
        h.Memory.AddAbortRange(SmmuHarness.StrtabBase + 3 * 8, 8);
        h.Translate(0x0305, Iova).Event.Type.ShouldBe(EventType.F_STE_FETCH);
        h.SingleEvent().ShouldBe(Evt.Fetch(Evt.F_STE_FETCH, 0x0305, SmmuHarness.StrtabBase + 3 * 8));
        // Level 2 table of SID 0x0405 unreadable.
        h.WriteL1Std(4, 0x1600_0000, 9);
        h.Memory.AddAbortRange(0x1600_0000, 0x4000);
        h.Translate(0x0405, Iova).Event.Type.ShouldBe(EventType.F_STE_FETCH);
        h.SingleEvent().ShouldBe(Evt.Fetch(Evt.F_STE_FETCH, 0x0405, 0x1600_0000 + 5 * 64));
    }

    [Fact]
    public void StreamTableBeyondTheOasIsAFetchFault()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 40 }, enable: false);
        h.Write64(SmmuRegister.STRTAB_BASE, 0x100_0000_0000); // bit 40: beyond a 40-bit OAS
        h.Write(SmmuRegister.CR0, SmmuHarness.CR0_SMMUEN | SmmuHarness.CR0_EVENTQEN | SmmuHarness.CR0_CMDQEN);
        h.Translate(1, Iova).Event.Type.ShouldBe(EventType.F_STE_FETCH);
        h.SingleEvent().ShouldBe(Evt.Fetch(Evt.F_STE_FETCH, 1, 0x100_0000_0040));
    }

    private static readonly Dictionary<string, (SmmuFeatures Features, StreamTableEntry Ste)> IllegalSteTable = BuildIllegalStes();
    public static TheoryData<string> IllegalStes() => new(IllegalSteTable.Keys);

    private static Dictionary<string, (SmmuFeatures, StreamTableEntry)> BuildIllegalStes()
    {
        var full = new SmmuFeatures { OasBits = 48, SsidBits = 8, Ats = true, Hyp = true };
        var s2 = StreamTableEntry.Create(SteConfig.Stage2, s2Vmid: 1, s2T0sz: 25, s2Sl0: 1, s2Tg: 0, s2Ps: 5, s2Ttb: 0x2000_0000);
        StreamTableEntry S2(Func<ulong, ulong> w2 = null!, Func<ulong, ulong>? w1 = null, Func<ulong, ulong>? w3 = null) =>
            s2 with { W1 = w1?.Invoke(s2.W1) ?? s2.W1, W2 = w2?.Invoke(s2.W2) ?? s2.W2, W3 = w3?.Invoke(s2.W3) ?? s2.W3 };
        var s1 = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: Streams.CdPa);
        return new Dictionary<string, (SmmuFeatures, StreamTableEntry)>
        {
            // 5.2 STE.V
            ["V = 0"] = (full, StreamTableEntry.Create(SteConfig.Bypass, valid: false)),
            ["V = 0 with an otherwise good stage 2"] = (full, s2 with { W0 = s2.W0 & ~1UL }),
            // 5.2 STE.Config: a stage the SMMU does not implement
            ["stage 2 on a stage-1-only SMMU"] = (full with { Stage2 = false }, s2),
            ["stage 1 on a stage-2-only SMMU"] = (full with { Stage1 = false }, s1),
            // 5.2 STE.S1CDMax: 0..SSIDSIZE
            ["S1CDMax above SSIDSIZE"] = (full, s1 with { W0 = Bits.Set(s1.W0, 63, 59, 9) }),
            // 5.2 STE.S1Fmt: 2-level CD tables need IDR0.CD2L
            ["2-level CD table without CD2L"] = (full with { TwoLevelCd = false }, s1 with { W0 = Bits.Set(Bits.Set(s1.W0, 63, 59, 4), 5, 4, 1) }),
            // 5.2 STE.S1ContextPtr: a PA within the OAS for stage 1 only
            ["S1ContextPtr beyond the OAS"] = (full, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: 1UL << 48)),
            // 5.2 STE.S2TG
            ["S2TG reserved"] = (full, S2(w2 => Bits.Set(w2, 47, 46, 3))),
            ["S2TG unimplemented granule"] = (full with { Gran4K = false }, s2),
            // 5.2 STE.S2T0SZ: MAX(16, 64 - IAS) .. 39
            ["S2T0SZ above 39"] = (full, S2(w2 => Bits.Set(w2, 37, 32, 40))),
            ["S2T0SZ below 64 - IAS"] = (full with { OasBits = 40 }, S2(w2 => Bits.Set(Bits.Set(w2, 37, 32, 23), 39, 38, 1))),
            ["S2T0SZ below 16 (4 KiB)"] = (full with { OasBits = 52 }, S2(w2 => Bits.Set(Bits.Set(w2, 37, 32, 15), 39, 38, 2))),
            // 5.2 STE.S2SL0: consistent with S2T0SZ and S2TG
            ["S2SL0 level 2 for a 39-bit IPA"] = (full, S2(w2 => Bits.Set(w2, 39, 38, 0))),
            ["S2SL0 reserved for 4 KiB"] = (full, S2(w2 => Bits.Set(w2, 39, 38, 3))),
            ["S2SL0 level 0 for a 25-bit IPA"] = (full, S2(w2 => Bits.Set(Bits.Set(w2, 37, 32, 39), 39, 38, 2))),
            // 5.2 STE.S2AA64 / S2ENDI against IDR0.TTF / TTENDIAN
            ["S2AA64 = 0 without AArch32 tables"] = (full, S2(w2 => Bits.Set(w2, 51, false))),
            ["S2ENDI = 1 on a little-endian SMMU"] = (full, S2(w2 => Bits.Set(w2, 52, true))),
            // 5.2 STE.EATS
            ["EATS split-stage without nesting"] = (full, s1 with { W1 = Bits.Set(s1.W1, 29, 28, 2) }),
            ["EATS full ATS with stall-enabled stage 2"] = (full with { StallModel = 0 }, S2(w2 => Bits.Set(w2, 57, true), w1 => Bits.Set(w1, 29, 28, 1))),
            // 5.2 STE.STRW (used by a stage-1-only stream when IDR0.Hyp = 1)
            ["STRW reserved 0b01"] = (full, s1 with { W1 = Bits.Set(s1.W1, 31, 30, 1) }),
            ["STRW reserved 0b11"] = (full, s1 with { W1 = Bits.Set(s1.W1, 31, 30, 3) }),
            // 5.2 STE.S2TTB: within the effective S2PS and 48 bits for 4 KiB
            ["S2TTB beyond S2PS"] = (full, S2(w2 => Bits.Set(w2, 50, 48, 0), w3: _ => 0x1_0000_0000)),
            ["S2TTB beyond 48 bits with 4 KiB"] = (full with { OasBits = 52 }, S2(w2 => Bits.Set(w2, 50, 48, 6), w3: _ => 1UL << 48)),
            // 5.2 STE.S2HA / S2HD against IDR0.HTTU
            ["S2HA without HTTU"] = (full, S2(w2 => Bits.Set(w2, 56, true))),
            ["S2HD with access-flag-only HTTU"] = (full with { Httu = 1 }, S2(w2 => Bits.Set(Bits.Set(w2, 56, true), 55, true))),
            // 5.5: stall configuration against IDR0.STALL_MODEL
            ["S1STALLD with terminate-only STALL_MODEL"] = (full with { StallModel = 1 }, s1 with { W1 = Bits.Set(s1.W1, 27, true) }),
            ["S2S with terminate-only STALL_MODEL"] = (full with { StallModel = 1 }, S2(w2 => Bits.Set(w2, 57, true))),
            ["S2S = 0 with stall-only STALL_MODEL"] = (full with { StallModel = 2 }, s2),
            // 5.2 STE.S2VMID: 8-bit VMIDs
            ["S2VMID[15:8] with 8-bit VMIDs"] = (full with { Vmid16 = false }, S2(w2 => Bits.Set(w2, 15, 0, 0x100))),
        };
    }

    [Theory]
    [MemberData(nameof(IllegalStes))]
    public void IllegalSteIsABadSte(string reason)
    {
        var (features, ste) = IllegalSteTable[reason];
        var h = new SmmuHarness(features);
        h.WriteSte(6, ste);
        var r = h.Translate(6, Iova);
        r.Status.ShouldBe(TranslationStatus.Fault, reason);
        r.Event.Type.ShouldBe(EventType.C_BAD_STE, reason);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_STE, 6), reason);
        h.Smmu.CachedStreamCount.ShouldBe(0, "an ILLEGAL STE is not cached");
    }

    [Fact]
    public void BadSteRecordsTheSubstream()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 8 });
        h.Translate(6, Iova, ssid: 0x7F).Event.Type.ShouldBe(EventType.C_BAD_STE);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_STE, 6, 0x7F)); // 7.3.5: SubstreamID and SSV are recorded
    }

    private static readonly Dictionary<string, (SmmuFeatures Features, StreamTableEntry Ste)> LegalOddSteTable = BuildLegalOddStes();
    public static TheoryData<string> LegalOddStes() => new(LegalOddSteTable.Keys);

    private static Dictionary<string, (SmmuFeatures, StreamTableEntry)> BuildLegalOddStes()
    {
        var f = new SmmuFeatures { OasBits = 48, SsidBits = 8, Ats = true };
        var s2 = StreamTableEntry.Create(SteConfig.Stage2, s2Vmid: 1, s2T0sz: 25, s2Sl0: 1, s2Tg: 0, s2Ps: 5, s2Ttb: 0x2000_0000);
        var s1 = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: Streams.CdPa);
        return new Dictionary<string, (SmmuFeatures, StreamTableEntry)>
        {
            // 5.2.2 IgnoreSTESTRW: STRW is unused with stage 2 enabled, or without IDR0.Hyp.
            ["STRW EL2 on a nested stream"] = (f with { Hyp = true }, s2 with { W0 = StreamTableEntry.Create(SteConfig.Nested, s1ContextPtr: Streams.CdPa).W0, W1 = Bits.Set(s2.W1, 31, 30, 2) }),
            ["STRW reserved on a stage-2 stream"] = (f with { Hyp = true }, s2 with { W1 = Bits.Set(s2.W1, 31, 30, 1) }),
            ["STRW EL2 without IDR0.Hyp"] = (f, s1 with { W1 = Bits.Set(s1.W1, 31, 30, 2) }),
            // 5.2 STE.S1DSS 0b11 and STE.S1Fmt 0b11: "Reserved (behaves as 0b00)", not ILLEGAL.
            ["S1DSS reserved"] = (f, s1 with { W0 = Bits.Set(s1.W0, 63, 59, 2), W1 = Bits.Set(s1.W1, 1, 0, 3) }),
            ["S1Fmt reserved"] = (f, s1 with { W0 = Bits.Set(Bits.Set(s1.W0, 63, 59, 2), 5, 4, 3) }),
            // 5.2 STE.EATS 0b11 without DPT: Reserved, behaves as 0b00.
            ["EATS 0b11 without DPT"] = (f, s1 with { W1 = Bits.Set(s1.W1, 29, 28, 3) }),
            // 5.2 STE.S1CDMax is IGNORED when SSIDSIZE == 0.
            ["S1CDMax with SSIDSIZE 0"] = (f with { SsidBits = 0 }, s1 with { W0 = Bits.Set(Bits.Set(s1.W0, 63, 59, 5), 5, 4, 3) }),
            // Fields of a disabled stage are IGNORED.
            ["garbage stage-2 fields on a stage-1 stream"] = (f, s1 with { W2 = ulong.MaxValue, W3 = ulong.MaxValue }),
            ["garbage stage-1 fields on a stage-2 stream"] = (f, s2 with { W0 = s2.W0 | 0xFFFF_FFFF_FFFF_FFF0 }),
            // EATS is IGNORED for bypass.
            ["EATS split-stage on a bypass stream"] = (f, StreamTableEntry.Create(SteConfig.Bypass, eats: 2)),
        };
    }

    [Theory]
    [MemberData(nameof(LegalOddStes))]
    public void UnusedOrIgnoredFieldsDoNotMakeAnSteIllegal(string reason)
    {
        var (features, ste) = LegalOddSteTable[reason];
        var h = new SmmuHarness(features);
        h.WriteSte(6, ste);
        h.Translate(6, Iova);
        h.TakeEvents().Where(e => e.Type == EventType.C_BAD_STE).ShouldBeEmpty(reason);
        h.Smmu.CachedStreamCount.ShouldBe(1, reason);
    }

    [Theory]
    [InlineData(1u)]
    [InlineData(2u)]
    [InlineData(3u)]
    public void ReservedConfigBehavesAsAbortWithoutAnEvent(uint config)
    {
        // 5.2 STE.Config: "0b0xx ... Reserved (behaves as 0b000)": abort, no event; 5.2.2 SteIllegal returns FALSE for Config 0xx.
        var h = new SmmuHarness();
        h.WriteSte(6, new StreamTableEntry(1UL | (config << 1), 0, 0, 0));
        h.Translate(6, Iova).Status.ShouldBe(TranslationStatus.Abort);
        h.NoEvents();
    }

    [Fact]
    public void AbortConfigTerminatesSilently()
    {
        var h = new SmmuHarness();
        h.WriteSte(6, StreamTableEntry.Create(SteConfig.Abort));
        h.Translate(6, Iova, AccessKind.Write).Status.ShouldBe(TranslationStatus.Abort);
        h.NoEvents();
    }

    [Fact]
    public void StreamDisabledForTransactionsWithoutSubstream()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 8 });
        Streams.Stage1(h, 2, new TestAllocator(0x2000_0000), ste: s => s with { W0 = Bits.Set(s.W0, 63, 59, 4), W1 = Bits.Set(s.W1, 1, 0, 0) });
        h.Translate(2, Iova).Event.Type.ShouldBe(EventType.F_STREAM_DISABLED);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.F_STREAM_DISABLED, 2));
        // S1DSS 0b11 is reserved and behaves as 0b00.
        Streams.Stage1(h, 3, new TestAllocator(0x3000_0000), ste: s => s with { W0 = Bits.Set(s.W0, 63, 59, 4), W1 = Bits.Set(s.W1, 1, 0, 3) });
        h.Translate(3, Iova).Event.Type.ShouldBe(EventType.F_STREAM_DISABLED);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.F_STREAM_DISABLED, 3));
    }

    [Fact]
    public void SubstreamZeroIsReservedWhenS1DssUsesIt()
    {
        // 7.3.7: "a transaction was presented with SubstreamID 0 when ... STE.S1DSS == 0b10" is F_STREAM_DISABLED.
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 8 });
        var t = Streams.Stage1(h, 2, new TestAllocator(0x2000_0000), ste: s => s with { W0 = Bits.Set(s.W0, 63, 59, 1), W1 = Bits.Set(s.W1, 1, 0, 2) });
        t.Map(Iova, 0x5000_0000, 3);
        h.TranslateOk(2, Iova).ShouldBe(0x5000_0234UL); // no SubstreamID: CD 0
        h.Translate(2, Iova, ssid: 0).Event.Type.ShouldBe(EventType.F_STREAM_DISABLED);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.F_STREAM_DISABLED, 2));
    }

    [Fact]
    public void BadSubstreamIds()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 8 });
        var pa = new TestAllocator(0x2000_0000);
        h.WriteSte(1, StreamTableEntry.Create(SteConfig.Bypass));
        Streams.Stage2(h, 2, pa);
        Streams.Stage1(h, 3, pa); // S1CDMax 0: substreams disabled
        Streams.Stage1(h, 4, pa, ste: s => s with { W0 = Bits.Set(s.W0, 63, 59, 2) }); // 4 CDs
        // 7.3.9: SubstreamID recorded, no SSV qualifier (SubstreamID is always valid in this record).
        foreach (var (sid, ssid) in new (uint, uint)[] { (1, 5), (2, 5), (3, 1), (4, 4), (4, 0xFF) })
        {
            h.Translate(sid, Iova, ssid: ssid).Event.Type.ShouldBe(EventType.C_BAD_SUBSTREAMID, $"SID {sid} SSID {ssid}");
            h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_SUBSTREAMID, sid, ssid, ssv: false), $"SID {sid} SSID {ssid}");
        }
    }

    [Fact]
    public void SubstreamOnAnSmmuWithoutSubstreams()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 0 });
        // S1CDMax is IGNORED with SSIDSIZE 0: one CD, and a SubstreamID is a C_BAD_SUBSTREAMID.
        var t = Streams.Stage1(h, 3, new TestAllocator(0x2000_0000), ste: s => s with { W0 = Bits.Set(s.W0, 63, 59, 3) });
        t.Map(Iova, 0x5000_0000, 3);
        h.TranslateOk(3, Iova).ShouldBe(0x5000_0234UL);
        h.Translate(3, Iova, ssid: 1).Event.Type.ShouldBe(EventType.C_BAD_SUBSTREAMID);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_SUBSTREAMID, 3, 1, ssv: false));
    }

    [Fact]
    public void InvalidL1CdIsABadSubstreamId()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 10 });
        h.WriteSte(4, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: 0x3000_0000, s1Fmt: 1, s1CdMax: 10, s1Dss: 2));
        h.Memory.WriteUInt64(0x3000_0000 + 8, 0x3100_0000); // L1CD[1] with V = 0
        h.Translate(4, Iova, ssid: 0x45).Event.Type.ShouldBe(EventType.C_BAD_SUBSTREAMID);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_SUBSTREAMID, 4, 0x45, ssv: false));
        // Without a SubstreamID, S1DSS = 0b10 fetches CD 0 through L1CD[0], also invalid: SubstreamID recorded as 0.
        h.Translate(4, Iova).Event.Type.ShouldBe(EventType.C_BAD_SUBSTREAMID);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_SUBSTREAMID, 4, 0, ssv: false));
    }

    [Fact]
    public void L2PtrBeyondTheOasIsABadSubstreamId()
    {
        // 3.4.3 note 3: SMMUv3.1 and later report an out-of-range L1CD.L2Ptr of a stage-1-only stream as C_BAD_SUBSTREAMID.
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 40, SsidBits = 10 });
        h.WriteSte(4, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: 0x3000_0000, s1Fmt: 1, s1CdMax: 10, s1Dss: 2));
        h.Memory.WriteUInt64(0x3000_0000 + 8, L1ContextDescriptor.Create(0x100_0000_0000).Word);
        h.Translate(4, Iova, ssid: 0x45).Event.Type.ShouldBe(EventType.C_BAD_SUBSTREAMID);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_SUBSTREAMID, 4, 0x45, ssv: false));
    }

    [Fact]
    public void CdFetchAbortReportsTheCdAddress()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 8 });
        Streams.Stage1(h, 2, new TestAllocator(0x2000_0000), ste: s => s with { W0 = Bits.Set(s.W0, 63, 59, 3) });
        h.Memory.AddAbortRange(Streams.CdPa + 2 * 64 + 5 * 64, 64);
        h.Translate(2, Iova, AccessKind.Write, ssid: 5).Event.Type.ShouldBe(EventType.F_CD_FETCH);
        h.SingleEvent().ShouldBe(Evt.Fetch(Evt.F_CD_FETCH, 2, Streams.CdPa + 7 * 64, ssid: 5));
        // And a fetch abort of the L1CD of a 2-level table.
        h.WriteSte(3, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: 0x3000_0000, s1Fmt: 1, s1CdMax: 8, s1Dss: 1));
        h.Memory.AddAbortRange(0x3000_0000 + 2 * 8, 8);
        h.Translate(3, Iova, ssid: 0x85).Event.Type.ShouldBe(EventType.F_CD_FETCH);
        h.SingleEvent().ShouldBe(Evt.Fetch(Evt.F_CD_FETCH, 3, 0x3000_0010, ssid: 0x85));
    }

    private static readonly Dictionary<string, (SmmuFeatures Features, Func<ContextDescriptor, ContextDescriptor> Change)> IllegalCdTable = BuildIllegalCds();
    public static TheoryData<string> IllegalCds() => new(IllegalCdTable.Keys);

    private static Dictionary<string, (SmmuFeatures, Func<ContextDescriptor, ContextDescriptor>)> BuildIllegalCds()
    {
        var f = new SmmuFeatures { OasBits = 48 };
        return new Dictionary<string, (SmmuFeatures, Func<ContextDescriptor, ContextDescriptor>)>
        {
            ["V = 0"] = (f, c => c with { W0 = Bits.Set(c.W0, 31, false) }),
            ["TG0 reserved"] = (f, c => c with { W0 = Bits.Set(c.W0, 7, 6, 3) }),
            ["TG0 unimplemented granule"] = (f with { Gran4K = false }, c => c),
            ["T0SZ above 39"] = (f, c => c with { W0 = Bits.Set(c.W0, 5, 0, 40) }),
            ["T0SZ below 16"] = (f, c => c with { W0 = Bits.Set(c.W0, 5, 0, 15) }),
            ["AA64 = 0 without AArch32 tables"] = (f, c => c with { W0 = Bits.Set(c.W0, 41, false) }),
            ["ENDI = 1 on a little-endian SMMU"] = (f, c => c with { W0 = Bits.Set(c.W0, 15, true) }),
            ["TTB1 enabled with a reserved TG1"] = (f, c => c with { W0 = Bits.Set(Bits.Set(c.W0, 30, false), 21, 16, 25) }),
            // 5.4 CD.TTB0: within the effective IPS, and within 48 bits for 4 KiB (DS = 0)
            ["TTB0 beyond IPS"] = (f, c => c with { W0 = Bits.Set(c.W0, 34, 32, 0), W1 = 0x1_0000_0000 }),
            ["TTB0 beyond 48 bits with 4 KiB"] = (f with { OasBits = 52 }, c => c with { W0 = Bits.Set(c.W0, 34, 32, 6), W1 = 1UL << 48 }),
            // 5.4 CD.HA / CD.HD against IDR0.HTTU
            ["HA without HTTU"] = (f, c => c with { W0 = Bits.Set(c.W0, 43, true) }),
            ["HD with access-flag-only HTTU"] = (f with { Httu = 1 }, c => c with { W0 = Bits.Set(Bits.Set(c.W0, 43, true), 42, true) }),
            // 5.5: A = 0 needs RAZ/WI termination (IDR0.TERM_MODEL = 0)
            ["A = 0 with abort-only TERM_MODEL"] = (f with { TermModel = true }, c => c with { W0 = Bits.Set(c.W0, 46, false) }),
            // 5.5: CD.S against STALL_MODEL
            ["S = 1 with terminate-only STALL_MODEL"] = (f with { StallModel = 1 }, c => c with { W0 = Bits.Set(c.W0, 44, true) }),
            ["S = 0 with stall-only STALL_MODEL"] = (f with { StallModel = 2 }, c => c),
            // 5.4 CD.ASID: 8-bit ASIDs
            ["ASID[15:8] with 8-bit ASIDs"] = (f with { Asid16 = false }, c => c with { W0 = Bits.Set(c.W0, 63, 48, 0x100) }),
        };
    }

    [Theory]
    [MemberData(nameof(IllegalCds))]
    public void IllegalCdIsABadCd(string reason)
    {
        var (features, change) = IllegalCdTable[reason];
        var h = new SmmuHarness(features with { SsidBits = 4 });
        Streams.Stage1(h, 2, new TestAllocator(0x2000_0000), cd: change,
            ste: s => s with { W0 = Bits.Set(s.W0, 63, 59, 0) });
        var r = h.Translate(2, Iova);
        r.Event.Type.ShouldBe(EventType.C_BAD_CD, reason);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_CD, 2), reason);
        h.Smmu.CachedCdCount.ShouldBe(0, reason);
    }

    [Fact]
    public void BadCdRecordsTheSubstream()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, SsidBits = 4 });
        h.WriteSte(2, StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: 0x3000_0000, s1CdMax: 4));
        h.Translate(2, Iova, AccessKind.Write, ssid: 9).Event.Type.ShouldBe(EventType.C_BAD_CD);
        h.SingleEvent().ShouldBe(Evt.Config(Evt.C_BAD_CD, 2, 9));
    }

    [Fact]
    public void EpdAndTgIgnoredFieldsDoNotMakeACdIllegal()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48 });
        // EPD1 = 1 makes T1SZ/TG1/TTB1 IGNORED; EPD0 = 1 makes T0SZ/TG0/TTB0 IGNORED.
        var t = Streams.Stage1(h, 2, new TestAllocator(0x2000_0000), cd: c => c with { W0 = Bits.Set(Bits.Set(c.W0, 23, 16, 0xFF), 30, true), W2 = ulong.MaxValue });
        t.Map(Iova, 0x5000_0000, 3);
        h.TranslateOk(2, Iova).ShouldBe(0x5000_0234UL);
        Streams.Stage1(h, 3, new TestAllocator(0x3000_0000), asid: 2, cd: c => c with { W0 = Bits.Set(Bits.Set(c.W0, 14, true), 7, 0, 0xFF) });
        h.Translate(3, Iova).Event.Type.ShouldBe(EventType.F_TRANSLATION); // walks of TTB0 are disabled
        h.SingleEvent().ShouldBe(Evt.Translation(Evt.F_TRANSLATION, 3, Iova, AccessKind.Read));
    }
}

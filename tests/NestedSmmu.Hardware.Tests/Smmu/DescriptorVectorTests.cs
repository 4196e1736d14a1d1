namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>
/// STE and CD vectors from Linux's arm-smmu-v3 KUnit test (drivers/iommu/arm/arm-smmu-v3/
/// arm-smmu-v3-test.c inputs run through arm-smmu-v3.c's builders). Each is decoded to the fields that produced it and encoded
/// back with the model's Create methods.
/// </summary>
public class DescriptorVectorTests
{
    [Theory]
    // arm-smmu-v3-test.c KUnit vector "abort STE" (arm_smmu_make_abort_ste)
    [InlineData("abort", 0x0000000000000001UL, 0x0000000000000000UL, 0x0UL, 0x0UL)]
    // arm-smmu-v3-test.c KUnit vector "bypass STE" (arm_smmu_make_bypass_ste: SHCFG = incoming)
    [InlineData("bypass", 0x0000000000000009UL, 0x0000100000000000UL, 0x0UL, 0x0UL)]
    public void AbortAndBypassSte(string name, ulong w0, ulong w1, ulong w2, ulong w3)
    {
        var ste = new StreamTableEntry(w0, w1, w2, w3);
        ste.V.ShouldBeTrue();
        var config = name == "abort" ? SteConfig.Abort : SteConfig.Bypass;
        ste.Config.ShouldBe(config);
        ste.SHCFG.ShouldBe(name == "abort" ? 0u : 1u);
        ste.TranslatesStage1.ShouldBeFalse();
        ste.TranslatesStage2.ShouldBeFalse();

        var built = StreamTableEntry.Create(config, s1Cir: 0, s1Cor: 0, s1Csh: 0, shcfg: ste.SHCFG);
        built.ShouldBe(ste);
    }

    [Theory]
    // arm-smmu-v3-test.c KUnit vector "CD-table STE", S1DSS = SSID0 with ATS (arm_smmu_make_cdtable_ste, CD table at
    // 0xF0F0F0F0F0F0, S1CDMAX all ones, S1FMT 64K L2, stalls disabled).
    [InlineData(0xF800F0F0F0F0F0EBUL, 0x00000000180000D6UL, 2u, 0u)]
    // arm-smmu-v3-test.c KUnit vector "CD-table STE", S1DSS = bypass with ATS: same word 0, SHCFG = incoming.
    [InlineData(0xF800F0F0F0F0F0EBUL, 0x00001000180000D5UL, 1u, 1u)]
    public void CdTableSte(ulong w0, ulong w1, uint s1Dss, uint shcfg)
    {
        var ste = new StreamTableEntry(w0, w1, 0, 0);
        ste.V.ShouldBeTrue();
        ste.Config.ShouldBe(SteConfig.Stage1);
        ste.S1ContextPtr.ShouldBe(0xF0F0F0F0F0C0UL); // 0xF0F0F0F0F0F0 with bits [5:0] dropped
        ste.S1Fmt.ShouldBe(2u);                     // 2-level, 64 KiB leaf tables
        ste.S1CDMax.ShouldBe(31u);
        ste.S1DSS.ShouldBe(s1Dss);
        ste.S1CIR.ShouldBe(1u);
        ste.S1COR.ShouldBe(1u);
        ste.S1CSH.ShouldBe(3u);
        ste.S1STALLD.ShouldBeTrue();
        ste.EATS.ShouldBe(1u);                      // full ATS
        ste.STRW.ShouldBe(0u);                      // NS-EL1
        ste.SHCFG.ShouldBe(shcfg);
        ste.MEV.ShouldBeFalse();

        var built = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: 0xF0F0F0F0F0F0, s1Fmt: 2, s1CdMax: 31, s1Dss: s1Dss,
            eats: 1, shcfg: shcfg, s1Stalld: true);
        built.ShouldBe(ste);
    }

    [Fact]
    public void Stage2Ste()
    {
        // arm-smmu-v3-test.c KUnit vector "S2 STE" (arm_smmu_make_s2_domain_ste: VTTBR 0xdaedbeefdeadbeef; VTCR PS 1, TG 2,
        // SH 3, ORGN 1, IRGN 2, SL 3, TSZ 4; VMID 0) with ATS.
        var ste = new StreamTableEntry(0x000000000000000D, 0x0000100010000000, 0x0449B6C400000000, 0x000DBEEFDEADBEE0);
        ste.V.ShouldBeTrue();
        ste.Config.ShouldBe(SteConfig.Stage2);
        ste.EATS.ShouldBe(1u);
        ste.SHCFG.ShouldBe(1u);
        ste.S2VMID.ShouldBe((ushort)0);
        ste.S2T0SZ.ShouldBe(4u);
        ste.S2SL0.ShouldBe(3u);
        ste.S2IR0.ShouldBe(2u);
        ste.S2OR0.ShouldBe(1u);
        ste.S2SH0.ShouldBe(3u);
        ste.S2TG.ShouldBe(2u);
        ste.S2PS.ShouldBe(1u);
        ste.VTCR.ShouldBe(0x1B6C4u); // [178:160]: PS 1, TG 2, SH 3, OR 1, IR 2, SL0 3, T0SZ 4
        ste.S2AA64.ShouldBeTrue();
        ste.S2ENDI.ShouldBeFalse();
        ste.S2PTW.ShouldBeTrue();
        ste.S2R.ShouldBeTrue();
        ste.S2HA.ShouldBeFalse();
        ste.S2S.ShouldBeFalse();
        ste.S2TTB.ShouldBe(0xdaedbeefdeadbeefUL & 0x000F_FFFF_FFFF_FFF0UL);

        var built = StreamTableEntry.Create(SteConfig.Stage2, s1Cir: 0, s1Cor: 0, s1Csh: 0, eats: 1, shcfg: 1,
            s2Vmid: 0, s2T0sz: 4, s2Sl0: 3, s2Tg: 2, s2Ps: 1, s2Ir0: 2, s2Or0: 1, s2Sh0: 3, s2Ptw: true, s2R: true,
            s2Ttb: 0xdaedbeefdeadbeef);
        built.ShouldBe(ste);
    }

    [Theory]
    // arm-smmu-v3-test.c KUnit vector "S1 CD" (arm_smmu_make_s1_cd: TTBR 0xdaedbeefdeadbeef; TCR IPS 1, TG 2, SH 3,
    // ORGN 1, IRGN 2, TSZ 4; MAIR 0x0abcdef012345678), ASID 1997 and ASID 778.
    [InlineData((ushort)1997, 0x07CDE201C0003684UL)]
    [InlineData((ushort)778, 0x030AE201C0003684UL)]
    public void Stage1Cd(ushort asid, ulong w0)
    {
        var cd = new ContextDescriptor(w0, 0x000DBEEFDEADBEE0, 0, 0x0ABCDEF012345678);
        cd.V.ShouldBeTrue();
        cd.T0SZ.ShouldBe(4u);
        cd.TG0.ShouldBe(2u);   // the CD's TG0 encoding of 16 KiB
        cd.IR0.ShouldBe(2u);
        cd.OR0.ShouldBe(1u);
        cd.SH0.ShouldBe(3u);
        cd.EPD0.ShouldBeFalse();
        cd.EPD1.ShouldBeTrue();
        cd.ENDI.ShouldBeFalse();
        cd.IPS.ShouldBe(1u);
        cd.AA64.ShouldBeTrue();
        cd.R.ShouldBeTrue();
        cd.A.ShouldBeTrue();
        cd.ASET.ShouldBeTrue();
        cd.HA.ShouldBeFalse();
        cd.HD.ShouldBeFalse();
        cd.S.ShouldBeFalse();
        cd.TBI0.ShouldBeFalse();
        cd.AFFD.ShouldBeFalse();
        cd.ASID.ShouldBe(asid);
        cd.TTB0.ShouldBe(0xdaedbeefdeadbeefUL & 0x000F_FFFF_FFFF_FFF0UL);
        cd.MAIR.ShouldBe(0x0ABCDEF012345678UL);

        var built = ContextDescriptor.Create(0xdaedbeefdeadbeef, asid, t0sz: 4, tg0: 2, ips: 1, ir0: 2, or0: 1, sh0: 3,
            epd1: true, mair: 0x0ABCDEF012345678, aset: true);
        built.ShouldBe(cd);
    }

    [Theory]
    [InlineData(0x0000_0000_4100_0000UL, 9u, 0x0000000041000009UL)]
    [InlineData(0x000F_FFFF_FFFF_FFC0UL, 11u, 0x000FFFFFFFFFFFCBUL)]
    public void L1StreamTableDescriptor(ulong l2Ptr, uint span, ulong word)
    {
        var d = NestedSmmu.Hardware.Smmu.L1StreamTableDescriptor.Create(l2Ptr, span);
        d.Word.ShouldBe(word);
        d.L2Ptr.ShouldBe(l2Ptr);
        d.Span.ShouldBe(span);
    }

    [Fact]
    public void L1ContextDescriptor()
    {
        var d = NestedSmmu.Hardware.Smmu.L1ContextDescriptor.Create(0x0000_0123_4567_8000);
        d.Word.ShouldBe(0x0000012345678001UL);
        d.V.ShouldBeTrue();
        d.L2Ptr.ShouldBe(0x0000_0123_4567_8000UL);
    }

    [Fact]
    public void FieldRoundTripsOverRandomWords()
    {
        // Every accessor reads exactly its [hi:lo] range: build words from random fields and read them back.
        var rng = new Random(20240611);
        for (int i = 0; i < 500; i++)
        {
            ulong ptr = (ulong)rng.NextInt64() & 0x000F_FFFF_FFFF_FFC0;
            uint fmt = (uint)rng.Next(3), cdMax = (uint)rng.Next(32), dss = (uint)rng.Next(3), eats = (uint)rng.Next(3);
            ushort vmid = (ushort)rng.Next(65536);
            uint t0sz = (uint)rng.Next(64), sl0 = (uint)rng.Next(4), tg = (uint)rng.Next(3), ps = (uint)rng.Next(8);
            ulong ttb = (ulong)rng.NextInt64() & 0x000F_FFFF_FFFF_FFF0;
            var config = (SteConfig)(4 + rng.Next(4));
            var ste = StreamTableEntry.Create(config, s1ContextPtr: ptr, s1Fmt: fmt, s1CdMax: cdMax, s1Dss: dss, eats: eats,
                s2Vmid: vmid, s2T0sz: t0sz, s2Sl0: sl0, s2Tg: tg, s2Ps: ps, s2Ttb: ttb, strw: 2, s1Stalld: true);
            ste.Config.ShouldBe(config);
            (ste.S1ContextPtr, ste.S1Fmt, ste.S1CDMax, ste.S1DSS, ste.EATS, ste.STRW, ste.S1STALLD)
                .ShouldBe((ptr, fmt, cdMax, dss, eats, 2u, true));
            if (ste.TranslatesStage2)
                (ste.S2VMID, ste.S2T0SZ, ste.S2SL0, ste.S2TG, ste.S2PS, ste.S2TTB).ShouldBe((vmid, t0sz, sl0, tg, ps, ttb));
            else
                (ste.W2, ste.W3).ShouldBe(((ulong)vmid, 0UL)); // S2VMID still tags stage-1-only streams

            ushort asid = (ushort)rng.Next(65536);
            uint ips = (uint)rng.Next(8);
            var cd = ContextDescriptor.Create(ttb, asid, t0sz, tg0: tg, ips: ips, ha: true, affd: true, epd0: true, epd1: false);
            (cd.TTB0, cd.ASID, cd.T0SZ, cd.TG0, cd.IPS, cd.HA, cd.AFFD, cd.EPD0, cd.EPD1, cd.V)
                .ShouldBe((ttb, asid, t0sz, tg, ips, true, true, true, false, true));
        }
    }
}

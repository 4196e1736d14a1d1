using CsCheck;

namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>
/// Property-based tests (CsCheck) of the Hardware codecs: every builder's fields read back through the
/// decoders (decode(encode(x)) == x, fields masked to their widths), and encodings the spec calls
/// illegal are rejected. A failing sample prints its seed; replay with the CsCheck_Seed environment variable.
/// </summary>
public sealed class CodecPropertyTests
{
    private const long Iterations = 2_000;

    /// <summary>Every feature a command can need, so legality depends only on the encoding.</summary>
    private static readonly SmmuFeatures AllFeatures = new() { Stage1 = true, Stage2 = true, Hyp = true, Ats = true, Pri = true, Ril = true, SsidBits = 20 };

    private static readonly Gen<uint> Sid = Gen.UInt;
    private static readonly Gen<uint> Ssid = Gen.UInt[0, 0xF_FFFF];
    private static readonly Gen<ushort> U16 = Gen.UShort;
    private static readonly Gen<ulong> PageAddress = Gen.ULong.Select(a => a & Bits.Mask(63, 12));

    private static void Sample<T>(Gen<T> gen, Action<T> assert) => gen.Sample(assert, iter: Iterations, threads: 1);

    // ---- Commands (IHI 0070 4) ----

    [Fact]
    public void Config_invalidations_round_trip()
    {
        Sample(Gen.Select(Sid, Ssid, Gen.Bool, Gen.UInt[0, 31]), t =>
        {
            var (sid, ssid, leaf, range) = t;
            var ste = Command.CfgiSte(sid, leaf);
            (ste.Opcode, ste.SID, ste.Leaf).ShouldBe((CommandOpcode.CFGI_STE, sid, leaf));
            var steRange = Command.CfgiSteRange(sid, range);
            (steRange.Opcode, steRange.SID, steRange.Range).ShouldBe((CommandOpcode.CFGI_STE_RANGE, sid, range));
            var cd = Command.CfgiCd(sid, ssid, leaf);
            (cd.Opcode, cd.SID, cd.SSID, cd.Leaf, cd.SSV).ShouldBe((CommandOpcode.CFGI_CD, sid, ssid, leaf, false));
            var cdAll = Command.CfgiCdAll(sid);
            (cdAll.Opcode, cdAll.SID).ShouldBe((CommandOpcode.CFGI_CD_ALL, sid));
            var prefetch = Command.PrefetchConfig(sid);
            (prefetch.Opcode, prefetch.SID).ShouldBe((CommandOpcode.PREFETCH_CONFIG, sid));
            foreach (var c in new[] { ste, steRange, cd, cdAll, prefetch })
                CommandCodec.IsLegal(c, AllFeatures).ShouldBeTrue(c.ToString());
        });
    }

    private static readonly Gen<(uint Tg, uint Ttl, uint Num, uint Scale, bool Leaf)> RangeHint =
        Gen.Select(Gen.UInt[0, 3], Gen.UInt[0, 3], Gen.UInt[0, 31], Gen.UInt[0, 63], Gen.Bool);

    /// <summary>IHI 0070 4.4.1.1: TG != 0 with NUM = SCALE = 0 and TTL = 0b00 is Reserved (CERROR_ILL with RIL).</summary>
    private static bool ReservedRange(uint tg, uint ttl, uint num, uint scale) =>
        tg != 0 && num == 0 && scale == 0 && (ttl == 0 || (tg == 2 && ttl == 1));

    [Fact]
    public void Tlbi_by_address_round_trips_and_is_legal_unless_reserved()
    {
        Sample(Gen.Select(U16, U16, PageAddress, RangeHint), t =>
        {
            var (vmid, asid, va, (tg, ttl, num, scale, leaf)) = t;
            var commands = new[]
            {
                (Command.TlbiNhVa(vmid, asid, va, leaf, tg, ttl, num, scale), vmid, asid, va),
                (Command.TlbiNhVaa(vmid, va, leaf, tg, ttl, num, scale), vmid, (ushort)0, va),
                (Command.TlbiEl2Va(asid, va, leaf, tg, ttl, num, scale), (ushort)0, asid, va),
                (Command.TlbiS2Ipa(vmid, va, leaf, tg, ttl, num, scale), vmid, (ushort)0, va & Bits.Mask(51, 12)),
            };
            foreach (var (c, v, a, address) in commands)
            {
                (c.VMID, c.ASID, c.Address, c.Leaf, c.TG, c.TTL, c.NUM, c.SCALE).ShouldBe((v, a, address, leaf, tg, ttl, num, scale), c.ToString());
                CommandCodec.IsLegal(c, AllFeatures).ShouldBe(!ReservedRange(tg, ttl, num, scale), c.ToString());
                // Without FEAT_RIL the range fields are not checked for the reserved combination.
                CommandCodec.IsLegal(c, AllFeatures with { Ril = false }).ShouldBeTrue(c.ToString());
            }
        });
    }

    [Fact]
    public void Tlbi_by_context_round_trips()
    {
        Sample(Gen.Select(U16, U16), t =>
        {
            var (vmid, asid) = t;
            var all = new[]
            {
                (Command.TlbiNhAll(vmid), vmid, (ushort)0),
                (Command.TlbiNhAsid(vmid, asid), vmid, asid),
                (Command.TlbiEl2Asid(asid), (ushort)0, asid),
                (Command.TlbiS12Vmall(vmid), vmid, (ushort)0),
                (Command.TlbiEl2All(), (ushort)0, (ushort)0),
                (Command.TlbiNsnhAll(), (ushort)0, (ushort)0),
            };
            foreach (var (c, v, a) in all)
            {
                (c.VMID, c.ASID, c.W1).ShouldBe((v, a, 0UL), c.ToString());
                CommandCodec.IsLegal(c, AllFeatures).ShouldBeTrue(c.ToString());
            }
        });
    }

    [Fact]
    public void Atc_pri_resume_and_sync_round_trip()
    {
        Sample(Gen.Select(Sid, Ssid.Nullable(), PageAddress, Gen.UInt[0, 63], Gen.Bool, Gen.UInt[0, 0x1FF], Gen.UInt[0, 3], U16), t =>
        {
            var (sid, ssid, address, size, global, prg, resp, stag) = t;
            var atc = Command.AtcInv(sid, ssid, address, size, global);
            (atc.Opcode, atc.SID, atc.SSV, atc.SSID, atc.Address, atc.AtcSize, atc.Global)
                .ShouldBe((CommandOpcode.ATC_INV, sid, ssid is not null, ssid ?? 0, address, size, global));
            CommandCodec.IsLegal(atc, AllFeatures).ShouldBeTrue();
            // ATC_INV with SSV = 1 needs substreams (IHI 0070 4.5.1).
            CommandCodec.IsLegal(atc, AllFeatures with { SsidBits = 0 }).ShouldBe(ssid is null);
            CommandCodec.IsLegal(atc, AllFeatures with { Ats = false }).ShouldBeFalse();

            var pri = Command.PriResp(sid, ssid, prg, resp);
            (pri.Opcode, pri.SID, pri.SSV, pri.SSID, pri.PrgIndex, pri.PriRespCode)
                .ShouldBe((CommandOpcode.PRI_RESP, sid, ssid is not null, ssid ?? 0, prg, resp));
            CommandCodec.IsLegal(pri, AllFeatures).ShouldBeTrue();
            CommandCodec.IsLegal(pri, AllFeatures with { Pri = false }).ShouldBeFalse();

            var resume = Command.Resume(sid, stag, resp);
            (resume.Opcode, resume.SID, resume.Stag, resume.Resp).ShouldBe((CommandOpcode.RESUME, sid, stag, resp));
            CommandCodec.IsLegal(resume, AllFeatures).ShouldBeTrue();

            ulong msi = address & Bits.Mask(51, 2);
            var cs = (SyncSignal)(resp % 3);
            var sync = Command.Sync(cs, address, sid);
            (sync.Opcode, sync.CS, sync.MsiAddress, sync.MsiData).ShouldBe((CommandOpcode.CMD_SYNC, cs, msi, sid));
            CommandCodec.IsLegal(sync, AllFeatures).ShouldBeTrue();
        });
    }

    /// <summary>
    /// A command is legal only if its opcode is defined and every set bit is a field of that opcode
    /// (IHI 0070 4.1: undefined opcodes and non-zero Reserved fields give CERROR_ILL).
    /// </summary>
    [Fact]
    public void Random_words_are_legal_only_within_the_opcodes_fields()
    {
        Sample(Gen.Select(Gen.ULong, Gen.ULong, Gen.Byte, Gen.Int[0, 3]), t =>
        {
            var (w0, w1, op, mode) = t;
            w0 = (w0 & ~0xFFUL) | op;
            if (mode > 0 && CommandCodec.AllowedBits((CommandOpcode)op) is { } allowed)
            {
                // Mostly keep to the opcode's fields, so the legal side is sampled too.
                w0 &= allowed.W0;
                w1 &= allowed.W1;
            }
            var cmd = new Command(w0, w1);
            bool legal = CommandCodec.IsLegal(cmd, AllFeatures);
            if (CommandCodec.AllowedBits(cmd.Opcode) is not { } bits)
            {
                legal.ShouldBeFalse($"undefined opcode: {cmd}");
                return;
            }
            if ((w0 & ~bits.W0) != 0 || (w1 & ~bits.W1) != 0) legal.ShouldBeFalse($"reserved bits set: {cmd}");
            // Every defined opcode keeps its fields within the words it allows: one reserved bit flips legality.
            for (int bit = 0; bit < 128; bit++)
            {
                bool inW0 = bit < 64;
                ulong mask = 1UL << (bit & 63);
                if (((inW0 ? bits.W0 : bits.W1) & mask) != 0) continue;
                var flipped = inW0 ? new Command(w0 | mask, w1) : new Command(w0, w1 | mask);
                CommandCodec.IsLegal(flipped, AllFeatures).ShouldBeFalse($"reserved bit {bit} set: {flipped}");
            }
        });
    }

    [Fact]
    public void WithVMID_and_WithSID_change_only_their_field()
    {
        Sample(Gen.Select(Gen.ULong, Gen.ULong, U16, Sid), t =>
        {
            var (w0, w1, vmid, sid) = t;
            var cmd = new Command(w0, w1);
            var v = cmd.WithVMID(vmid);
            (v.VMID, v.W0 & ~Bits.Mask(47, 32), v.W1).ShouldBe((vmid, w0 & ~Bits.Mask(47, 32), w1));
            var s = cmd.WithSID(sid);
            (s.SID, s.W0 & ~Bits.Mask(63, 32), s.W1).ShouldBe((sid, w0 & ~Bits.Mask(63, 32), w1));
        });
    }

    // ---- Stream table entries (IHI 0070 5.2) ----

    [Fact]
    public void Ste_fields_round_trip()
    {
        var config = Gen.OneOf<SteConfig>(SteConfig.Abort, SteConfig.Bypass, SteConfig.Stage1, SteConfig.Stage2, SteConfig.Nested);
        var s1 = Gen.Select(Gen.ULong, Gen.UInt[0, 3], Gen.UInt[0, 31], Gen.UInt[0, 3], Gen.UInt[0, 3], Gen.UInt[0, 3], Gen.UInt[0, 3], Gen.Bool);
        var common = Gen.Select(Gen.UInt[0, 3], Gen.UInt[0, 3], Gen.Bool, Gen.UInt[0, 3], Gen.Bool, U16);
        var s2 = Gen.Select(Gen.UInt[0, 63], Gen.UInt[0, 3], Gen.UInt[0, 3], Gen.UInt[0, 7], Gen.Bool, Gen.Bool, Gen.Bool, Gen.ULong);
        Sample(Gen.Select(config, s1, common, s2), t =>
        {
            var (cfg, (ctx, fmt, cdMax, dss, cir, cor, csh, stalld), (eats, shcfg, mev, strw, valid, vmid), (t0sz, sl0, tg, ps, aa64, ha, r, ttb)) = t;
            var ste = StreamTableEntry.Create(cfg, ctx, fmt, cdMax, dss, cir, cor, csh, eats, shcfg, mev, vmid, t0sz, sl0, tg, ps,
                s2Aa64: aa64, s2Ha: ha, s2R: r, s2Ttb: ttb, valid: valid, s1Stalld: stalld, strw: strw);
            (ste.V, ste.Config, ste.S1ContextPtr, ste.S1Fmt, ste.S1CDMax).ShouldBe((valid, cfg, ctx & Bits.Mask(51, 6), fmt, cdMax));
            (ste.S1DSS, ste.S1CIR, ste.S1COR, ste.S1CSH, ste.S1STALLD).ShouldBe((dss, cir, cor, csh, stalld));
            (ste.EATS, ste.SHCFG, ste.MEV, ste.STRW, ste.S2VMID).ShouldBe((eats, shcfg, mev, strw, vmid));
            bool s2 = cfg is SteConfig.Stage2 or SteConfig.Nested;
            ste.TranslatesStage2.ShouldBe(s2);
            ste.TranslatesStage1.ShouldBe(cfg is SteConfig.Stage1 or SteConfig.Nested);
            if (s2)
            {
                (ste.S2T0SZ, ste.S2SL0, ste.S2TG, ste.S2PS, ste.S2AA64, ste.S2HA, ste.S2R, ste.S2TTB)
                    .ShouldBe((t0sz, sl0, tg, ps, aa64, ha, r, ttb & Bits.Mask(51, 4)));
            }
            else
            {
                // Stage-2 fields of a stream without stage 2 are left zero (only S2VMID tags its TLB entries).
                (ste.W2 & ~Bits.Mask(15, 0), ste.W3).ShouldBe((0UL, 0UL));
            }
            Span<ulong> words = stackalloc ulong[StreamTableEntry.Words];
            ste.CopyTo(words);
            StreamTableEntry.FromWords(words).ShouldBe(ste);
        });
    }

    [Fact]
    public void L1_descriptors_round_trip()
    {
        Sample(Gen.Select(Gen.ULong, Gen.UInt[0, 31]), t =>
        {
            var (ptr, span) = t;
            var std = L1StreamTableDescriptor.Create(ptr, span);
            (std.L2Ptr, std.Span).ShouldBe((ptr & Bits.Mask(51, 6), span));
            var cd = L1ContextDescriptor.Create(ptr);
            (cd.L2Ptr, cd.V).ShouldBe((ptr & Bits.Mask(51, 12), true));
        });
    }

    // ---- Context descriptors (IHI 0070 5.4) ----

    [Fact]
    public void Cd_fields_round_trip()
    {
        var a = Gen.Select(Gen.ULong, U16, Gen.UInt[0, 63], Gen.UInt[0, 3], Gen.UInt[0, 7], Gen.Bool, Gen.Bool, Gen.Bool);
        var b = Gen.Select(Gen.Bool, Gen.UInt[0, 3], Gen.UInt[0, 3], Gen.UInt[0, 3], Gen.Bool, Gen.Bool, Gen.ULong, Gen.Bool);
        Sample(Gen.Select(a, b, Gen.Bool, Gen.Bool), t =>
        {
            var ((ttb0, asid, t0sz, tg0, ips, ha, affd, r), (abort, ir0, or0, sh0, epd0, epd1, mair, valid), aa64, aset) = t;
            var cd = ContextDescriptor.Create(ttb0, asid, t0sz, tg0, ips, ha, affd, r, abort, ir0, or0, sh0, epd0, epd1, mair, valid, aa64, aset);
            (cd.TTB0, cd.ASID, cd.T0SZ, cd.TG0, cd.IPS, cd.HA, cd.AFFD, cd.R).ShouldBe((ttb0 & Bits.Mask(51, 4), asid, t0sz, tg0, ips, ha, affd, r));
            (cd.A, cd.IR0, cd.OR0, cd.SH0, cd.EPD0, cd.EPD1, cd.MAIR, cd.V).ShouldBe((abort, ir0, or0, sh0, epd0, epd1, mair, valid));
            (cd.AA64, cd.ASET, cd.HD, cd.S, cd.ENDI, cd.TBI0, cd.TBI1).ShouldBe((aa64, aset, false, false, false, false, false));
            Span<ulong> words = [cd.W0, cd.W1, cd.W2, cd.W3, cd.W4, cd.W5, cd.W6, cd.W7];
            ContextDescriptor.FromWords(words).ShouldBe(cd);
        });
    }

    // ---- Event records (IHI 0070 7.3) ----

    [Fact]
    public void Event_records_round_trip()
    {
        var type = Gen.OneOf<EventType>(EventType.F_TRANSLATION, EventType.F_ADDR_SIZE, EventType.F_ACCESS, EventType.F_PERMISSION);
        var cls = Gen.OneOf<FaultClass>(FaultClass.CD, FaultClass.TTD, FaultClass.IN);
        Sample(Gen.Select(type, Sid, Ssid.Nullable(), Gen.ULong, Gen.ULong, cls, Gen.Int[0, 31], Gen.Bool), t =>
        {
            var (et, sid, ssid, input, ipa, c, flags, descriptorRead) = t;
            bool read = (flags & 1) != 0, stage2 = (flags & 2) != 0, priv = (flags & 4) != 0, instr = (flags & 8) != 0;
            var ev = EventRecord.Translation(et, sid, ssid, input, read, stage2, c, ipa, priv, instr, descriptorRead);
            (ev.Type, ev.SID, ev.SSV, ev.SSID, ev.InputAddress).ShouldBe((et, sid, ssid is not null, ssid ?? 0, input));
            (ev.RnW, ev.S2, ev.Class, ev.PnU, ev.InD, ev.Stall).ShouldBe((read, stage2, c, priv, instr, false));
            ev.Ipa.ShouldBe(stage2 ? ipa & Bits.Mask(51, 12) : 0);
            ev.TTRnW.ShouldBe(stage2 && c != FaultClass.IN && descriptorRead);

            var abort = EventRecord.WalkAbort(sid, ssid, input, read, stage2, c, ipa);
            (abort.Type, abort.SID, abort.InputAddress, abort.RnW, abort.S2, abort.Class, abort.FetchAddress)
                .ShouldBe((EventType.F_WALK_EABT, sid, input, read, stage2, c, ipa & Bits.Mask(51, 3)));

            var fetch = EventRecord.Fetch(EventType.F_CD_FETCH, sid, ssid, ipa);
            (fetch.Type, fetch.SID, fetch.SSV, fetch.SSID, fetch.FetchAddress).ShouldBe((EventType.F_CD_FETCH, sid, ssid is not null, ssid ?? 0, ipa & Bits.Mask(51, 3)));

            uint sub = ssid ?? 0;
            var bad = EventRecord.BadSubstream(sid, sub);
            (bad.Type, bad.SID, bad.SSID, bad.SSV).ShouldBe((EventType.C_BAD_SUBSTREAMID, sid, sub, false));

            var moved = ev.WithSid(sid ^ 0x5A5A_5A5A);
            (moved.SID, moved.W0 & 0xFFFF_FFFF, moved.W1, moved.W2, moved.W3).ShouldBe((sid ^ 0x5A5A_5A5A, ev.W0 & 0xFFFF_FFFF, ev.W1, ev.W2, ev.W3));
            moved.ToArray().ShouldBe([moved.W0, moved.W1, moved.W2, moved.W3]);
        });
    }

    // ---- Translation table descriptors (Arm ARM D8.3) ----

    /// <summary>
    /// A leaf written by the independent test builder (page or block, any granule, 52-bit output with
    /// 64K LPA) is decoded by the walker to the same output address and size.
    /// </summary>
    [Fact]
    public void Descriptors_written_by_the_builder_decode_to_the_same_mapping()
    {
        var shape = Gen.Select(Gen.OneOf<int>(12, 14, 16), Gen.Int[32, 48], Gen.Bool, Gen.Bool);
        Sample(Gen.Select(shape, Gen.ULong, Gen.ULong, Gen.Int[0, 3]), t =>
        {
            var ((pageShift, inputBits, stage2, lpa), ia, oa, levelPick) = t;
            bool useLpa = lpa && pageShift == 16;
            int outputBits = useLpa ? 52 : 48;
            int start = Vmsa.Stage1StartLevel(pageShift, inputBits);
            var leafLevels = Enumerable.Range(start, 4 - start).Where(l => l == 3 || Vmsa.BlockAllowed(pageShift, l, useLpa)).ToArray();
            int leafLevel = leafLevels[levelPick % leafLevels.Length];
            ia &= Vmsa.Mask(inputBits);
            // Output addresses stay clear of the tables (which the builder allocates at 1 MiB).
            oa = (oa & Vmsa.Mask(outputBits)) | (1UL << (outputBits - 1));

            var memory = new SparseMemory();
            var tables = new TestPageTable(memory, new TestAllocator(0x10_0000), pageShift, inputBits, start, stage2, lpa: useLpa);
            tables.Map(ia, oa, leafLevel);
            var regime = new WalkRegime(stage2 ? 2 : 1, (Granule)pageShift, tables.Root, inputBits, start, 0, outputBits,
                HardwareAccessFlag: false, AccessFlagFaultDisabled: false, Lpa: useLpa);
            var res = new PageTableWalker(memory).Walk(regime, ia, AccessKind.Read, default, nested: false, trace: null);

            int shift = Vmsa.LevelShift(pageShift, leafLevel);
            res.Fault.ShouldBe(WalkFault.None);
            (res.Level, res.BlockShift).ShouldBe((leafLevel, shift));
            res.Output.ShouldBe((oa & ~Vmsa.Mask(shift)) | (ia & Vmsa.Mask(shift)));
        });
    }
}

namespace NestedSmmu.Hardware.Tests.Smmu;

/// <summary>
/// TLB invalidation commands (IHI 0070 4.4) issued through the command queue against a TLB holding
/// entries of several regimes, VMIDs, ASIDs, addresses, levels and global/non-global: exactly the
/// targeted entries go, every other one still hits.
/// </summary>
public class TlbInvalidationTests
{
    private const ulong P0 = 0x10_0000, P1 = 0x20_0000, P2 = 0x30_0000, P3 = 0x50_0000, R = 0x40_0000, B = 0x4000_0000;
    private const ulong NestedIpa = 0x4000_0000;

    private sealed record Entry(string Name, uint Sid, TlbRegime Regime, ushort Vmid, ushort Asid, ulong Address);

    private sealed class Fixture
    {
        public required SmmuHarness H { get; init; }
        public required List<Entry> Entries { get; init; }
        public required Dictionary<uint, TestPageTable> Tables { get; init; }

        public bool Hits(Entry e) => H.Smmu.Tlb.TryLookup(e.Regime, e.Vmid, e.Asid, e.Address, out _);
    }

    private static Fixture Populate(bool ril = true)
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Hyp = true, Ril = ril },
            cr2: SmmuHarness.CR2_E2H | SmmuHarness.CR2_RECINVSID | SmmuHarness.CR2_PTM);
        var pa = new TestAllocator(0x2000_0000);
        var entries = new List<Entry>();
        var tables = new Dictionary<uint, TestPageTable>();
        ulong nextPa = 0x8_0000_0000;
        ulong NewPa() => nextPa += 0x1_0000;

        void S1(uint sid, ushort vmid, ushort asid, uint strw, params (string Name, ulong Va, bool Global)[] pages)
        {
            var t = Streams.Stage1(h, sid, pa, asid: asid, vmid: vmid, strw: strw);
            tables[sid] = t;
            var regime = strw == 2 ? TlbRegime.El2 : TlbRegime.NonHyp;
            foreach (var (name, va, global) in pages)
            {
                if (name == "B") t.Map(va, 0x9_0000_0000, 2); // 2 MiB block, level 2
                else t.Map(va, NewPa(), 3, global ? t.DefaultAttributes & ~TestPageTable.NG : null);
                ulong access = name == "B" ? va + 0x1000 : va;
                h.TranslateOk(sid, access);
                entries.Add(new Entry($"{sid}.{name}", sid, regime, strw == 2 ? (ushort)0 : vmid, asid, access));
            }
        }

        var sid1 = new List<(string, ulong, bool)> { ("P0", P0, false), ("P1", P1, true), ("B", B, false) };
        for (int k = 0; k < 8; k++) sid1.Add(($"R{k}", R + (ulong)k * 0x1000, false));
        S1(1, vmid: 1, asid: 1, strw: 0, [.. sid1]);
        S1(2, vmid: 1, asid: 2, strw: 0, ("P0", P0, false), ("P2", P2, false));
        S1(3, vmid: 2, asid: 1, strw: 0, ("P0", P0, false));
        S1(6, vmid: 0, asid: 1, strw: 2, ("P0", P0, false), ("P1", P1, true));
        S1(7, vmid: 0, asid: 2, strw: 2, ("P0", P0, false));

        var s2 = Streams.Stage2(h, 4, pa, vmid: 1);
        foreach (var (name, ipa) in new[] { ("P0", P0), ("P3", P3) })
        {
            s2.Map(ipa, NewPa(), 3);
            h.TranslateOk(4, ipa);
            entries.Add(new Entry($"4.{name}", 4, TlbRegime.Stage2, 1, 0, ipa));
        }

        var n = Streams.NestedStream(h, 5, pa, asid: 1, vmid: 3);
        n.MapPage(P0, NestedIpa, NewPa());
        n.MapTables();
        h.TranslateOk(5, P0);
        entries.Add(new Entry("5.P0", 5, TlbRegime.NonHyp, 3, 1, P0));

        var f = new Fixture { H = h, Entries = entries, Tables = tables };
        foreach (var e in entries) f.Hits(e).ShouldBeTrue($"{e.Name} cached before the command");
        h.NoEvents();
        return f;
    }

    private static readonly string[] All1 = ["1.P0", "1.P1", "1.B", .. Enumerable.Range(0, 8).Select(k => $"1.R{k}")];
    private static readonly string[] AllNonGlobal1 = ["1.P0", "1.B", .. Enumerable.Range(0, 8).Select(k => $"1.R{k}")];

    private static readonly Dictionary<string, (bool Ril, Command Command, string[] Removed)> Cases = new()
    {
        ["TLBI_NH_ALL VMID 1"] = (true, Command.TlbiNhAll(1), [.. All1, "2.P0", "2.P2"]),
        ["TLBI_NH_ALL VMID 2"] = (true, Command.TlbiNhAll(2), ["3.P0"]),
        ["TLBI_NH_ALL VMID 3 (nested, combined entries)"] = (true, Command.TlbiNhAll(3), ["5.P0"]),
        ["TLBI_NH_ASID VMID 1 ASID 1 keeps global entries"] = (true, Command.TlbiNhAsid(1, 1), AllNonGlobal1),
        ["TLBI_NH_ASID VMID 1 ASID 9 (no such ASID)"] = (true, Command.TlbiNhAsid(1, 9), []),
        ["TLBI_NH_VA VMID 1 ASID 1 P0"] = (true, Command.TlbiNhVa(1, 1, P0), ["1.P0"]),
        ["TLBI_NH_VA leaf VMID 1 ASID 1 P0"] = (true, Command.TlbiNhVa(1, 1, P0, leaf: true), ["1.P0"]),
        ["TLBI_NH_VA VMID 1 ASID 2 matches a global entry"] = (true, Command.TlbiNhVa(1, 2, P1), ["1.P1"]),
        ["TLBI_NH_VA VMID 1 ASID 1 inside a block"] = (true, Command.TlbiNhVa(1, 1, B + 0x1F_F000), ["1.B"]),
        ["TLBI_NH_VA VMID 1 ASID 3 P0 (no such ASID)"] = (true, Command.TlbiNhVa(1, 3, P0), []),
        ["TLBI_NH_VAA VMID 1 P0"] = (true, Command.TlbiNhVaa(1, P0), ["1.P0", "2.P0"]),
        ["TLBI_NH_VAA VMID 2 P0"] = (true, Command.TlbiNhVaa(2, P0), ["3.P0"]),
        ["TLBI_EL2_ALL"] = (true, Command.TlbiEl2All(), ["6.P0", "6.P1", "7.P0"]),
        ["TLBI_EL2_ASID 1 keeps global entries"] = (true, Command.TlbiEl2Asid(1), ["6.P0"]),
        ["TLBI_EL2_VA ASID 2 P0"] = (true, Command.TlbiEl2Va(2, P0), ["7.P0"]),
        ["TLBI_EL2_VA ASID 2 matches a global entry"] = (true, Command.TlbiEl2Va(2, P1), ["6.P1"]),
        ["TLBI_EL2_VAA P0"] = (true, new Command(0x23, P0), ["6.P0", "7.P0"]),
        ["TLBI_S12_VMALL VMID 1"] = (true, Command.TlbiS12Vmall(1), [.. All1, "2.P0", "2.P2", "4.P0", "4.P3"]),
        ["TLBI_S12_VMALL VMID 3"] = (true, Command.TlbiS12Vmall(3), ["5.P0"]),
        ["TLBI_S2_IPA VMID 1 P3"] = (true, Command.TlbiS2Ipa(1, P3), ["4.P3"]),
        ["TLBI_S2_IPA VMID 1 P0 keeps stage-1 entries at that address"] = (true, Command.TlbiS2Ipa(1, P0), ["4.P0"]),
        ["TLBI_S2_IPA VMID 3 of a combined entry's IPA"] = (true, Command.TlbiS2Ipa(3, NestedIpa), []),
        ["TLBI_NSNH_ALL"] = (true, Command.TlbiNsnhAll(), [.. All1, "2.P0", "2.P2", "3.P0", "4.P0", "4.P3", "5.P0"]),
        // Range: ((NUM + 1) * 2^SCALE) granules from Address (4.4.1.1).
        ["range NUM 2 SCALE 1: 6 pages"] = (true, Command.TlbiNhVa(1, 1, R, tg: 1, num: 2, scale: 1), ["1.R0", "1.R1", "1.R2", "1.R3", "1.R4", "1.R5"]),
        ["range NUM 0 SCALE 1 TTL 3: 2 pages"] = (true, Command.TlbiNhVa(1, 1, R + 0x2000, tg: 1, ttl: 3, num: 0, scale: 1), ["1.R2", "1.R3"]),
        ["range NUM 31 SCALE 0 (VAA): 32 pages"] = (true, Command.TlbiNhVaa(1, R, tg: 1, num: 31), [.. Enumerable.Range(0, 8).Select(k => $"1.R{k}")]),
        ["range NUM 0 SCALE 21: 8 GiB from 0, global entries included"] = (true, Command.TlbiNhVa(1, 1, 0, tg: 1, num: 0, scale: 21), All1),
        ["range of the IPA space (TLBI_S2_IPA NUM 1)"] = (true, Command.TlbiS2Ipa(1, P3 - 0x1000, tg: 1, num: 1), ["4.P3"]),
        // TTL: only leaves at that level need go (4.4.1.1).
        ["TTL 3 keeps a level-2 block"] = (true, Command.TlbiNhVa(1, 1, B + 0x1000, tg: 1, ttl: 3), []),
        ["TTL 2 removes a level-2 block"] = (true, Command.TlbiNhVa(1, 1, B + 0x1000, tg: 1, ttl: 2), ["1.B"]),
        ["TG 64 KiB does not match 4 KiB entries"] = (true, Command.TlbiNhVa(1, 1, P0, tg: 3, ttl: 3), []),
        // Without RIL the range and level fields are RES0: one address.
        ["no RIL: range fields ignored"] = (false, Command.TlbiNhVa(1, 1, R, tg: 1, num: 2, scale: 1), ["1.R0"]),
        ["no RIL: TTL ignored"] = (false, Command.TlbiNhVa(1, 1, B + 0x1000, tg: 1, ttl: 3), ["1.B"]),
    };

    public static TheoryData<string> CaseNames() => new(Cases.Keys);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void RemovesExactlyTheTargetedEntries(string name)
    {
        var (ril, command, removed) = Cases[name];
        var f = Populate(ril);
        f.H.SubmitAndSync(command);
        foreach (var e in f.Entries)
            f.Hits(e).ShouldBe(!removed.Contains(e.Name), $"{e.Name} after {name}");
    }

    [Fact]
    public void StaleTranslationsLastUntilInvalidated()
    {
        var f = Populate();
        var h = f.H;
        ulong oldPa = h.TranslateOk(1, P0);
        // Remap P0 of SID 1 and SID 2 in memory; the IOTLB still answers with the old translations.
        f.Tables[1].Map(P0, 0xA_0000_0000, 3);
        f.Tables[2].Map(P0, 0xB_0000_0000, 3);
        h.TranslateOk(1, P0).ShouldBe(oldPa);
        h.SubmitAndSync(Command.TlbiNhVa(1, 1, P0));
        h.TranslateOk(1, P0).ShouldBe(0xA_0000_0000UL);
        h.TranslateOk(2, P0).ShouldNotBe(0xB_0000_0000UL, "ASID 2 was not invalidated");
        h.SubmitAndSync(Command.TlbiNhAsid(1, 2));
        h.TranslateOk(2, P0).ShouldBe(0xB_0000_0000UL);
    }

    [Fact]
    public void Vmid8BitCommandsMatchTheLowByte()
    {
        var h = new SmmuHarness(new SmmuFeatures { OasBits = 48, Vmid16 = false, Asid16 = false });
        var t = Streams.Stage1(h, 1, new TestAllocator(0x2000_0000), asid: 5, vmid: 7);
        t.Map(P0, 0x8_0000_0000, 3);
        h.TranslateOk(1, P0);
        h.Smmu.Tlb.TryLookup(TlbRegime.NonHyp, 7, 5, P0, out _).ShouldBeTrue();
        h.SubmitAndSync(Command.TlbiNhAsid(7, 5));
        h.Smmu.Tlb.TryLookup(TlbRegime.NonHyp, 7, 5, P0, out _).ShouldBeFalse();
    }
}

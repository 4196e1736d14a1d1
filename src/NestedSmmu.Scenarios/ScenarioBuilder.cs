using NestedSmmu.Guest.PageTables;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Scenarios;

/// <summary>
/// Writes scenarios in code: lays out stream tables, CDs and VMSAv8-64 translation tables in a
/// word map, records the driver's register writes and the accesses, and builds a
/// nestedsmmu-scenario/1 document. Written from the Arm ARM's table geometry alone (it shares
/// nothing with the model's walker), so tests can use it as an independent reference.
/// </summary>
public sealed class ScenarioBuilder : ITableSpace
{
    public const ulong StrtabBase = 0x4000_0000, EventqBase = 0x40F0_0000, CdBase = 0x4080_0000;
    public const int EventqLog2 = 6;

    private readonly SortedDictionary<ulong, ulong> _words = new();
    private readonly List<RegisterWrite> _writes = new();
    private readonly List<Access> _accesses = new();
    private readonly Dictionary<SmmuRegister, uint> _idr = new();
    private readonly TableAllocator _tables = new(0x4100_0000);

    public void Word(ulong address, ulong value) => _words[address] = value;
    public ulong Read(ulong address) => _words.GetValueOrDefault(address);
    public void Idr(SmmuRegister r, uint v) => _idr[r] = v;
    public void Access(uint sid, ulong iova, AccessKind kind, uint? ssid = null) => _accesses.Add(new Access(sid, ssid, iova, kind));

    /// <summary>Allocates a zeroed, naturally aligned table of <paramref name="bytes"/>.</summary>
    public ulong AllocTable(ulong bytes) => _tables.Allocate(bytes);

    public void Ste(uint sid, ulong w0, ulong w1, ulong w2 = 0, ulong w3 = 0, ulong? tableBase = null)
    {
        ulong a = (tableBase ?? StrtabBase) + sid * 64UL;
        Word(a, w0); Word(a + 8, w1); Word(a + 16, w2); Word(a + 24, w3);
    }

    public void Cd(ulong address, ulong w0, ulong ttb0, ulong mair = 0xFF)
    {
        Word(address, w0); Word(address + 8, ttb0); Word(address + 16, 0); Word(address + 24, mair);
    }

    /// <summary>
    /// Standard driver bring-up, as Linux's arm-smmu-v3 does it: CR2.RECINVSID (so invalid
    /// StreamIDs are recorded), the stream table, the event queue, then SMMUEN.
    /// </summary>
    public void Enable(uint strtabCfg = 8, ulong strtab = StrtabBase)
    {
        _writes.Add(new RegisterWrite(SmmuRegister.CR2, SmmuV3.CR2_RECINVSID));
        _writes.Add(new RegisterWrite(SmmuRegister.STRTAB_BASE, strtab, 64));
        _writes.Add(new RegisterWrite(SmmuRegister.STRTAB_BASE_CFG, strtabCfg));
        _writes.Add(new RegisterWrite(SmmuRegister.EVENTQ_BASE, EventqBase | EventqLog2, 64));
        _writes.Add(new RegisterWrite(SmmuRegister.CR0, 0x4)); // EVENTQEN
        _writes.Add(new RegisterWrite(SmmuRegister.CR0, 0x5)); // EVENTQEN | SMMUEN
    }

    public Scenario Build(string description) => new()
    {
        Description = description,
        Idr = _idr,
        Writes = _writes,
        Memory = _words.Select(kv => new MemoryBlock(kv.Key, [kv.Value])).ToList(),
        Accesses = _accesses,
    };

    /// <summary>CD word 0 for a 48-bit VA with the given granule, 44-bit IPS, R and A set, ASID 5.</summary>
    public static ulong CdWord0(int pageShift)
    {
        ulong tg0 = pageShift switch { 12 => 0, 16 => 1, _ => 2 };
        // T0SZ 16, TG0, IRGN0/ORGN0 WB, SH0 inner, EPD1, V, IPS 44 bits, AA64, R, A, ASID 5
        return 16 | (tg0 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (1UL << 30) | (1UL << 31) | (4UL << 32)
               | (1UL << 41) | (1UL << 45) | (1UL << 46) | (5UL << 48);
    }

    /// <summary>Stage-2 STE word 2 for a 40-bit IPA: 4K from level 1 (SL0 1), 16K from level 1 (SL0 2), 64K from level 2 (SL0 1).</summary>
    public static ulong Stage2Word2(int pageShift)
    {
        ulong tg = pageShift switch { 12 => 0, 16 => 1, _ => 2 };
        ulong sl0 = pageShift == 14 ? 2UL : 1UL;
        // VMID 1, T0SZ 24, SL0, IR0/OR0 WB, SH0 inner, TG, PS 44 bits, S2AA64, S2R
        return 1 | (24UL << 32) | (sl0 << 38) | (1UL << 40) | (1UL << 42) | (3UL << 44) | (tg << 46) | (4UL << 48) | (1UL << 51) | (1UL << 58);
    }

    /// <summary>
    /// Builds a whole translation for <paramref name="sid"/>: stage 1 (1), stage 2 (2) or nested (3)
    /// with one granule, a leaf at <paramref name="leafLevel"/> (3 page, 2 block), a linear or
    /// 2-level stream table, and enables the SMMU. Returns the log2 of the leaf size.
    /// </summary>
    public int AddTranslation(uint sid, int stage, int pageShift, int leafLevel, ulong iova, ulong ipa, ulong pa,
        bool twoLevel, bool writable = true, bool af = true)
    {
        int stride = pageShift - 3;
        int s1Start = 4 - (48 - pageShift + stride - 1) / stride;
        int s2Start = pageShift == 16 ? 2 : 1;
        ulong steAddressBase = StrtabBase;
        uint cfg = 8;
        if (twoLevel)
        {
            ulong l2 = AllocTable(64 * 64);
            Word(StrtabBase + (sid >> 6) * 8, l2 | 7); // Span 7: 64 STEs
            steAddressBase = l2 - (sid & ~63u) * 64UL;
            cfg = (1u << 16) | (6u << 6) | 8;
        }
        TranslationTables? s2 = stage >= 2 ? new TranslationTables(this, pageShift, 40, s2Start, stage2: true) : null;
        TranslationTables? s1 = stage != 2 ? new TranslationTables(this, pageShift, 48, s1Start, stage2: false) : null;
        int leafShift = (s1 ?? s2)!.Shift(leafLevel);
        if (stage == 1) s1!.Map(iova, pa, leafLevel, writable, af: af);
        if (stage == 2) s2!.Map(iova, pa, leafLevel, writable, af: af);
        if (stage == 3)
        {
            s1!.Map(iova, ipa, leafLevel, writable, af: af);
            Cd(CdBase, CdWord0(pageShift), s1.Root);
            // Identity-map every page of the CD and stage-1 tables through stage 2, then the output IPA.
            foreach (ulong page in TablePages.Select(p => p & ~((1UL << pageShift) - 1)).Distinct().ToList())
                s2!.Map(page, page);
            s2!.Map(ipa, pa, leafLevel, writable, af: af);
        }
        if (stage == 1) Cd(CdBase, CdWord0(pageShift), s1!.Root);
        ulong config = stage switch { 1 => 0xB, 2 => 0xD, _ => 0xF }; // V | Config S1 (5), S2 (6), nested (7)
        Ste(sid, (stage == 2 ? 0 : CdBase) | config, 0xD4, stage >= 2 ? Stage2Word2(pageShift) : 0, s2?.Root ?? 0, steAddressBase);
        Enable(cfg);
        return leafShift;
    }

    public IEnumerable<ulong> TablePages => _words.Keys.Select(a => a & ~0xFFFUL).Distinct();
}

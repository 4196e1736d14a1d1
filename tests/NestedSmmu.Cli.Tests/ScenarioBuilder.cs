using NestedSmmu.Hardware.Scenarios;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// Lays out stream tables, CDs and VMSAv8-64 tables for test scenarios, written from the
/// Arm ARM's table geometry independently of the model's walker, and turns them into a
/// nestedsmmu-scenario/1 document.
/// </summary>
internal sealed class ScenarioBuilder
{
    public const ulong StrtabBase = 0x4000_0000, EventqBase = 0x40F0_0000, CdBase = 0x4080_0000;
    public const int EventqLog2 = 6;

    private readonly SortedDictionary<ulong, ulong> _words = new();
    private readonly List<RegisterWrite> _writes = new();
    private readonly List<Access> _accesses = new();
    private readonly Dictionary<SmmuRegister, uint> _idr = new();
    private ulong _nextTable = 0x4100_0000;

    public void Word(ulong address, ulong value) => _words[address] = value;
    public ulong Read(ulong address) => _words.GetValueOrDefault(address);
    public void Idr(SmmuRegister r, uint v) => _idr[r] = v;
    public void Access(uint sid, ulong iova, AccessKind kind, uint? ssid = null) => _accesses.Add(new Access(sid, ssid, iova, kind));

    /// <summary>Allocates a zeroed, naturally aligned table of <paramref name="bytes"/>.</summary>
    public ulong AllocTable(ulong bytes)
    {
        bytes = Math.Max(bytes, 0x1000);
        ulong t = (_nextTable + bytes - 1) & ~(bytes - 1);
        _nextTable = t + bytes;
        return t;
    }

    public void Ste(uint sid, ulong w0, ulong w1, ulong w2 = 0, ulong w3 = 0, ulong? tableBase = null)
    {
        ulong a = (tableBase ?? StrtabBase) + sid * 64UL;
        Word(a, w0); Word(a + 8, w1); Word(a + 16, w2); Word(a + 24, w3);
    }

    public void Cd(ulong address, ulong w0, ulong ttb0, ulong mair = 0xFF)
    {
        Word(address, w0); Word(address + 8, ttb0); Word(address + 16, 0); Word(address + 24, mair);
    }

    /// <summary>Standard driver bring-up: linear (or given) stream table, event queue, SMMUEN.</summary>
    public void Enable(uint strtabCfg = 8, ulong strtab = StrtabBase)
    {
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

    public IEnumerable<ulong> TablePages => _words.Keys.Select(a => a & ~0xFFFUL).Distinct();
}

/// <summary>One translation regime's tables: granule, input size, start level (and stage-2 concatenation).</summary>
internal sealed class Tables
{
    private readonly ScenarioBuilder _b;
    public int PageShift { get; }
    public int Stride => PageShift - 3;
    public int InputBits { get; }
    public int StartLevel { get; }
    public bool Stage2 { get; }
    public ulong Root { get; }

    public Tables(ScenarioBuilder b, int pageShift, int inputBits, int startLevel, bool stage2)
    {
        _b = b;
        PageShift = pageShift;
        InputBits = inputBits;
        StartLevel = startLevel;
        Stage2 = stage2;
        int rootBits = inputBits - Shift(startLevel);
        Root = b.AllocTable(8UL << rootBits);
    }

    public int Shift(int level) => PageShift + (3 - level) * Stride;

    /// <summary>Maps <paramref name="ia"/> to <paramref name="oa"/> with a leaf at <paramref name="leafLevel"/> (3 = page).</summary>
    public void Map(ulong ia, ulong oa, int leafLevel = 3, bool writable = true, bool readable = true, bool af = true)
    {
        ulong table = Root;
        for (int level = StartLevel; level < leafLevel; level++)
        {
            ulong slot = table + Index(ia, level) * 8;
            ulong desc = _b.Read(slot);
            if ((desc & 1) == 0)
            {
                desc = _b.AllocTable(1UL << PageShift) | 3;
                _b.Word(slot, desc);
            }
            table = desc & 0x0000_FFFF_FFFF_F000 & ~((1UL << PageShift) - 1);
        }
        ulong attrs = (af ? 1UL << 10 : 0) | (3UL << 8);
        if (Stage2) attrs |= (readable ? 1UL << 6 : 0) | (writable ? 1UL << 7 : 0);
        else attrs |= (1UL << 6) | (writable ? 0 : 1UL << 7); // AP[1] = EL0 access, AP[2] = read-only
        _b.Word(table + Index(ia, leafLevel) * 8, (oa & ~((1UL << Shift(leafLevel)) - 1)) | attrs | (leafLevel == 3 ? 3UL : 1UL));
    }

    public ulong Index(ulong ia, int level)
    {
        int bits = level == StartLevel ? InputBits - Shift(level) : Stride;
        return (ia >> Shift(level)) & ((1UL << bits) - 1);
    }
}

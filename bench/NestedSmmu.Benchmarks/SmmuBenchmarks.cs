using BenchmarkDotNet.Attributes;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Benchmarks;

/// <summary>
/// The SMMUv3 model's hot paths. State: QEMU's iommu-smmuv3-test nested example (the words of
/// tests/vectors/scenarios/probe-qemu-example-nested.json): 4-level 4K stage 1 whose every table
/// address is walked through a 4-level 4K stage 2, then the output IPA through stage 2 again.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class TranslateBenchmarks
{
    private const uint Sid = 0x10;
    private const ulong Iova = 0x80_8060_4567;
    private SmmuV3 _smmu = null!;
    private SparseMemory _mem = null!;

    // The 24 descriptor addresses a cold nested 4K walk of this state reads when nothing is
    // reused (the CD is in the configuration cache): each stage-1 level after the stage-2 walk
    // of its table address, then the stage-2 walk of the output IPA.
    private static readonly ulong[] WalkReads =
    [
        0x41000000, 0x41002008, 0x41003040, 0x41004008, 0x41001008, // stage 2 of L0's table, L0
        0x41000000, 0x41002008, 0x41003040, 0x41004028, 0x41005010, // L1
        0x41000000, 0x41002008, 0x41003040, 0x41004030, 0x41006018, // L2
        0x41000000, 0x41002008, 0x41003040, 0x41004038, 0x41007020, // L3
        0x41000000, 0x41002008, 0x410033b0, 0x410095d0, // stage 2 of the output IPA
    ];

    [GlobalSetup]
    public void Setup()
    {
        var mem = _mem = new SparseMemory();
        (ulong Address, ulong[] Words)[] blocks =
        [
            (0x40000400, [0x000000004100800f, 0x00001000000000d4, 0x040d359400000001, 0x0000000041000000]),
            (0x41000000, [0x0000000041002003]),
            (0x41001008, [0x0000000041005003]),
            (0x41002008, [0x0000000041003003]),
            (0x41003040, [0x0000000041004003]),
            (0x410033b0, [0x0000000041009003]),
            (0x41004008, [0x000000004100177f, 0, 0, 0, 0x000000004100577f, 0x000000004100677f, 0x000000004100777f, 0x000000004100877f]),
            (0x41005010, [0x0000000041006003]),
            (0x41006018, [0x0000000041007003]),
            (0x41007020, [0x000000004ecba743]),
            (0x41008000, [0x1e206204c0003510, 0x0000000041001000, 0, 0xff]),
            (0x410095d0, [0x000000004ecba7ff]),
        ];
        foreach (var (a, w) in blocks) mem.WriteUInt64s(a, w);
        _smmu = new SmmuV3(mem, SmmuFeatures.QemuVirtNested);
        _smmu.WriteRegister(SmmuRegister.STRTAB_BASE, 0x40000000);
        _smmu.WriteRegister(SmmuRegister.STRTAB_BASE_CFG, 5);
        _smmu.WriteRegister(SmmuRegister.CR0, SmmuV3.CR0_SMMUEN);
        var r = _smmu.Translate(Sid, null, Iova, AccessKind.Read);
        if (!r.IsSuccess || r.PhysicalAddress != 0x4ecba567) throw new InvalidOperationException($"setup translation failed: {r}");
    }

    /// <summary>
    /// Reference for the machine's speed: the bare memory reads of one uncached nested walk, no
    /// logic. This VM's timing drifts by up to 2x between runs; ratios to this stay comparable.
    /// </summary>
    [Benchmark(Baseline = true)]
    public ulong BareDescriptorReads24()
    {
        ulong acc = 0;
        foreach (ulong a in WalkReads) acc ^= _mem.ReadUInt64(a);
        return acc;
    }

    /// <summary>Target: at most 25 ns.</summary>
    [Benchmark]
    public ulong TlbHitTranslate() => _smmu.Translate(Sid, null, Iova, AccessKind.Read).PhysicalAddress;

    /// <summary>Target: at most 400 ns. Configuration cached, IOTLB empty: 4 x (4 + 1) + 4 descriptor reads.</summary>
    [Benchmark]
    public ulong NestedColdWalk4K()
    {
        _smmu.Tlb.Clear();
        return _smmu.Translate(Sid, null, Iova, AccessKind.Read).PhysicalAddress;
    }
}

/// <summary>Command decode and execute through the real command queue (CMDQ_PROD write consumes the batch).</summary>
[MemoryDiagnoser]
[MedianColumn]
public class CommandBenchmarks
{
    private const int Log2 = 12;
    private const int Batch = 1 << Log2;
    private const ulong CmdqBase = 0x5000_0000;
    private SmmuV3 _smmu = null!;
    private uint _prod;

    [GlobalSetup]
    public void Setup()
    {
        var mem = new SparseMemory();
        _smmu = new SmmuV3(mem, SmmuFeatures.QemuVirtNested);
        // A driver's typical mix: range TLBI by VA, by ASID, CD invalidation and a sync every 8 commands.
        for (int i = 0; i < Batch; i++)
        {
            var c = (i % 8) switch
            {
                7 => Command.Sync(),
                0 or 1 or 2 or 3 => Command.TlbiNhVa(1, (ushort)(i & 0xFF), 0x1000UL * (ulong)i, leaf: true, tg: 1, num: 3),
                4 => Command.TlbiNhAsid(1, (ushort)i),
                5 => Command.CfgiCd((uint)(i & 0xFF), 0),
                _ => Command.CfgiSte((uint)(i & 0xFF)),
            };
            mem.WriteUInt64s(CmdqBase + (ulong)i * Command.Size, [c.W0, c.W1]);
        }
        _smmu.WriteRegister(SmmuRegister.CMDQ_BASE, CmdqBase | Log2);
        _smmu.WriteRegister(SmmuRegister.CR0, SmmuV3.CR0_CMDQEN);
    }

    /// <summary>Target: at least 20 M commands/s, i.e. at most 50 ns per command.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public long ConsumeCommandBatch()
    {
        // Advancing PROD by the queue size wraps it: the whole ring is full again and gets consumed.
        _prod = (_prod + Batch) & ((2u << Log2) - 1);
        _smmu.WriteRegister(SmmuRegister.CMDQ_PROD, _prod);
        return _smmu.Counters.CommandsExecuted;
    }
}

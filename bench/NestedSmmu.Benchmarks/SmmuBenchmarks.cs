using BenchmarkDotNet.Attributes;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Scenarios.Perf;

namespace NestedSmmu.Benchmarks;

/// <summary>
/// The SMMUv3 model's translation paths on a nested stream (<see cref="NestedWalkWorkload"/>):
/// 48-bit stage 1 over 48-bit stage 2, every stage-1 table address walked through stage 2. The
/// baseline is the bare memory reads of one uncached walk of the same state (24 for 4K pages),
/// measured in the same run: the machine's speed drifts, the ratio to it does not.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class TranslateBenchmarks
{
    private NestedWalkWorkload _w = null!;

    /// <summary>Granule and leaf: 4K pages (4 + 4 levels), 64K pages (3 + 3), 4K with 2 MiB blocks at both stages.</summary>
    [Params("4K", "64K", "4K-2M-block")]
    public string Shape { get; set; } = "4K";

    [GlobalSetup]
    public void Setup() => _w = Shape switch
    {
        "64K" => new NestedWalkWorkload(pageShift: 16),
        "4K-2M-block" => new NestedWalkWorkload(leafLevel: 2),
        _ => new NestedWalkWorkload(),
    };

    /// <summary>The descriptor reads of one uncached walk, no logic.</summary>
    [Benchmark(Baseline = true)]
    public ulong BareDescriptorReads() => _w.BareReads();

    /// <summary>The same reads, each address depending on the read before (a walk's latency floor; not the baseline).</summary>
    [Benchmark]
    public ulong ChainedDescriptorReads() => _w.ChainedReads();

    /// <summary>
    /// The descriptors the cold walk itself reads (fewer than the baseline's: its stage-2 path), chained:
    /// the floor under <see cref="ColdWalk"/> (not the baseline).
    /// </summary>
    [Benchmark]
    public ulong ColdWalkChainedReads() => _w.ColdWalkChainedReads();

    /// <summary>Target: at most 5 ns, 0 B.</summary>
    [Benchmark]
    public ulong TlbHitTranslate() => _w.TlbHit();

    /// <summary>Target (4K): at most 250 ns and 1.3x the baseline. IOTLB and walk caches emptied first.</summary>
    [Benchmark]
    public ulong ColdWalk() => _w.ColdWalk();

    /// <summary>Target: at most a third of the cold walk. The next leaf, upper levels in the walk caches.</summary>
    [Benchmark]
    public ulong MissUpperLevelsCached() => _w.MissUpperCached();
}

/// <summary>
/// Decode and execute of a mixed invalidation stream (<see cref="InvalidationStream"/>), per
/// command: through the SMMU's CMDQ_PROD, a guest-owned Tegra241 VCMDQ, and the emulated
/// kernel's vIOMMU invalidate (64 commands per ioctl, the kernel's own CMD_SYNCs included in the
/// time). Baseline: reading the same number of 16-byte commands from memory.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class CommandBenchmarks
{
    private const int Commands = CmdqWorkload.Batch;
    private CmdqWorkload _cmdq = null!;
    private VcmdqWorkload _vcmdq = null!;
    private ViommuInvalidateWorkload _viommu = null!;
    private SparseMemory _ring = null!;

    [GlobalSetup]
    public void Setup()
    {
        _cmdq = new CmdqWorkload();
        _vcmdq = new VcmdqWorkload();
        _viommu = new ViommuInvalidateWorkload();
        _ring = new SparseMemory();
        for (ulong i = 0; i < 2 * Commands; i++) _ring.WriteUInt64(i * 8, i);
        _vcmdq.ConsumeBatch();
        if (_vcmdq.Errored) throw new InvalidOperationException("the VCMDQ refused the stream");
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Commands)]
    public ulong BareCommandReads()
    {
        ulong acc = 0;
        for (ulong i = 0; i < 2 * Commands; i++) acc ^= _ring.ReadUInt64(i * 8);
        return acc;
    }

    /// <summary>Target: at least 30 M commands/s (at most 33 ns each).</summary>
    [Benchmark(OperationsPerInvoke = Commands)]
    public long SmmuCmdq() => _cmdq.ConsumeBatch();

    [Benchmark(OperationsPerInvoke = Commands)]
    public long GuestVcmdq() => _vcmdq.ConsumeBatch();

    [Benchmark(OperationsPerInvoke = Commands)]
    public long ViommuInvalidate()
    {
        long n = 0;
        for (int i = 0; i < Commands / ViommuInvalidateWorkload.Batch; i++) n += _viommu.InvalidateBatch();
        return n;
    }
}

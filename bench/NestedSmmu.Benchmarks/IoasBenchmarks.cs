using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using NestedSmmu.Scenarios.Perf;

namespace NestedSmmu.Benchmarks;

/// <summary>
/// The emulated kernel's IOAS at scale (<see cref="IoasWorkload"/>): 1 M separate 4 KiB
/// IOMMU_IOAS_MAPs (4 GiB) into an IOAS with a paging domain attached, and one IOMMU_IOAS_UNMAP of
/// all of them. Each operation takes seconds, so every iteration is one operation on a fresh host
/// (the monitoring strategy: no pilot, no overhead subtraction). The memory diagnoser's figure is
/// what the maps allocate, garbage included; the managed memory the mapping holds is reported by
/// `nestedsmmu bench` (GC.GetTotalMemory around the maps).
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 1, iterationCount: 5)]
public class IoasBenchmarks
{
    /// <summary>4 KiB mappings per operation: 1 M (4 GiB).</summary>
    public const int Pages = 1 << 20;

    private IoasWorkload? _w;

    [IterationSetup(Target = nameof(MapMillionPages))]
    public void FreshHost() => _w = new IoasWorkload(Pages);

    [IterationSetup(Target = nameof(UnmapMillionPages))]
    public void FreshHostMapped()
    {
        _w = new IoasWorkload(Pages);
        _w.MapAll();
    }

    [IterationCleanup]
    public void DropHost()
    {
        _w?.Dispose();
        _w = null;
    }

    /// <summary>1 M IOMMU_IOAS_MAPs of one 4 KiB page each, at consecutive IOVAs.</summary>
    [Benchmark]
    public int MapMillionPages()
    {
        _w!.MapAll();
        return _w.Pages;
    }

    /// <summary>One IOMMU_IOAS_UNMAP of the 1 M mappings.</summary>
    [Benchmark]
    public ulong UnmapMillionPages() => _w!.UnmapAll();
}

/// <summary>
/// Unmapping part of a 2 MiB / 1 GiB mapping (<see cref="HugeMappingWorkload"/>): the area is one
/// stage-2 block. iommufd refuses to split it (IOMMU_IOAS_UNMAP of one page inside gives ENOENT,
/// nothing changes), so what exists to measure is that refusal and the map + unmap of the whole area.
/// </summary>
[MemoryDiagnoser]
[MedianColumn]
public class HugeMappingBenchmarks
{
    private HugeMappingWorkload _w = null!;

    /// <summary>The area and its stage-2 block: 2 MiB or 1 GiB.</summary>
    [Params("2M", "1G")]
    public string Block { get; set; } = "2M";

    [GlobalSetup]
    public void Setup()
    {
        _w = new HugeMappingWorkload(Block == "1G" ? 1UL << 30 : 1UL << 21);
        _w.Map();
    }

    [GlobalCleanup]
    public void Cleanup() => _w.Dispose();

    /// <summary>IOMMU_IOAS_UNMAP of one 4 KiB page inside the area: -ENOENT.</summary>
    [Benchmark]
    public int RefusedPartialUnmap() => _w.UnmapPartOfIt();

    /// <summary>Unmap of the whole area (one block descriptor cleared, the TLBs invalidated), then its map again.</summary>
    [Benchmark(Baseline = true)]
    public ulong UnmapWholeThenMap()
    {
        ulong n = _w.Unmap();
        _w.Map();
        return n;
    }
}

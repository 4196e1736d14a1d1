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

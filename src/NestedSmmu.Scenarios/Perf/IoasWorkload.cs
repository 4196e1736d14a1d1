using System.Diagnostics;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;

namespace NestedSmmu.Scenarios.Perf;

/// <summary>What mapping and unmapping <see cref="IoasFigures.Pages"/> 4 KiB pages one IOMMU_IOAS_MAP each cost.</summary>
/// <param name="Pages">Mappings made (each one 4 KiB page).</param>
/// <param name="MapNs">Wall time of all the maps.</param>
/// <param name="UnmapNs">Wall time of the one unmap of everything.</param>
/// <param name="ManagedBytes">Managed heap growth while everything was mapped (GC.GetTotalMemory after a full collection): the IOAS's areas and the domain's stage-2 tables.</param>
/// <param name="AllocatedBytes">Managed bytes allocated by the maps (GC.GetAllocatedBytesForCurrentThread), garbage included.</param>
/// <param name="TablePages">Stage-2 table pages (host memory) the maps added to the domain.</param>
public sealed record IoasFigures(int Pages, double MapNs, double UnmapNs, long ManagedBytes, long AllocatedBytes, int TablePages);

/// <summary>
/// IOAS map/unmap on the emulated kernel: one device attached to a paging HWPT on the IOAS (so
/// every map also writes the domain's stage-2 tables), then <c>pages</c> separate 4 KiB mappings
/// at consecutive IOVAs, then one IOMMU_IOAS_UNMAP of the whole range. Each instance is one host,
/// good for one <see cref="MapAll"/> and one <see cref="UnmapAll"/> at a time.
/// </summary>
public sealed class IoasWorkload : IDisposable
{
    private const ulong PageBytes = 0x1000, Iova = 0x1_0000_0000;
    private readonly EmulatedIommufd _fd;
    private readonly HostMemoryRegion _memory;
    private readonly IoasId _ioas;
    private readonly EmulatedHost _host;

    /// <summary>A host (the embedded <c>grace</c> profile) with <paramref name="pages"/> pages of memory, an IOAS and gpu0 attached to a paging domain on it.</summary>
    public IoasWorkload(int pages)
    {
        Pages = pages;
        _host = new EmulatedHost(HostProfile.LoadEmbedded("grace"), new EmulatedHostOptions());
        _fd = _host.Open();
        _memory = _fd.AllocateHostMemory((ulong)pages * PageBytes, "ioas-bench");
        _ioas = _fd.AllocIoas();
        DeviceId dev = _fd.BindDevice("gpu0");
        _fd.AttachDevice(dev, _fd.AllocPagingHwpt(dev, _ioas, default));
    }

    /// <summary>Mappings per <see cref="MapAll"/>.</summary>
    public int Pages { get; }

    /// <summary>Host memory the kernel and the VMM hold now (the stage-2 tables grow it as pages are mapped).</summary>
    public ulong HostMemoryAllocated => _host.Diagnostics.HostMemoryAllocated;

    /// <summary>One IOMMU_IOAS_MAP per 4 KiB page, at consecutive IOVAs.</summary>
    public void MapAll()
    {
        for (int i = 0; i < Pages; i++)
            _fd.MapIoas(_ioas, _memory, (ulong)i * PageBytes, PageBytes, Iova + (ulong)i * PageBytes);
    }

    /// <summary>One IOMMU_IOAS_UNMAP of the whole range; returns the bytes unmapped.</summary>
    public ulong UnmapAll()
    {
        ulong unmapped = _fd.UnmapIoas(_ioas, Iova, (ulong)Pages * PageBytes);
        if (unmapped != (ulong)Pages * PageBytes) throw new InvalidOperationException($"unmapped {unmapped} bytes of {(ulong)Pages * PageBytes}");
        return unmapped;
    }

    public void Dispose() => _fd.Dispose();

    /// <summary>Maps and unmaps <paramref name="pages"/> pages once, timing each and measuring the managed memory the mapping holds.</summary>
    public static IoasFigures Run(int pages)
    {
        using var w = new IoasWorkload(pages);
        ulong hostBefore = w.HostMemoryAllocated;
        long before = GC.GetTotalMemory(forceFullCollection: true);
        long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        long start = Stopwatch.GetTimestamp();
        w.MapAll();
        double mapNs = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        long managed = GC.GetTotalMemory(forceFullCollection: true) - before;
        int tablePages = (int)((w.HostMemoryAllocated - hostBefore) / PageBytes);
        start = Stopwatch.GetTimestamp();
        w.UnmapAll();
        double unmapNs = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
        return new IoasFigures(pages, mapNs, unmapNs, managed, allocated, tablePages);
    }
}

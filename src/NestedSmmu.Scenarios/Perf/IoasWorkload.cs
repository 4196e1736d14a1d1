using System.Diagnostics;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;

namespace NestedSmmu.Scenarios.Perf;

/// <summary>What mapping and unmapping <see cref="IoasFigures.Pages"/> 4 KiB pages one IOMMU_IOAS_MAP each cost.</summary>
/// <param name="Pages">Mappings made (each one 4 KiB page).</param>
/// <param name="MapNs">Wall time of all the maps.</param>
/// <param name="UnmapNs">Wall time of the one unmap of everything.</param>
/// <param name="ManagedBytes">Managed heap growth while everything was mapped (after a full GC): the IOAS's areas and the domain's tables (stage 1, as arm-smmu-v3 makes a paging HWPT without flags).</param>
public sealed record IoasFigures(int Pages, double MapNs, double UnmapNs, long ManagedBytes);

/// <summary>
/// IOAS map/unmap on the emulated kernel: one device attached to a paging HWPT on the IOAS (so
/// every map also writes the domain's stage-1 tables), then <c>pages</c> separate 4 KiB mappings
/// at consecutive IOVAs, then one IOMMU_IOAS_UNMAP of the whole range.
/// </summary>
public static class IoasWorkload
{
    private const ulong PageBytes = 0x1000, Iova = 0x1_0000_0000;

    public static IoasFigures Run(int pages)
    {
        var host = new EmulatedHost(HostProfile.LoadEmbedded("grace"), new EmulatedHostOptions());
        using var fd = host.Open();
        HostMemoryRegion memory = fd.AllocateHostMemory((ulong)pages * PageBytes, "ioas-bench");
        IoasId ioas = fd.AllocIoas();
        DeviceId dev = fd.BindDevice("gpu0");
        fd.AttachDevice(dev, fd.AllocPagingHwpt(dev, ioas, default));
        long before = GC.GetTotalMemory(forceFullCollection: true);
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < pages; i++)
            fd.MapIoas(ioas, memory, (ulong)i * PageBytes, PageBytes, Iova + (ulong)i * PageBytes);
        double mapNs = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
        long managed = GC.GetTotalMemory(forceFullCollection: true) - before;
        start = Stopwatch.GetTimestamp();
        ulong unmapped = fd.UnmapIoas(ioas, Iova, (ulong)pages * PageBytes);
        double unmapNs = Stopwatch.GetElapsedTime(start).TotalNanoseconds;
        if (unmapped != (ulong)pages * PageBytes) throw new InvalidOperationException($"unmapped {unmapped} bytes of {(ulong)pages * PageBytes}");
        return new IoasFigures(pages, mapNs, unmapNs, managed);
    }
}

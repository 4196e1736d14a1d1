using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Scenarios.Perf;

/// <summary>
/// IOAS mappings the domain's stage 2 holds as one block: a 2 MiB or a 1 GiB area whose IOVA and
/// host PA are aligned to it. What iommufd allows when a VMM asks to unmap part of it is the
/// refusal (IOMMU_IOAS_UNMAP fails with ENOENT, nothing changes: iopt_unmap_iova_range never splits
/// an area); what it allows on the whole area is its map and its unmap, each one block descriptor.
/// </summary>
public sealed class HugeMappingWorkload : IDisposable
{
    private const ulong Page = 0x1000;
    private readonly EmulatedIommufd _fd;
    private readonly HostMemoryRegion _memory;
    private readonly ulong _offset;
    private readonly IoasId _ioas;

    /// <param name="blockBytes">The area's size and alignment: 2 MiB or 1 GiB (the stage-2 block sizes of the 4 KiB granule).</param>
    public HugeMappingWorkload(ulong blockBytes)
    {
        if (blockBytes is not (1UL << 21 or 1UL << 30)) throw new ArgumentOutOfRangeException(nameof(blockBytes), "2 MiB or 1 GiB");
        BlockBytes = blockBytes;
        var host = new EmulatedHost(HostProfile.LoadEmbedded("grace"), new EmulatedHostOptions());
        _fd = host.Open();
        // Host memory is page aligned; take twice the block and map its aligned half.
        _memory = _fd.AllocateHostMemory(2 * blockBytes, "huge-bench");
        ulong pa = ((EmulatedHostMemoryRegion)_memory).HostPhysicalAddress;
        _offset = ((pa + blockBytes - 1) & ~(blockBytes - 1)) - pa;
        _ioas = _fd.AllocIoas();
        DeviceId dev = _fd.BindDevice("gpu0");
        _fd.AttachDevice(dev, _fd.AllocPagingHwpt(dev, _ioas, default));
        Iova = 4 * blockBytes;
    }

    public ulong BlockBytes { get; }

    /// <summary>The area's IOVA.</summary>
    public ulong Iova { get; }

    /// <summary>Maps the whole area (one block in the domain).</summary>
    public void Map() => _fd.MapIoas(_ioas, _memory, _offset, BlockBytes, Iova);

    /// <summary>Unmaps the whole area; returns the bytes unmapped.</summary>
    public ulong Unmap() => _fd.UnmapIoas(_ioas, Iova, BlockBytes);

    /// <summary>
    /// IOMMU_IOAS_UNMAP of one 4 KiB page in the middle of the mapped area, through the raw ioctl
    /// (as a VMM's ioctl(2) sees it, no exception): returns the negative errno (-ENOENT).
    /// </summary>
    public int UnmapPartOfIt()
    {
        IommuIoasUnmap a = IommufdMarshal.IoasUnmap(_ioas, Iova + BlockBytes / 2, Page);
        return _fd.Ioctl((uint)IommufdIoctl.IoasUnmap, IommufdMarshal.AsBytes(ref a));
    }

    public void Dispose() => _fd.Dispose();
}

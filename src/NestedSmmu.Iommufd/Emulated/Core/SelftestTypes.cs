using System.Buffers.Binary;
using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The type values of the kernel's iommufd selftest ("mock") driver (drivers/iommu/iommufd/
/// drivers/iommu/iommufd/iommufd_test.h). The emulated kernel accepts them on SMMUv3 devices only when the
/// host is built with <see cref="EmulatedHostOptions.EnableSelftestTypes"/> (the counterpart of
/// CONFIG_IOMMUFD_TEST): a selftest vIOMMU is an SMMUv3 vIOMMU that also echoes its driver data,
/// exports one mmap-able page holding it, and takes HW queues of the selftest type, so the
/// selftest scenarios that need those features can run against the emulated kernel.
/// </summary>
public static class SelftestTypes
{
    /// <summary>IOMMU_VIOMMU_TYPE_SELFTEST.</summary>
    public const uint ViommuTypeSelftest = 0xdeadbeef;
    /// <summary>IOMMU_HW_QUEUE_TYPE_SELFTEST.</summary>
    public const uint HwQueueTypeSelftest = 0xdeadbeef;
    /// <summary>IOMMU_VEVENTQ_TYPE_SELFTEST.</summary>
    public const uint VeventqTypeSelftest = 0xbeefbeef;
    /// <summary>IOMMU_TEST_HW_QUEUE_MAX: selftest HW queue indexes are 0 and 1.</summary>
    public const uint HwQueueMax = 2;

    /// <summary>Bytes of <c>struct iommu_viommu_selftest { u32 in_data; u32 out_data; u64 out_mmap_offset; u64 out_mmap_length; }</c>.</summary>
    public const int ViommuDataSize = 24;
    /// <summary>offsetofend(struct iommu_viommu_selftest, out_data): the shortest data the driver takes.</summary>
    public const int ViommuDataMinSize = 8;

    /// <summary>The selftest vIOMMU exports two pages for mmap (the mock allocates an order-1 page block).</summary>
    public const int ViommuMmapPages = 2;

    /// <summary>Encodes <c>struct iommu_viommu_selftest</c> with <paramref name="inData"/>.</summary>
    public static byte[] ViommuData(uint inData)
    {
        var b = new byte[ViommuDataSize];
        BinaryPrimitives.WriteUInt32LittleEndian(b, inData);
        return b;
    }

    /// <summary>Decodes the driver's answer: (out_data, out_mmap_offset, out_mmap_length).</summary>
    public static (uint OutData, ulong MmapOffset, ulong MmapLength) ParseViommuData(ReadOnlySpan<byte> data)
    {
        Span<byte> b = stackalloc byte[ViommuDataSize];
        b.Clear();
        data[..Math.Min(data.Length, ViommuDataSize)].CopyTo(b);
        return (BinaryPrimitives.ReadUInt32LittleEndian(b[4..]), BinaryPrimitives.ReadUInt64LittleEndian(b[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(b[16..]));
    }
}

/// <summary>
/// The kernel-internal selftest vIOMMU (see <see cref="SelftestTypes"/>), modelled on the mock
/// driver's mock_viommu_init and mock_hw_queue_*: an <see cref="ArmVsmmu"/> plus a data echo, a
/// two-page mmap region and selftest HW queues that must be allocated in ascending index order.
/// </summary>
internal sealed class SelftestVsmmu : ArmVsmmu
{
    private readonly HwQueueObject?[] _queues = new HwQueueObject?[SelftestTypes.HwQueueMax];
    private ulong _pagePhysicalAddress;
    private ulong? _mmapOffset;

    private SelftestVsmmu(ArmSmmuDevice smmu, PagingDomain parent, ushort vmid) : base(smmu, parent, vmid) { }

    /// <summary>Host PA of each queue's memory, by index (diagnostics and tests).</summary>
    public ulong? QueueBase(uint index) => index < _queues.Length ? _queues[index]?.BasePhysicalAddress : null;

    public static Errno TryCreate(ArmSmmuDevice smmu, PagingDomain parent, out SelftestVsmmu? vsmmu)
    {
        vsmmu = null;
        if (!Reserve(smmu, parent, out ushort vmid, out Errno e)) return e;
        vsmmu = new SelftestVsmmu(smmu, parent, vmid);
        vsmmu.Register();
        return Errno.None;
    }

    /// <summary>
    /// mock_viommu_init's data half, run once the core object exists: with data, echo in_data to
    /// out_data, put in_data at offset 0 of two fresh pages and export them for mmap.
    /// </summary>
    public Errno InitData(in UserData? data)
    {
        if (data is not { } d) return Errno.None;
        Span<byte> arg = stackalloc byte[SelftestTypes.ViommuDataSize];
        Errno e = Core.Context.Copy.StructFromUser(d, SelftestTypes.ViommuTypeSelftest, arg, SelftestTypes.ViommuDataMinSize);
        if (e != Errno.None) return e;
        uint inData = BinaryPrimitives.ReadUInt32LittleEndian(arg);
        const ulong length = SelftestTypes.ViommuMmapPages * HostMemoryAllocator.PageSize;
        ulong? page = Smmu.Host.Allocator.TryAllocate(length, length, $"selftest vIOMMU {Core.Id} pages");
        if (page is null) return Errno.ENOMEM;
        _pagePhysicalAddress = page.Value;
        Smmu.Host.Memory.WriteUInt32(_pagePhysicalAddress, inData);
        _mmapOffset = Core.Context.AllocMmap(Core, new HostMemoryMmio(Smmu.Host, _pagePhysicalAddress, length), length);
        BinaryPrimitives.WriteUInt32LittleEndian(arg[4..], inData);
        BinaryPrimitives.WriteUInt64LittleEndian(arg[8..], _mmapOffset.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(arg[16..], length);
        return Core.Context.Copy.StructToUser(d, SelftestTypes.ViommuTypeSelftest, arg, SelftestTypes.ViommuDataMinSize);
    }

    public override void Destroy()
    {
        if (_pagePhysicalAddress != 0) Smmu.Host.Allocator.Free(_pagePhysicalAddress);
        base.Destroy();
    }

    public override ulong GetHwQueueSize(uint type) => type == SelftestTypes.HwQueueTypeSelftest ? 1UL : 0UL;

    /// <summary>mock_hw_queue_init_phys: index below 2 (EINVAL), free (EEXIST), the previous index allocated (EIO).</summary>
    public override Errno HwQueueInitPhys(HwQueueObject queue, uint index, ulong basePhysicalAddress)
    {
        if (index >= SelftestTypes.HwQueueMax) return Errno.EINVAL;
        if (_queues[index] is not null) return Errno.EEXIST;
        HwQueueObject? previous = null;
        if (index > 0)
        {
            previous = _queues[index - 1];
            if (previous is null) return Errno.EIO;
        }
        _queues[index] = queue;
        if (previous is not null)
        {
            // iommufd_hw_queue_depend: the lower index stays busy while this one exists.
            queue.Previous = previous;
            previous.Users++;
        }
        return Errno.None;
    }

    public override void HwQueueDestroy(HwQueueObject queue)
    {
        if (queue.Index < _queues.Length && _queues[queue.Index] == queue) _queues[queue.Index] = null;
    }
}

/// <summary>A page of host memory exported through mmap of the iommufd, seen as registers.</summary>
internal sealed class HostMemoryMmio(EmulatedHost host, ulong physicalAddress, ulong size) : IMmioDevice
{
    public ulong Size { get; } = size;

    public ulong Read(ulong offset, int width)
    {
        if (!Valid(offset, width)) return 0;
        return width == sizeof(ulong) ? host.Memory.ReadUInt64(physicalAddress + offset) : host.Memory.ReadUInt32(physicalAddress + offset);
    }

    public void Write(ulong offset, int width, ulong value)
    {
        if (!Valid(offset, width)) return;
        if (width == sizeof(ulong)) host.Memory.WriteUInt64(physicalAddress + offset, value);
        else host.Memory.WriteUInt32(physicalAddress + offset, (uint)value);
    }

    private bool Valid(ulong offset, int width) =>
        width is sizeof(uint) or sizeof(ulong) && (offset & (ulong)(width - 1)) == 0 && offset <= Size - (ulong)width;
}

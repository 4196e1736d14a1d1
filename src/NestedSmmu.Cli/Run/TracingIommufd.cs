using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Cli.Run;

/// <summary>
/// The VM's iommufd with `run -v`: every call goes through unchanged and is traced as the ioctl it
/// is (iommufd.h / vfio.h names), with its result or errno.
/// </summary>
internal sealed class TracingIommufd(IIommufd inner, Action<string> trace) : IIommufd
{
    public string Description => inner.Description;

    public HostMemoryRegion AllocateHostMemory(ulong length, string name) =>
        Call($"mmap anonymous 0x{length:X} ({name})", () => inner.AllocateHostMemory(length, name));

    public IoasId AllocIoas() => Call("IOMMU_IOAS_ALLOC", inner.AllocIoas);

    public ulong MapIoas(IoasId ioas, HostMemoryRegion memory, ulong memoryOffset, ulong length, ulong? iova, IoasMapFlags flags) =>
        Call($"IOMMU_IOAS_MAP ioas {ioas} len 0x{length:X} iova {(iova is { } i ? $"0x{i:X}" : "any")}",
            () => inner.MapIoas(ioas, memory, memoryOffset, length, iova, flags));

    public ulong UnmapIoas(IoasId ioas, ulong iova, ulong length) =>
        Call($"IOMMU_IOAS_UNMAP ioas {ioas} iova 0x{iova:X} len 0x{length:X}", () => inner.UnmapIoas(ioas, iova, length));

    public IovaRanges GetIovaRanges(IoasId ioas) => Call($"IOMMU_IOAS_IOVA_RANGES ioas {ioas}", () => inner.GetIovaRanges(ioas));

    public DeviceId BindDevice(string device) => Call($"VFIO_DEVICE_BIND_IOMMUFD {device}", () => inner.BindDevice(device));

    public void UnbindDevice(DeviceId device) => Call($"close vfio cdev of dev {device}", () => { inner.UnbindDevice(device); return "ok"; });

    public ObjectId AttachDevice(DeviceId device, ObjectId pt) =>
        Call($"VFIO_DEVICE_ATTACH_IOMMUFD_PT dev {device} pt {pt}", () => inner.AttachDevice(device, pt));

    public void DetachDevice(DeviceId device) =>
        Call($"VFIO_DEVICE_DETACH_IOMMUFD_PT dev {device}", () => { inner.DetachDevice(device); return "ok"; });

    public HwInfo GetHwInfo(DeviceId device, HwInfoType? type, uint? dataLength) =>
        Call($"IOMMU_GET_HW_INFO dev {device}{(type is { } t ? $" type {t}" : "")}", () => inner.GetHwInfo(device, type, dataLength));

    public HwptId AllocHwpt(DeviceId device, ObjectId pt, HwptAllocFlags flags, HwptDataType dataType, ReadOnlySpan<byte> data, uint? faultId)
    {
        byte[] copy = data.ToArray();
        return Call($"IOMMU_HWPT_ALLOC dev {device} pt {pt} flags {flags} data {dataType}",
            () => inner.AllocHwpt(device, pt, flags, dataType, copy, faultId));
    }

    public InvalidateResult Invalidate(ObjectId target, HwptInvalidateDataType dataType, uint entryLength, uint entryCount, ReadOnlySpan<byte> entries)
    {
        byte[] copy = entries.ToArray();
        return Call($"IOMMU_HWPT_INVALIDATE {target} {dataType} x{entryCount}",
            () => inner.Invalidate(target, dataType, entryLength, entryCount, copy));
    }

    public ViommuAllocation AllocViommu(DeviceId device, HwptId nestParent, ViommuType type, ReadOnlySpan<byte> data, uint flags)
    {
        byte[] copy = data.ToArray();
        return Call($"IOMMU_VIOMMU_ALLOC dev {device} parent {nestParent} type {type}",
            () => inner.AllocViommu(device, nestParent, type, copy, flags));
    }

    public VdeviceId AllocVdevice(ViommuId viommu, DeviceId device, ulong virtId) =>
        Call($"IOMMU_VDEVICE_ALLOC viommu {viommu} dev {device} virt_id 0x{virtId:X}", () => inner.AllocVdevice(viommu, device, virtId));

    public IVeventQueue AllocVeventq(ViommuId viommu, VeventqType type, uint depth, uint flags) =>
        Call($"IOMMU_VEVENTQ_ALLOC viommu {viommu} type {type} depth {depth}", () => inner.AllocVeventq(viommu, type, depth, flags));

    public HwQueueId AllocHwQueue(ViommuId viommu, HwQueueType type, uint index, ulong nestingParentIova, ulong length, uint flags) =>
        Call($"IOMMU_HW_QUEUE_ALLOC viommu {viommu} {type} index {index} iova 0x{nestingParentIova:X} len 0x{length:X}",
            () => inner.AllocHwQueue(viommu, type, index, nestingParentIova, length, flags));

    public IMmioMapping Mmap(ulong offset, ulong length) => Call($"mmap iommufd offset 0x{offset:X} len 0x{length:X}", () => inner.Mmap(offset, length));

    public void Destroy(ObjectId id) => Call($"IOMMU_DESTROY {id}", () => { inner.Destroy(id); return "ok"; });

    public void Dispose() => inner.Dispose();

    private T Call<T>(string what, Func<T> call)
    {
        try
        {
            T result = call();
            trace($"ioctl {what} = {result}");
            return result;
        }
        catch (IommufdException e)
        {
            trace($"ioctl {what} failed: {e.Errno}");
            throw;
        }
    }
}

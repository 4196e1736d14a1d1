using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Vmm.Tests.VSmmu;

/// <summary>
/// The real (emulated) iommufd with a journal: every call goes through unchanged and is
/// recorded as one line (<c>Destroy 12</c>, <c>AttachDevice 3 -> 9</c>), so tests can check the
/// order in which the vSMMU builds and tears down host objects.
/// </summary>
internal sealed class RecordingIommufd(IIommufd inner) : IIommufd
{
    public List<string> Calls { get; } = new();

    public IIommufd Inner => inner;

    public string Description => inner.Description;

    public HostMemoryRegion AllocateHostMemory(ulong length, string name) => inner.AllocateHostMemory(length, name);

    public IoasId AllocIoas() => Record("AllocIoas", inner.AllocIoas());

    public ulong MapIoas(IoasId ioas, HostMemoryRegion memory, ulong memoryOffset, ulong length, ulong? iova, IoasMapFlags flags) =>
        inner.MapIoas(ioas, memory, memoryOffset, length, iova, flags);

    public ulong UnmapIoas(IoasId ioas, ulong iova, ulong length) => inner.UnmapIoas(ioas, iova, length);

    public IovaRanges GetIovaRanges(IoasId ioas) => inner.GetIovaRanges(ioas);

    public DeviceId BindDevice(string device) => inner.BindDevice(device);

    public void UnbindDevice(DeviceId device) => inner.UnbindDevice(device);

    public ObjectId AttachDevice(DeviceId device, ObjectId pt)
    {
        Calls.Add($"AttachDevice {device} -> {pt}");
        return inner.AttachDevice(device, pt);
    }

    public void DetachDevice(DeviceId device)
    {
        Calls.Add($"DetachDevice {device}");
        inner.DetachDevice(device);
    }

    public HwInfo GetHwInfo(DeviceId device, HwInfoType? type, uint? dataLength) => inner.GetHwInfo(device, type, dataLength);

    public HwptId AllocHwpt(DeviceId device, ObjectId pt, HwptAllocFlags flags, HwptDataType dataType, ReadOnlySpan<byte> data, uint? faultId) =>
        Record($"AllocHwpt {dataType} on {pt}", inner.AllocHwpt(device, pt, flags, dataType, data, faultId));

    public InvalidateResult Invalidate(ObjectId target, HwptInvalidateDataType dataType, uint entryLength, uint entryCount, ReadOnlySpan<byte> entries)
    {
        Calls.Add($"Invalidate {target} x{entryCount}");
        return inner.Invalidate(target, dataType, entryLength, entryCount, entries);
    }

    public ViommuAllocation AllocViommu(DeviceId device, HwptId nestParent, ViommuType type, ReadOnlySpan<byte> data, uint flags)
    {
        ViommuAllocation v = inner.AllocViommu(device, nestParent, type, data, flags);
        Calls.Add($"AllocViommu {type} on {nestParent} = {v.Id}");
        return v;
    }

    public VdeviceId AllocVdevice(ViommuId viommu, DeviceId device, ulong virtId) =>
        Record($"AllocVdevice 0x{virtId:X}", inner.AllocVdevice(viommu, device, virtId));

    public IVeventQueue AllocVeventq(ViommuId viommu, VeventqType type, uint depth, uint flags)
    {
        IVeventQueue q = inner.AllocVeventq(viommu, type, depth, flags);
        Calls.Add($"AllocVeventq depth {depth} = {q.Id}");
        return q;
    }

    public HwQueueId AllocHwQueue(ViommuId viommu, HwQueueType type, uint index, ulong nestingParentIova, ulong length, uint flags) =>
        inner.AllocHwQueue(viommu, type, index, nestingParentIova, length, flags);

    public IMmioMapping Mmap(ulong offset, ulong length) => inner.Mmap(offset, length);

    public void Destroy(ObjectId id)
    {
        Calls.Add($"Destroy {id}");
        inner.Destroy(id);
    }

    public void Dispose() => inner.Dispose();

    private T Record<T>(string what, T id)
    {
        Calls.Add($"{what} = {id}");
        return id;
    }
}

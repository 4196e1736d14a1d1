using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Uapi;

/// <summary>
/// Builds the exact argument struct of each ioctl from typed arguments, parses the outputs,
/// and describes the arguments for error messages. No system calls here: the tests check the
/// bytes these produce. Every struct's <c>size</c>/<c>argsz</c> is the full struct size, and
/// user pointers are passed in as numbers because the caller pins what they point to.
/// </summary>
public static class IommufdMarshal
{
    /// <summary>sizeof(T) as the kernel expects it in <c>size</c>.</summary>
    public static uint SizeOf<T>() where T : unmanaged => (uint)Unsafe.SizeOf<T>();

    /// <summary>The bytes of an argument struct (a view, not a copy).</summary>
    public static Span<byte> AsBytes<T>(ref T value) where T : unmanaged =>
        MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref value, 1));

    /// <summary>A copy of the bytes of an argument struct.</summary>
    public static byte[] ToBytes<T>(T value) where T : unmanaged => AsBytes(ref value).ToArray();

    // ------------------------------------------------------------------ builders

    /// <summary>IOMMU_DESTROY of any object.</summary>
    public static IommuDestroy Destroy(ObjectId id) =>
        new() { Size = SizeOf<IommuDestroy>(), Id = id.Value };

    /// <summary>IOMMU_IOAS_ALLOC (flags 0).</summary>
    public static IommuIoasAlloc IoasAlloc() =>
        new() { Size = SizeOf<IommuIoasAlloc>() };

    /// <summary>IOMMU_IOAS_MAP; FIXED_IOVA is the caller's to set in <paramref name="flags"/>.</summary>
    public static IommuIoasMap IoasMap(IoasId ioas, IoasMapFlags flags, ulong userVa, ulong length, ulong iova) =>
        new() { Size = SizeOf<IommuIoasMap>(), Flags = (uint)flags, IoasId = ioas.Value, UserVa = userVa, Length = length, Iova = iova };

    /// <summary>IOMMU_IOAS_UNMAP of <c>[iova, iova + length)</c>.</summary>
    public static IommuIoasUnmap IoasUnmap(IoasId ioas, ulong iova, ulong length) =>
        new() { Size = SizeOf<IommuIoasUnmap>(), IoasId = ioas.Value, Iova = iova, Length = length };

    /// <summary>IOMMU_IOAS_IOVA_RANGES with room for <paramref name="capacity"/> ranges at <paramref name="rangesUptr"/>.</summary>
    public static IommuIoasIovaRanges IoasIovaRanges(IoasId ioas, uint capacity, ulong rangesUptr) =>
        new() { Size = SizeOf<IommuIoasIovaRanges>(), IoasId = ioas.Value, NumIovas = capacity, AllowedIovas = rangesUptr };

    /// <summary>IOMMU_GET_HW_INFO; a requested type sets INPUT_TYPE.</summary>
    public static IommuHwInfo HwInfo(DeviceId device, HwInfoType? type, uint dataLength, ulong dataUptr) => new()
    {
        Size = SizeOf<IommuHwInfo>(),
        Flags = type.HasValue ? (uint)HwInfoFlags.InputType : 0,
        DevId = device.Value,
        DataLen = dataLength,
        DataUptr = dataUptr,
        InDataType = (uint)(type ?? HwInfoType.Default),
    };

    /// <summary>IOMMU_HWPT_ALLOC; a fault id sets FAULT_ID_VALID.</summary>
    public static IommuHwptAlloc HwptAlloc(DeviceId device, ObjectId pt, HwptAllocFlags flags, HwptDataType dataType,
        uint dataLength, ulong dataUptr, uint? faultId) => new()
    {
        Size = SizeOf<IommuHwptAlloc>(),
        Flags = (uint)(flags | (faultId.HasValue ? HwptAllocFlags.FaultIdValid : 0)),
        DevId = device.Value,
        PtId = pt.Value,
        DataType = (uint)dataType,
        DataLen = dataLength,
        DataUptr = dataUptr,
        FaultId = faultId ?? 0,
    };

    /// <summary>IOMMU_HWPT_INVALIDATE of <paramref name="entryCount"/> entries at <paramref name="dataUptr"/>.</summary>
    public static IommuHwptInvalidate HwptInvalidate(ObjectId target, HwptInvalidateDataType dataType, uint entryLength,
        uint entryCount, ulong dataUptr) => new()
    {
        Size = SizeOf<IommuHwptInvalidate>(),
        HwptId = target.Value,
        DataUptr = dataUptr,
        DataType = (uint)dataType,
        EntryLen = entryLength,
        EntryNum = entryCount,
    };

    /// <summary>IOMMU_VIOMMU_ALLOC with in/out driver data at <paramref name="dataUptr"/>.</summary>
    public static IommuViommuAlloc ViommuAlloc(DeviceId device, HwptId nestParent, ViommuType type, uint flags,
        uint dataLength, ulong dataUptr) => new()
    {
        Size = SizeOf<IommuViommuAlloc>(),
        Flags = flags,
        Type = (uint)type,
        DevId = device.Value,
        HwptId = nestParent.Value,
        DataLen = dataLength,
        DataUptr = dataUptr,
    };

    /// <summary>IOMMU_VDEVICE_ALLOC.</summary>
    public static IommuVdeviceAlloc VdeviceAlloc(ViommuId viommu, DeviceId device, ulong virtId) =>
        new() { Size = SizeOf<IommuVdeviceAlloc>(), ViommuId = viommu.Value, DevId = device.Value, VirtId = virtId };

    /// <summary>IOMMU_VEVENTQ_ALLOC.</summary>
    public static IommuVeventqAlloc VeventqAlloc(ViommuId viommu, VeventqType type, uint depth, uint flags) => new()
    {
        Size = SizeOf<IommuVeventqAlloc>(),
        Flags = flags,
        ViommuId = viommu.Value,
        Type = (uint)type,
        VeventqDepth = depth,
    };

    /// <summary>IOMMU_HW_QUEUE_ALLOC.</summary>
    public static IommuHwQueueAlloc HwQueueAlloc(ViommuId viommu, HwQueueType type, uint index, ulong nestingParentIova,
        ulong length, uint flags) => new()
    {
        Size = SizeOf<IommuHwQueueAlloc>(),
        Flags = flags,
        ViommuId = viommu.Value,
        Type = (uint)type,
        Index = index,
        NestingParentIova = nestingParentIova,
        Length = length,
    };

    // ------------------------------------------------------------------ outputs

    /// <summary>The ranges and alignment from a completed IOMMU_IOAS_IOVA_RANGES.</summary>
    public static IovaRanges ParseIovaRanges(in IommuIoasIovaRanges result, ReadOnlySpan<IommuIovaRange> ranges)
    {
        int count = (int)Math.Min(result.NumIovas, (uint)ranges.Length);
        var list = new IovaRange[count];
        for (int i = 0; i < count; i++) list[i] = new IovaRange(ranges[i].Start, ranges[i].Last);
        return new IovaRanges(list, result.OutIovaAlignment);
    }

    /// <summary>The hw_info from a completed IOMMU_GET_HW_INFO and the buffer it filled.</summary>
    public static HwInfo ParseHwInfo(in IommuHwInfo result, ReadOnlySpan<byte> buffer)
    {
        int copied = (int)Math.Min(result.DataLen, (uint)buffer.Length);
        return new HwInfo((HwInfoType)result.OutDataType, buffer[..copied].ToArray(), result.DataLen,
            (HwCapabilities)result.OutCapabilities, result.OutMaxPasidLog2);
    }

    // ------------------------------------------------------------------ descriptions for messages

    /// <summary>The arguments as a message fragment.</summary>
    public static string Describe(in IommuIoasMap a) =>
        $"ioas_id {a.IoasId}, flags 0x{a.Flags:X} ({(IoasMapFlags)a.Flags}), user_va 0x{a.UserVa:X}, length 0x{a.Length:X}, iova 0x{a.Iova:X}";

    /// <summary>The arguments as a message fragment.</summary>
    public static string Describe(in IommuIoasUnmap a) => $"ioas_id {a.IoasId}, iova 0x{a.Iova:X}, length 0x{a.Length:X}";

    /// <summary>The arguments as a message fragment.</summary>
    public static string Describe(in IommuHwInfo a) =>
        $"dev_id {a.DevId}, flags 0x{a.Flags:X}, in_data_type {(HwInfoType)a.InDataType} ({a.InDataType}), data_len {a.DataLen}";

    /// <summary>The arguments as a message fragment.</summary>
    public static string Describe(in IommuHwptAlloc a) =>
        $"dev_id {a.DevId}, pt_id {a.PtId}, flags 0x{a.Flags:X} ({(HwptAllocFlags)a.Flags}), data_type {(HwptDataType)a.DataType} ({a.DataType}), data_len {a.DataLen}, fault_id {a.FaultId}";

    /// <summary>The arguments as a message fragment.</summary>
    public static string Describe(in IommuViommuAlloc a) =>
        $"dev_id {a.DevId}, hwpt_id {a.HwptId}, type {(ViommuType)a.Type} ({a.Type}), flags 0x{a.Flags:X}, data_len {a.DataLen}";

    /// <summary>The arguments as a message fragment.</summary>
    public static string Describe(in IommuVdeviceAlloc a) => $"viommu_id {a.ViommuId}, dev_id {a.DevId}, virt_id 0x{a.VirtId:X}";

    /// <summary>The arguments as a message fragment.</summary>
    public static string Describe(in IommuVeventqAlloc a) =>
        $"viommu_id {a.ViommuId}, type {(VeventqType)a.Type} ({a.Type}), depth {a.VeventqDepth}, flags 0x{a.Flags:X}";

    /// <summary>The arguments as a message fragment.</summary>
    public static string Describe(in IommuHwQueueAlloc a) =>
        $"viommu_id {a.ViommuId}, type {(HwQueueType)a.Type} ({a.Type}), index {a.Index}, nesting_parent_iova 0x{a.NestingParentIova:X}, length 0x{a.Length:X}, flags 0x{a.Flags:X}";
}

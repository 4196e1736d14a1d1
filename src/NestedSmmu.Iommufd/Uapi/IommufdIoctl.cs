namespace NestedSmmu.Iommufd.Uapi;

/// <summary>
/// ioctl request numbers of /dev/iommu. Every command is <c>_IO(';', nr)</c>: no size or
/// direction bits, so the value is <c>0x3B00 | nr</c> (the struct's own <c>size</c> field
/// carries the length instead).
/// </summary>
public enum IommufdIoctl : uint
{
    [UapiName("IOMMU_DESTROY")] Destroy = IommufdIoctls.Base | 0x80,
    [UapiName("IOMMU_IOAS_ALLOC")] IoasAlloc = IommufdIoctls.Base | 0x81,
    [UapiName("IOMMU_IOAS_ALLOW_IOVAS")] IoasAllowIovas = IommufdIoctls.Base | 0x82,
    [UapiName("IOMMU_IOAS_COPY")] IoasCopy = IommufdIoctls.Base | 0x83,
    [UapiName("IOMMU_IOAS_IOVA_RANGES")] IoasIovaRanges = IommufdIoctls.Base | 0x84,
    [UapiName("IOMMU_IOAS_MAP")] IoasMap = IommufdIoctls.Base | 0x85,
    [UapiName("IOMMU_IOAS_UNMAP")] IoasUnmap = IommufdIoctls.Base | 0x86,
    [UapiName("IOMMU_OPTION")] Option = IommufdIoctls.Base | 0x87,
    [UapiName("IOMMU_VFIO_IOAS")] VfioIoas = IommufdIoctls.Base | 0x88,
    [UapiName("IOMMU_HWPT_ALLOC")] HwptAlloc = IommufdIoctls.Base | 0x89,
    [UapiName("IOMMU_GET_HW_INFO")] GetHwInfo = IommufdIoctls.Base | 0x8A,
    [UapiName("IOMMU_HWPT_SET_DIRTY_TRACKING")] HwptSetDirtyTracking = IommufdIoctls.Base | 0x8B,
    [UapiName("IOMMU_HWPT_GET_DIRTY_BITMAP")] HwptGetDirtyBitmap = IommufdIoctls.Base | 0x8C,
    [UapiName("IOMMU_HWPT_INVALIDATE")] HwptInvalidate = IommufdIoctls.Base | 0x8D,
    [UapiName("IOMMU_FAULT_QUEUE_ALLOC")] FaultQueueAlloc = IommufdIoctls.Base | 0x8E,
    [UapiName("IOMMU_IOAS_MAP_FILE")] IoasMapFile = IommufdIoctls.Base | 0x8F,
    [UapiName("IOMMU_VIOMMU_ALLOC")] ViommuAlloc = IommufdIoctls.Base | 0x90,
    [UapiName("IOMMU_VDEVICE_ALLOC")] VdeviceAlloc = IommufdIoctls.Base | 0x91,
    // 0x92 is IOMMU_IOAS_CHANGE_PROCESS, whose macro the reference vectors do not list.
    [UapiName("IOMMU_IOAS_CHANGE_PROCESS")] IoasChangeProcess = IommufdIoctls.Base | 0x92,
    [UapiName("IOMMU_VEVENTQ_ALLOC")] VeventqAlloc = IommufdIoctls.Base | 0x93,
    [UapiName("IOMMU_HW_QUEUE_ALLOC")] HwQueueAlloc = IommufdIoctls.Base | 0x94,
    [UapiName("IOMMU_IOAS_NOIOMMU_GET_PA")] IoasNoiommuGetPa = IommufdIoctls.Base | 0x95,
}

/// <summary>Helpers for <see cref="IommufdIoctl"/>.</summary>
public static class IommufdIoctls
{
    /// <summary>The ioctl type byte, <c>IOMMUFD_TYPE = ';'</c>.</summary>
    public const uint Type = ';';

    /// <summary><c>_IO(IOMMUFD_TYPE, 0)</c>: the type byte in bits 15:8, no size, no direction.</summary>
    public const uint Base = Type << 8;

    /// <summary>The command number (<c>IOMMUFD_CMD_*</c>), bits 7:0 of the request.</summary>
    public static byte CommandNumber(this IommufdIoctl ioctl) => (byte)((uint)ioctl & 0xFF);

    /// <summary>The C macro name, e.g. <c>IOMMU_IOAS_MAP</c>, for messages.</summary>
    public static string CName(this IommufdIoctl ioctl) => UapiCatalog.NameOf(ioctl);
}

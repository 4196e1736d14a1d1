using System.Runtime.InteropServices;

namespace NestedSmmu.Iommufd.Uapi;

// vIOMMU, vDEVICE, vEVENTQ, HW queue and IO page fault structs (include/uapi/linux/iommufd.h).

/// <summary>
/// IOMMU_VIOMMU_ALLOC: a vIOMMU on a nest-parent HWPT. Driver data (<c>data_len</c>,
/// <c>data_uptr</c>) is in/out, e.g. <see cref="IommuViommuTegra241Cmdqv"/>.
/// </summary>
[UapiName("iommu_viommu_alloc"), StructLayout(LayoutKind.Explicit, Size = 40)]
public struct IommuViommuAlloc
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    /// <summary><see cref="ViommuType"/>.</summary>
    [UapiName("type"), FieldOffset(8)] public uint Type;
    [UapiName("dev_id"), FieldOffset(12)] public uint DevId;
    [UapiName("hwpt_id"), FieldOffset(16)] public uint HwptId;
    [UapiName("out_viommu_id"), FieldOffset(20)] public uint OutViommuId;
    [UapiName("data_len"), FieldOffset(24)] public uint DataLen;
    [UapiName("__reserved"), FieldOffset(28)] public uint Reserved;
    [UapiName("data_uptr"), FieldOffset(32)] public ulong DataUptr;
}

/// <summary>Driver data of <see cref="ViommuType.Tegra241Cmdqv"/>: where to mmap the VINTF page.</summary>
[UapiName("iommu_viommu_tegra241_cmdqv"), StructLayout(LayoutKind.Explicit, Size = 16)]
public struct IommuViommuTegra241Cmdqv
{
    [UapiName("out_vintf_mmap_offset"), FieldOffset(0)] public ulong OutVintfMmapOffset;
    [UapiName("out_vintf_mmap_length"), FieldOffset(8)] public ulong OutVintfMmapLength;
}

/// <summary>IOMMU_VDEVICE_ALLOC: binds a device to a vIOMMU under a virtual id (the vSID for SMMUv3).</summary>
[UapiName("iommu_vdevice_alloc"), StructLayout(LayoutKind.Explicit, Size = 24)]
public struct IommuVdeviceAlloc
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("viommu_id"), FieldOffset(4)] public uint ViommuId;
    [UapiName("dev_id"), FieldOffset(8)] public uint DevId;
    [UapiName("out_vdevice_id"), FieldOffset(12)] public uint OutVdeviceId;
    [UapiName("virt_id"), FieldOffset(16)] public ulong VirtId;
}

/// <summary>Header of every record read from a vEVENTQ fd; the type's data follows unless LOST_EVENTS.</summary>
[UapiName("iommufd_vevent_header"), StructLayout(LayoutKind.Explicit, Size = 8)]
public struct IommufdVeventHeader
{
    /// <summary><see cref="VeventFlags"/>.</summary>
    [UapiName("flags"), FieldOffset(0)] public uint Flags;
    /// <summary>Runs over [0, INT_MAX] and wraps to 0.</summary>
    [UapiName("sequence"), FieldOffset(4)] public uint Sequence;
}

/// <summary>vEVENT data of <see cref="VeventqType.ArmSmmuV3"/>: an SMMUv3 event record with the vSID (le64[4]).</summary>
[UapiName("iommu_vevent_arm_smmuv3"), StructLayout(LayoutKind.Explicit, Size = 32)]
public unsafe struct IommuVeventArmSmmuV3
{
    [UapiName("evt"), FieldOffset(0)] public fixed ulong Evt[4];
}

/// <summary>vEVENT data of <see cref="VeventqType.Tegra241Cmdqv"/>: the VINTF's LVCMDQ_ERR_MAP (le64[2]).</summary>
[UapiName("iommu_vevent_tegra241_cmdqv"), StructLayout(LayoutKind.Explicit, Size = 16)]
public unsafe struct IommuVeventTegra241Cmdqv
{
    [UapiName("lvcmdq_err_map"), FieldOffset(0)] public fixed ulong LvcmdqErrMap[2];
}

/// <summary>IOMMU_VEVENTQ_ALLOC: an event queue of one type on a vIOMMU, read through the returned fd.</summary>
[UapiName("iommu_veventq_alloc"), StructLayout(LayoutKind.Explicit, Size = 32)]
public struct IommuVeventqAlloc
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("viommu_id"), FieldOffset(8)] public uint ViommuId;
    /// <summary><see cref="VeventqType"/>.</summary>
    [UapiName("type"), FieldOffset(12)] public uint Type;
    [UapiName("veventq_depth"), FieldOffset(16)] public uint VeventqDepth;
    [UapiName("out_veventq_id"), FieldOffset(20)] public uint OutVeventqId;
    [UapiName("out_veventq_fd"), FieldOffset(24)] public int OutVeventqFd;
    [UapiName("__reserved"), FieldOffset(28)] public uint Reserved;
}

/// <summary>
/// IOMMU_HW_QUEUE_ALLOC: a hardware-accelerated queue (Tegra241 VCMDQ) whose memory is a
/// guest-physical range of the parent HWPT's IOAS, pinned by the kernel.
/// </summary>
[UapiName("iommu_hw_queue_alloc"), StructLayout(LayoutKind.Explicit, Size = 40)]
public struct IommuHwQueueAlloc
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("viommu_id"), FieldOffset(8)] public uint ViommuId;
    /// <summary><see cref="HwQueueType"/>.</summary>
    [UapiName("type"), FieldOffset(12)] public uint Type;
    [UapiName("index"), FieldOffset(16)] public uint Index;
    [UapiName("out_hw_queue_id"), FieldOffset(20)] public uint OutHwQueueId;
    [UapiName("nesting_parent_iova"), FieldOffset(24)] public ulong NestingParentIova;
    [UapiName("length"), FieldOffset(32)] public ulong Length;
}

/// <summary>A record read from a fault queue fd (IO page fault).</summary>
[UapiName("iommu_hwpt_pgfault"), StructLayout(LayoutKind.Explicit, Size = 40)]
public struct IommuHwptPgfault
{
    [UapiName("flags"), FieldOffset(0)] public uint Flags;
    [UapiName("dev_id"), FieldOffset(4)] public uint DevId;
    [UapiName("pasid"), FieldOffset(8)] public uint Pasid;
    [UapiName("grpid"), FieldOffset(12)] public uint Grpid;
    [UapiName("perm"), FieldOffset(16)] public uint Perm;
    [UapiName("__reserved"), FieldOffset(20)] public uint Reserved;
    [UapiName("addr"), FieldOffset(24)] public ulong Addr;
    [UapiName("length"), FieldOffset(32)] public uint Length;
    [UapiName("cookie"), FieldOffset(36)] public uint Cookie;
}

/// <summary>A response written to a fault queue fd.</summary>
[UapiName("iommu_hwpt_page_response"), StructLayout(LayoutKind.Explicit, Size = 8)]
public struct IommuHwptPageResponse
{
    [UapiName("cookie"), FieldOffset(0)] public uint Cookie;
    /// <summary><see cref="PageResponseCode"/>.</summary>
    [UapiName("code"), FieldOffset(4)] public uint Code;
}

/// <summary>IOMMU_FAULT_QUEUE_ALLOC.</summary>
[UapiName("iommu_fault_alloc"), StructLayout(LayoutKind.Explicit, Size = 16)]
public struct IommuFaultAlloc
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("out_fault_id"), FieldOffset(8)] public uint OutFaultId;
    [UapiName("out_fault_fd"), FieldOffset(12)] public int OutFaultFd;
}

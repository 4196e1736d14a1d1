using System.Runtime.InteropServices;

namespace NestedSmmu.Iommufd.Uapi;

// Hardware page tables, their driver data, hardware info and invalidation
// (include/uapi/linux/iommufd.h). Driver-data words marked le64 in the header are
// little-endian regardless of the host.

/// <summary>
/// IOMMU_HWPT_ALLOC: a paging HWPT on an IOAS, or a nested HWPT on a nest-parent HWPT or a
/// vIOMMU with driver data (<c>data_type</c>, <c>data_len</c>, <c>data_uptr</c>).
/// </summary>
[UapiName("iommu_hwpt_alloc"), StructLayout(LayoutKind.Explicit, Size = 48)]
public struct IommuHwptAlloc
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    /// <summary><see cref="HwptAllocFlags"/>.</summary>
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("dev_id"), FieldOffset(8)] public uint DevId;
    /// <summary>IOAS, nest-parent HWPT or vIOMMU.</summary>
    [UapiName("pt_id"), FieldOffset(12)] public uint PtId;
    [UapiName("out_hwpt_id"), FieldOffset(16)] public uint OutHwptId;
    [UapiName("__reserved"), FieldOffset(20)] public uint Reserved;
    /// <summary><see cref="HwptDataType"/>.</summary>
    [UapiName("data_type"), FieldOffset(24)] public uint DataType;
    [UapiName("data_len"), FieldOffset(28)] public uint DataLen;
    [UapiName("data_uptr"), FieldOffset(32)] public ulong DataUptr;
    /// <summary>Fault queue id, valid with FAULT_ID_VALID.</summary>
    [UapiName("fault_id"), FieldOffset(40)] public uint FaultId;
    [UapiName("__reserved2"), FieldOffset(44)] public uint Reserved2;
}

/// <summary>Driver data for <see cref="HwptDataType.VtdS1"/>.</summary>
[UapiName("iommu_hwpt_vtd_s1"), StructLayout(LayoutKind.Explicit, Size = 24)]
public struct IommuHwptVtdS1
{
    [UapiName("flags"), FieldOffset(0)] public ulong Flags;
    [UapiName("pgtbl_addr"), FieldOffset(8)] public ulong PgtblAddr;
    [UapiName("addr_width"), FieldOffset(16)] public uint AddrWidth;
    [UapiName("__reserved"), FieldOffset(20)] public uint Reserved;
}

/// <summary>Driver data for <see cref="HwptDataType.ArmSmmuV3"/>: the guest's vSTE words 0 and 1 (le64).</summary>
[UapiName("iommu_hwpt_arm_smmuv3"), StructLayout(LayoutKind.Explicit, Size = 16)]
public unsafe struct IommuHwptArmSmmuV3
{
    [UapiName("ste"), FieldOffset(0)] public fixed ulong Ste[2];
}

/// <summary>Driver data for <see cref="HwptDataType.AmdGuest"/>: the guest DTE (le64[4]).</summary>
[UapiName("iommu_hwpt_amd_guest"), StructLayout(LayoutKind.Explicit, Size = 32)]
public unsafe struct IommuHwptAmdGuest
{
    [UapiName("dte"), FieldOffset(0)] public fixed ulong Dte[4];
}

/// <summary>IOMMU_GET_HW_INFO: driver-specific hardware info, capabilities and PASID width of a device's IOMMU.</summary>
[UapiName("iommu_hw_info"), StructLayout(LayoutKind.Explicit, Size = 40)]
public unsafe struct IommuHwInfo
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    /// <summary><see cref="HwInfoFlags"/>.</summary>
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("dev_id"), FieldOffset(8)] public uint DevId;
    /// <summary>Buffer length in; the kernel's data length out.</summary>
    [UapiName("data_len"), FieldOffset(12)] public uint DataLen;
    [UapiName("data_uptr"), FieldOffset(16)] public ulong DataUptr;
    // A C union: the requested type in (with INPUT_TYPE), the reported type out.
    /// <summary><see cref="HwInfoType"/> requested (with <see cref="HwInfoFlags.InputType"/>).</summary>
    [UapiName("in_data_type"), FieldOffset(24)] public uint InDataType;
    /// <summary><see cref="HwInfoType"/> reported.</summary>
    [UapiName("out_data_type"), FieldOffset(24)] public uint OutDataType;
    [UapiName("out_max_pasid_log2"), FieldOffset(28)] public byte OutMaxPasidLog2;
    [UapiName("__reserved"), FieldOffset(29)] public fixed byte Reserved[3];
    /// <summary><see cref="HwCapabilities"/>.</summary>
    [UapiName("out_capabilities"), FieldOffset(32)] public ulong OutCapabilities;
}

/// <summary>Hardware info for <see cref="HwInfoType.IntelVtd"/>.</summary>
[UapiName("iommu_hw_info_vtd"), StructLayout(LayoutKind.Explicit, Size = 24)]
public struct IommuHwInfoVtd
{
    [UapiName("flags"), FieldOffset(0)] public uint Flags;
    [UapiName("__reserved"), FieldOffset(4)] public uint Reserved;
    [UapiName("cap_reg"), FieldOffset(8)] public ulong CapReg;
    [UapiName("ecap_reg"), FieldOffset(16)] public ulong EcapReg;
}

/// <summary>Hardware info for <see cref="HwInfoType.ArmSmmuV3"/>: raw SMMU_IDR0..5, SMMU_IIDR, SMMU_AIDR.</summary>
[UapiName("iommu_hw_info_arm_smmuv3"), StructLayout(LayoutKind.Explicit, Size = 40)]
public unsafe struct IommuHwInfoArmSmmuV3
{
    /// <summary><see cref="HwInfoArmSmmuV3Flags"/>.</summary>
    [UapiName("flags"), FieldOffset(0)] public uint Flags;
    [UapiName("__reserved"), FieldOffset(4)] public uint Reserved;
    [UapiName("idr"), FieldOffset(8)] public fixed uint Idr[6];
    [UapiName("iidr"), FieldOffset(32)] public uint Iidr;
    [UapiName("aidr"), FieldOffset(36)] public uint Aidr;
}

/// <summary>Hardware info for <see cref="HwInfoType.Tegra241Cmdqv"/>.</summary>
[UapiName("iommu_hw_info_tegra241_cmdqv"), StructLayout(LayoutKind.Explicit, Size = 8)]
public struct IommuHwInfoTegra241Cmdqv
{
    [UapiName("flags"), FieldOffset(0)] public uint Flags;
    /// <summary>CMDQV_PARAM.VER.</summary>
    [UapiName("version"), FieldOffset(4)] public byte Version;
    /// <summary>log2 of the VCMDQs one VINTF (one VM) may use.</summary>
    [UapiName("log2vcmdqs"), FieldOffset(5)] public byte Log2Vcmdqs;
    /// <summary>log2 of the SID slots of one VINTF.</summary>
    [UapiName("log2vsids"), FieldOffset(6)] public byte Log2Vsids;
    [UapiName("__reserved"), FieldOffset(7)] public byte Reserved;
}

/// <summary>Hardware info for <see cref="HwInfoType.Amd"/>.</summary>
[UapiName("iommu_hw_info_amd"), StructLayout(LayoutKind.Explicit, Size = 16)]
public struct IommuHwInfoAmd
{
    [UapiName("efr"), FieldOffset(0)] public ulong Efr;
    [UapiName("efr2"), FieldOffset(8)] public ulong Efr2;
}

/// <summary>IOMMU_HWPT_SET_DIRTY_TRACKING.</summary>
[UapiName("iommu_hwpt_set_dirty_tracking"), StructLayout(LayoutKind.Explicit, Size = 16)]
public struct IommuHwptSetDirtyTracking
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("hwpt_id"), FieldOffset(8)] public uint HwptId;
    [UapiName("__reserved"), FieldOffset(12)] public uint Reserved;
}

/// <summary>IOMMU_HWPT_GET_DIRTY_BITMAP.</summary>
[UapiName("iommu_hwpt_get_dirty_bitmap"), StructLayout(LayoutKind.Explicit, Size = 48)]
public struct IommuHwptGetDirtyBitmap
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("hwpt_id"), FieldOffset(4)] public uint HwptId;
    [UapiName("flags"), FieldOffset(8)] public uint Flags;
    [UapiName("__reserved"), FieldOffset(12)] public uint Reserved;
    [UapiName("iova"), FieldOffset(16)] public ulong Iova;
    [UapiName("length"), FieldOffset(24)] public ulong Length;
    [UapiName("page_size"), FieldOffset(32)] public ulong PageSize;
    [UapiName("data"), FieldOffset(40)] public ulong Data;
}

/// <summary>One invalidation entry for <see cref="HwptInvalidateDataType.VtdS1"/>.</summary>
[UapiName("iommu_hwpt_vtd_s1_invalidate"), StructLayout(LayoutKind.Explicit, Size = 24)]
public struct IommuHwptVtdS1Invalidate
{
    [UapiName("addr"), FieldOffset(0)] public ulong Addr;
    [UapiName("npages"), FieldOffset(8)] public ulong Npages;
    [UapiName("flags"), FieldOffset(16)] public uint Flags;
    [UapiName("__reserved"), FieldOffset(20)] public uint Reserved;
}

/// <summary>One invalidation entry for <see cref="HwptInvalidateDataType.ArmSmmuV3"/>: an SMMUv3 command (le64[2]).</summary>
[UapiName("iommu_viommu_arm_smmuv3_invalidate"), StructLayout(LayoutKind.Explicit, Size = 16)]
public unsafe struct IommuViommuArmSmmuV3Invalidate
{
    [UapiName("cmd"), FieldOffset(0)] public fixed ulong Cmd[2];
}

/// <summary>
/// IOMMU_HWPT_INVALIDATE on a nested HWPT or a vIOMMU: an array of <c>entry_num</c> entries of
/// <c>entry_len</c> bytes; <c>entry_num</c> returns how many were handled, even on failure.
/// </summary>
[UapiName("iommu_hwpt_invalidate"), StructLayout(LayoutKind.Explicit, Size = 32)]
public struct IommuHwptInvalidate
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("hwpt_id"), FieldOffset(4)] public uint HwptId;
    [UapiName("data_uptr"), FieldOffset(8)] public ulong DataUptr;
    /// <summary><see cref="HwptInvalidateDataType"/>.</summary>
    [UapiName("data_type"), FieldOffset(16)] public uint DataType;
    [UapiName("entry_len"), FieldOffset(20)] public uint EntryLen;
    [UapiName("entry_num"), FieldOffset(24)] public uint EntryNum;
    [UapiName("__reserved"), FieldOffset(28)] public uint Reserved;
}

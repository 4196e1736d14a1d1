namespace NestedSmmu.Iommufd.Uapi;

// Enumerations and flag sets of include/uapi/linux/iommufd.h. Each member carries its C name.
// Members that the header spells twice for one value (TYPE_NONE / TYPE_DEFAULT) are both kept.

/// <summary><c>enum iommufd_ioas_map_flags</c>: IOMMU_IOAS_MAP / IOMMU_IOAS_COPY flags.</summary>
[Flags]
public enum IoasMapFlags : uint
{
    None = 0,
    /// <summary>Map at the given IOVA; without it the kernel chooses and returns one.</summary>
    [UapiName("IOMMU_IOAS_MAP_FIXED_IOVA")] FixedIova = 1 << 0,
    /// <summary>DMA may write the mapping.</summary>
    [UapiName("IOMMU_IOAS_MAP_WRITEABLE")] Writeable = 1 << 1,
    /// <summary>DMA may read the mapping.</summary>
    [UapiName("IOMMU_IOAS_MAP_READABLE")] Readable = 1 << 2,
}

/// <summary><c>enum iommufd_option</c>: IOMMU_OPTION option ids.</summary>
public enum IommufdOption : uint
{
    [UapiName("IOMMU_OPTION_RLIMIT_MODE")] RlimitMode = 0,
    [UapiName("IOMMU_OPTION_HUGE_PAGES")] HugePages = 1,
}

/// <summary><c>enum iommufd_option_ops</c>.</summary>
public enum IommufdOptionOp : ushort
{
    [UapiName("IOMMU_OPTION_OP_SET")] Set = 0,
    [UapiName("IOMMU_OPTION_OP_GET")] Get = 1,
}

/// <summary><c>enum iommufd_vfio_ioas_op</c>.</summary>
public enum VfioIoasOp : ushort
{
    [UapiName("IOMMU_VFIO_IOAS_GET")] Get = 0,
    [UapiName("IOMMU_VFIO_IOAS_SET")] Set = 1,
    [UapiName("IOMMU_VFIO_IOAS_CLEAR")] Clear = 2,
}

/// <summary><c>enum iommufd_hwpt_alloc_flags</c>.</summary>
[Flags]
public enum HwptAllocFlags : uint
{
    None = 0,
    /// <summary>A paging HWPT that can be the stage-2 parent of nested HWPTs and vIOMMUs.</summary>
    [UapiName("IOMMU_HWPT_ALLOC_NEST_PARENT")] NestParent = 1 << 0,
    [UapiName("IOMMU_HWPT_ALLOC_DIRTY_TRACKING")] DirtyTracking = 1 << 1,
    /// <summary><c>fault_id</c> names a fault queue for IO page faults.</summary>
    [UapiName("IOMMU_HWPT_FAULT_ID_VALID")] FaultIdValid = 1 << 2,
    [UapiName("IOMMU_HWPT_ALLOC_PASID")] Pasid = 1 << 3,
}

/// <summary><c>enum iommu_hwpt_vtd_s1_flags</c>.</summary>
[Flags]
public enum HwptVtdS1Flags : ulong
{
    None = 0,
    [UapiName("IOMMU_VTD_S1_SRE")] Sre = 1 << 0,
    [UapiName("IOMMU_VTD_S1_EAFE")] Eafe = 1 << 1,
    [UapiName("IOMMU_VTD_S1_WPE")] Wpe = 1 << 2,
}

/// <summary><c>enum iommu_hwpt_data_type</c>: the driver data of IOMMU_HWPT_ALLOC.</summary>
public enum HwptDataType : uint
{
    /// <summary>No driver data (paging HWPT).</summary>
    [UapiName("IOMMU_HWPT_DATA_NONE")] None = 0,
    [UapiName("IOMMU_HWPT_DATA_VTD_S1")] VtdS1 = 1,
    /// <summary><see cref="IommuHwptArmSmmuV3"/>: the guest's vSTE words 0 and 1.</summary>
    [UapiName("IOMMU_HWPT_DATA_ARM_SMMUV3")] ArmSmmuV3 = 2,
    [UapiName("IOMMU_HWPT_DATA_AMD_GUEST")] AmdGuest = 3,
}

/// <summary><c>enum iommu_hw_info_vtd_flags</c>.</summary>
[Flags]
public enum HwInfoVtdFlags : uint
{
    None = 0,
    [UapiName("IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17")] Errata772415Spr17 = 1 << 0,
}

/// <summary>Flags of <see cref="IommuHwInfoArmSmmuV3"/>.</summary>
[Flags]
public enum HwInfoArmSmmuV3Flags : uint
{
    None = 0,
    /// <summary>Erratum: TLBI and CFGI commands must be issued twice.</summary>
    [UapiName("IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI")] ErrataRepeatTlbiCfgi = 1 << 0,
}

/// <summary><c>enum iommu_hw_info_type</c>: the format of IOMMU_GET_HW_INFO's data.</summary>
public enum HwInfoType : uint
{
    [UapiName("IOMMU_HW_INFO_TYPE_NONE")] None = 0,
    /// <summary>Same value as <see cref="None"/>: as input, "the driver's default type".</summary>
    [UapiName("IOMMU_HW_INFO_TYPE_DEFAULT")] Default = 0,
    [UapiName("IOMMU_HW_INFO_TYPE_INTEL_VTD")] IntelVtd = 1,
    /// <summary><see cref="IommuHwInfoArmSmmuV3"/>.</summary>
    [UapiName("IOMMU_HW_INFO_TYPE_ARM_SMMUV3")] ArmSmmuV3 = 2,
    /// <summary><see cref="IommuHwInfoTegra241Cmdqv"/>.</summary>
    [UapiName("IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV")] Tegra241Cmdqv = 3,
    [UapiName("IOMMU_HW_INFO_TYPE_AMD")] Amd = 4,
}

/// <summary><c>enum iommufd_hw_capabilities</c>: IOMMU_GET_HW_INFO <c>out_capabilities</c>.</summary>
[Flags]
public enum HwCapabilities : ulong
{
    None = 0,
    [UapiName("IOMMU_HW_CAP_DIRTY_TRACKING")] DirtyTracking = 1 << 0,
    [UapiName("IOMMU_HW_CAP_PCI_PASID_EXEC")] PciPasidExec = 1 << 1,
    [UapiName("IOMMU_HW_CAP_PCI_PASID_PRIV")] PciPasidPriv = 1 << 2,
    /// <summary>Negative capability: set when the device cannot use ATS.</summary>
    [UapiName("IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED")] PciAtsNotSupported = 1 << 3,
}

/// <summary><c>enum iommufd_hw_info_flags</c>.</summary>
[Flags]
public enum HwInfoFlags : uint
{
    None = 0,
    /// <summary><c>in_data_type</c> selects the type to report instead of the default.</summary>
    [UapiName("IOMMU_HW_INFO_FLAG_INPUT_TYPE")] InputType = 1 << 0,
}

/// <summary><c>enum iommufd_hwpt_set_dirty_tracking_flags</c>.</summary>
[Flags]
public enum HwptSetDirtyTrackingFlags : uint
{
    None = 0,
    [UapiName("IOMMU_HWPT_DIRTY_TRACKING_ENABLE")] Enable = 1 << 0,
}

/// <summary><c>enum iommufd_hwpt_get_dirty_bitmap_flags</c>.</summary>
[Flags]
public enum HwptGetDirtyBitmapFlags : uint
{
    None = 0,
    [UapiName("IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR")] NoClear = 1 << 0,
}

/// <summary><c>enum iommu_hwpt_invalidate_data_type</c>: the entry format of IOMMU_HWPT_INVALIDATE.</summary>
public enum HwptInvalidateDataType : uint
{
    [UapiName("IOMMU_HWPT_INVALIDATE_DATA_VTD_S1")] VtdS1 = 0,
    /// <summary><see cref="IommuViommuArmSmmuV3Invalidate"/>: one 16-byte SMMUv3 command per entry.</summary>
    [UapiName("IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3")] ArmSmmuV3 = 1,
}

/// <summary><c>enum iommu_hwpt_vtd_s1_invalidate_flags</c>.</summary>
[Flags]
public enum VtdInvalidateFlags : uint
{
    None = 0,
    [UapiName("IOMMU_VTD_INV_FLAGS_LEAF")] Leaf = 1 << 0,
}

/// <summary><c>enum iommu_hwpt_pgfault_flags</c>.</summary>
[Flags]
public enum PgfaultFlags : uint
{
    None = 0,
    [UapiName("IOMMU_PGFAULT_FLAGS_PASID_VALID")] PasidValid = 1 << 0,
    [UapiName("IOMMU_PGFAULT_FLAGS_LAST_PAGE")] LastPage = 1 << 1,
}

/// <summary><c>enum iommu_hwpt_pgfault_perm</c>.</summary>
[Flags]
public enum PgfaultPerm : uint
{
    None = 0,
    [UapiName("IOMMU_PGFAULT_PERM_READ")] Read = 1 << 0,
    [UapiName("IOMMU_PGFAULT_PERM_WRITE")] Write = 1 << 1,
    [UapiName("IOMMU_PGFAULT_PERM_EXEC")] Exec = 1 << 2,
    [UapiName("IOMMU_PGFAULT_PERM_PRIV")] Priv = 1 << 3,
}

/// <summary><c>enum iommufd_page_response_code</c>.</summary>
public enum PageResponseCode : uint
{
    [UapiName("IOMMUFD_PAGE_RESP_SUCCESS")] Success = 0,
    [UapiName("IOMMUFD_PAGE_RESP_INVALID")] Invalid = 1,
}

/// <summary><c>enum iommu_viommu_type</c>.</summary>
public enum ViommuType : uint
{
    [UapiName("IOMMU_VIOMMU_TYPE_DEFAULT")] Default = 0,
    /// <summary>Arm SMMUv3 vIOMMU: VMID, vSID table, invalidation and event forwarding.</summary>
    [UapiName("IOMMU_VIOMMU_TYPE_ARM_SMMUV3")] ArmSmmuV3 = 1,
    /// <summary>SMMUv3 vIOMMU with a Tegra241 CMDQV VINTF; driver data <see cref="IommuViommuTegra241Cmdqv"/>.</summary>
    [UapiName("IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV")] Tegra241Cmdqv = 2,
}

/// <summary>Flags in <see cref="IommufdVeventHeader.Flags"/>.</summary>
[Flags]
public enum VeventFlags : uint
{
    None = 0,
    /// <summary>The queue overflowed: events were lost before this header (which carries no data).</summary>
    [UapiName("IOMMU_VEVENTQ_FLAG_LOST_EVENTS")] LostEvents = 1 << 0,
}

/// <summary><c>enum iommu_veventq_type</c>.</summary>
public enum VeventqType : uint
{
    [UapiName("IOMMU_VEVENTQ_TYPE_DEFAULT")] Default = 0,
    /// <summary>Events are <see cref="IommuVeventArmSmmuV3"/> (32 bytes).</summary>
    [UapiName("IOMMU_VEVENTQ_TYPE_ARM_SMMUV3")] ArmSmmuV3 = 1,
    /// <summary>Events are <see cref="IommuVeventTegra241Cmdqv"/> (16 bytes).</summary>
    [UapiName("IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV")] Tegra241Cmdqv = 2,
}

/// <summary><c>enum iommu_hw_queue_type</c>.</summary>
public enum HwQueueType : uint
{
    [UapiName("IOMMU_HW_QUEUE_TYPE_DEFAULT")] Default = 0,
    /// <summary>A Tegra241 VCMDQ of the vIOMMU's VINTF.</summary>
    [UapiName("IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV")] Tegra241Cmdqv = 1,
}

using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd;

/// <summary>
/// What an errno means for a given iommufd ioctl, from the kernel's checks (drivers/iommu/iommufd/*.c,
/// drivers/iommu/iommufd and arm-smmu-v3-iommufd.c). Used to make exception messages
/// actionable; both the real and the emulated kernel use it.
/// </summary>
public static class IommufdErrnoHints
{
    /// <summary>The hint for <paramref name="errno"/> from <paramref name="ioctl"/>, or null when there is none.</summary>
    public static string? For(IommufdIoctl ioctl, Errno errno) => (ioctl, errno) switch
    {
        (_, Errno.ENOTTY) => "The kernel does not know this ioctl: it predates the feature (vIOMMU arrived around 6.13, vEVENTQ around 6.15, HW queue around 6.17)",
        (_, Errno.E2BIG) => "Bytes past the kernel's struct are non-zero: the kernel is older than this struct layout",
        (_, Errno.EFAULT) => "The kernel could not read or write a user buffer: check pointers and lengths",

        (IommufdIoctl.Destroy, Errno.EBUSY) => "The object is still in use: destroy what depends on it first (nested HWPTs, vDEVICEs, HW queues, vEVENTQs, attached devices, open mmaps or fds)",
        (IommufdIoctl.Destroy, Errno.ENOENT) => "No object has this id (already destroyed, or its device was unbound)",

        (IommufdIoctl.IoasMap, Errno.EOPNOTSUPP) => "Unknown flags or a non-zero __reserved",
        (IommufdIoctl.IoasMap, Errno.EOVERFLOW) => "iova + length or user_va + length overflows",
        (IommufdIoctl.IoasMap, Errno.EINVAL) => "Map with READABLE and/or WRITEABLE, align iova and length to the IOAS's iova alignment, and keep clear of reserved ranges (a device's MSI window, beyond a domain's aperture: see IOMMU_IOAS_IOVA_RANGES)",
        (IommufdIoctl.IoasMap, Errno.EEXIST) => "The IOVA range overlaps an existing mapping",
        (IommufdIoctl.IoasMap, Errno.EADDRINUSE) => "The IOVA range is reserved (a device's MSI window, or beyond a domain's aperture)",
        (IommufdIoctl.IoasMap, Errno.ENOMEM) => "Pinning failed: raise RLIMIT_MEMLOCK (ulimit -l) for the VMM",
        (IommufdIoctl.IoasUnmap, Errno.ENOENT) => "The range is not mapped, or it would split a mapping: unmap whole mappings",
        (IommufdIoctl.IoasUnmap, Errno.EBUSY) => "A HW queue pins part of the range: destroy the HW queue first",

        (IommufdIoctl.GetHwInfo, Errno.ENOENT) => "dev_id is not a bound device",
        (IommufdIoctl.GetHwInfo, Errno.EOPNOTSUPP) => "The IOMMU driver does not report this hw_info type (or flags/__reserved are non-zero)",

        (IommufdIoctl.HwptAlloc, Errno.ENOENT) => "dev_id is not a bound device, or fault_id names no fault queue",
        (IommufdIoctl.HwptAlloc, Errno.EINVAL) => "pt_id must be an IOAS, a NEST_PARENT paging HWPT of the same IOMMU, or a vIOMMU; DATA_NONE needs data_len 0 and a driver type needs its full struct",
        (IommufdIoctl.HwptAlloc, Errno.EOPNOTSUPP) => "Unsupported flags for this kind of HWPT (nested takes only FAULT_ID_VALID|PASID; NEST_PARENT excludes FAULT_ID_VALID; DIRTY_TRACKING needs the capability)",
        (IommufdIoctl.HwptAlloc, Errno.EIO) => "The vSTE is invalid: only V, CFG (abort, bypass, S1 translate), S1FMT, S1CTXPTR, S1CDMAX, S1DSS, S1CIR/COR/CSH, S1STALLD and EATS 0/1 may be set",

        (IommufdIoctl.HwptInvalidate, Errno.EINVAL) => "hwpt_id must be a nested HWPT or a vIOMMU, data_type must match it, data_uptr and entry_len non-zero, and (SMMUv3) entry_num non-zero",
        (IommufdIoctl.HwptInvalidate, Errno.EIO) => "An entry is not an allowed command (TLBI_NH_*, TLBI_NSNH_ALL, ATC_INV, CFGI_CD*) or names an unknown vSID; entry_num says how many were handled",
        (IommufdIoctl.HwptInvalidate, Errno.EOPNOTSUPP) => "Non-zero __reserved, or the object's driver cannot invalidate",

        (IommufdIoctl.ViommuAlloc, Errno.EOPNOTSUPP) => "flags must be 0 and the IOMMU driver must support this vIOMMU type (SMMUv3 needs S1+S2 nesting; CMDQV needs the Tegra241 CMDQV)",
        (IommufdIoctl.ViommuAlloc, Errno.ENOENT) => "dev_id is not a bound device, or hwpt_id is not a paging HWPT",
        (IommufdIoctl.ViommuAlloc, Errno.EINVAL) => "hwpt_id must be allocated with NEST_PARENT, through a device behind the same SMMU; TEGRA241_CMDQV needs its 16-byte driver data",
        (IommufdIoctl.ViommuAlloc, Errno.ENOSPC) => "No free VINTF left in the CMDQV",

        (IommufdIoctl.VdeviceAlloc, Errno.EEXIST) => "The device already has a vDEVICE, or this virt_id is used in the vIOMMU",
        (IommufdIoctl.VdeviceAlloc, Errno.EINVAL) => "virt_id is too large (32 bits for SMMUv3), or the device sits behind another IOMMU than the vIOMMU",
        (IommufdIoctl.VdeviceAlloc, Errno.ENOENT) => "viommu_id or dev_id does not exist",
        (IommufdIoctl.VdeviceAlloc, Errno.ENOSPC) => "No free SID slot in the VINTF",

        (IommufdIoctl.VeventqAlloc, Errno.EEXIST) => "The vIOMMU already has a vEVENTQ of this type",
        (IommufdIoctl.VeventqAlloc, Errno.EINVAL) => "veventq_depth must be at least 1 (and within the kernel's limit)",
        (IommufdIoctl.VeventqAlloc, Errno.EOPNOTSUPP) => "flags/__reserved must be 0 and type non-zero and supported",

        (IommufdIoctl.HwQueueAlloc, Errno.EOPNOTSUPP) => "flags must be 0 and type supported by the vIOMMU (TEGRA241_CMDQV on a CMDQV vIOMMU)",
        (IommufdIoctl.HwQueueAlloc, Errno.EINVAL) => "length must be a power of two between 32 bytes and the CMDQ limit, the base aligned to it, and index below the VINTF's queue count",
        (IommufdIoctl.HwQueueAlloc, Errno.EOVERFLOW) => "nesting_parent_iova + length overflows",
        (IommufdIoctl.HwQueueAlloc, Errno.ENOENT) => "The viommu does not exist, or the queue's guest range is not mapped in the parent IOAS",
        (IommufdIoctl.HwQueueAlloc, Errno.EEXIST) => "This queue index is already allocated",
        (IommufdIoctl.HwQueueAlloc, Errno.EIO) => "Allocate queue indexes in ascending order (index - 1 first)",
        _ => null,
    };
}

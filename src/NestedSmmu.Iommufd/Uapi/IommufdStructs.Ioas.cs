using System.Runtime.InteropServices;

namespace NestedSmmu.Iommufd.Uapi;

// ioctl argument structs for objects and IO address spaces (include/uapi/linux/iommufd.h).
// Explicit offsets mirror the C layout; Size covers the trailing padding the C compiler adds.
// Scalars are native-endian (little-endian on every host .NET runs this on: x64, arm64).
// Every struct begins with `size`: userspace passes sizeof(struct), the kernel accepts
// anything from its min_size up and requires bytes past its own struct to be zero.

/// <summary>IOMMU_DESTROY: frees any object by id.</summary>
[UapiName("iommu_destroy"), StructLayout(LayoutKind.Explicit, Size = 8)]
public struct IommuDestroy
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("id"), FieldOffset(4)] public uint Id;
}

/// <summary>IOMMU_IOAS_ALLOC: creates an empty IO address space.</summary>
[UapiName("iommu_ioas_alloc"), StructLayout(LayoutKind.Explicit, Size = 12)]
public struct IommuIoasAlloc
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("out_ioas_id"), FieldOffset(8)] public uint OutIoasId;
}

/// <summary>One inclusive IOVA range, <c>[start, last]</c>.</summary>
[UapiName("iommu_iova_range"), StructLayout(LayoutKind.Explicit, Size = 16)]
public struct IommuIovaRange
{
    [UapiName("start"), FieldOffset(0)] public ulong Start;
    [UapiName("last"), FieldOffset(8)] public ulong Last;
}

/// <summary>
/// IOMMU_IOAS_IOVA_RANGES: reports the usable IOVA ranges. <c>num_iovas</c> is the array
/// capacity in and the total count out; EMSGSIZE when the array was too small.
/// </summary>
[UapiName("iommu_ioas_iova_ranges"), StructLayout(LayoutKind.Explicit, Size = 32)]
public struct IommuIoasIovaRanges
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("ioas_id"), FieldOffset(4)] public uint IoasId;
    [UapiName("num_iovas"), FieldOffset(8)] public uint NumIovas;
    [UapiName("__reserved"), FieldOffset(12)] public uint Reserved;
    /// <summary>User pointer to an array of <see cref="IommuIovaRange"/>.</summary>
    [UapiName("allowed_iovas"), FieldOffset(16)] public ulong AllowedIovas;
    [UapiName("out_iova_alignment"), FieldOffset(24)] public ulong OutIovaAlignment;
}

/// <summary>IOMMU_IOAS_ALLOW_IOVAS: reserves ranges that device attachment may not narrow.</summary>
[UapiName("iommu_ioas_allow_iovas"), StructLayout(LayoutKind.Explicit, Size = 24)]
public struct IommuIoasAllowIovas
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("ioas_id"), FieldOffset(4)] public uint IoasId;
    [UapiName("num_iovas"), FieldOffset(8)] public uint NumIovas;
    [UapiName("__reserved"), FieldOffset(12)] public uint Reserved;
    [UapiName("allowed_iovas"), FieldOffset(16)] public ulong AllowedIovas;
}

/// <summary>IOMMU_IOAS_MAP: maps user memory at an IOVA (fixed, or chosen and returned).</summary>
[UapiName("iommu_ioas_map"), StructLayout(LayoutKind.Explicit, Size = 40)]
public struct IommuIoasMap
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    /// <summary><see cref="IoasMapFlags"/>.</summary>
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("ioas_id"), FieldOffset(8)] public uint IoasId;
    [UapiName("__reserved"), FieldOffset(12)] public uint Reserved;
    [UapiName("user_va"), FieldOffset(16)] public ulong UserVa;
    [UapiName("length"), FieldOffset(24)] public ulong Length;
    /// <summary>In with FIXED_IOVA, out otherwise.</summary>
    [UapiName("iova"), FieldOffset(32)] public ulong Iova;
}

/// <summary>IOMMU_IOAS_NOIOMMU_GET_PA: physical address behind an IOVA in no-IOMMU mode.</summary>
[UapiName("iommu_ioas_noiommu_get_pa"), StructLayout(LayoutKind.Explicit, Size = 40)]
public struct IommuIoasNoiommuGetPa
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("ioas_id"), FieldOffset(8)] public uint IoasId;
    [UapiName("__reserved"), FieldOffset(12)] public uint Reserved;
    [UapiName("iova"), FieldOffset(16)] public ulong Iova;
    [UapiName("length"), FieldOffset(24)] public ulong Length;
    [UapiName("out_phys"), FieldOffset(32)] public ulong OutPhys;
}

/// <summary>IOMMU_IOAS_MAP_FILE: maps a range of a file (memfd) instead of a user VA.</summary>
[UapiName("iommu_ioas_map_file"), StructLayout(LayoutKind.Explicit, Size = 40)]
public struct IommuIoasMapFile
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("ioas_id"), FieldOffset(8)] public uint IoasId;
    [UapiName("fd"), FieldOffset(12)] public int Fd;
    [UapiName("start"), FieldOffset(16)] public ulong Start;
    [UapiName("length"), FieldOffset(24)] public ulong Length;
    [UapiName("iova"), FieldOffset(32)] public ulong Iova;
}

/// <summary>IOMMU_IOAS_COPY: maps an existing mapping of one IOAS into another.</summary>
[UapiName("iommu_ioas_copy"), StructLayout(LayoutKind.Explicit, Size = 40)]
public struct IommuIoasCopy
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("dst_ioas_id"), FieldOffset(8)] public uint DstIoasId;
    [UapiName("src_ioas_id"), FieldOffset(12)] public uint SrcIoasId;
    [UapiName("length"), FieldOffset(16)] public ulong Length;
    [UapiName("dst_iova"), FieldOffset(24)] public ulong DstIova;
    [UapiName("src_iova"), FieldOffset(32)] public ulong SrcIova;
}

/// <summary>IOMMU_IOAS_UNMAP: removes whole mappings in a range; <c>length</c> returns the bytes unmapped.</summary>
[UapiName("iommu_ioas_unmap"), StructLayout(LayoutKind.Explicit, Size = 24)]
public struct IommuIoasUnmap
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("ioas_id"), FieldOffset(4)] public uint IoasId;
    [UapiName("iova"), FieldOffset(8)] public ulong Iova;
    [UapiName("length"), FieldOffset(16)] public ulong Length;
}

/// <summary>IOMMU_OPTION: get or set a global or per-object option.</summary>
[UapiName("iommu_option"), StructLayout(LayoutKind.Explicit, Size = 24)]
public struct IommuOption
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("option_id"), FieldOffset(4)] public uint OptionId;
    [UapiName("op"), FieldOffset(8)] public ushort Op;
    [UapiName("__reserved"), FieldOffset(10)] public ushort Reserved;
    [UapiName("object_id"), FieldOffset(12)] public uint ObjectId;
    [UapiName("val64"), FieldOffset(16)] public ulong Val64;
}

/// <summary>IOMMU_VFIO_IOAS: the IOAS the VFIO container compatibility layer uses.</summary>
[UapiName("iommu_vfio_ioas"), StructLayout(LayoutKind.Explicit, Size = 12)]
public struct IommuVfioIoas
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("ioas_id"), FieldOffset(4)] public uint IoasId;
    [UapiName("op"), FieldOffset(8)] public ushort Op;
    [UapiName("__reserved"), FieldOffset(10)] public ushort Reserved;
}

/// <summary>IOMMU_IOAS_CHANGE_PROCESS: moves pinned-page accounting to the calling process.</summary>
[UapiName("iommu_ioas_change_process"), StructLayout(LayoutKind.Explicit, Size = 8)]
public struct IommuIoasChangeProcess
{
    [UapiName("size"), FieldOffset(0)] public uint Size;
    [UapiName("__reserved"), FieldOffset(4)] public uint Reserved;
}

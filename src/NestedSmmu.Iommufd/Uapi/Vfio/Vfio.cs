using System.Runtime.InteropServices;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Uapi.Vfio;

// The VFIO device-cdev ioctls that connect a device to an iommufd (include/uapi/linux/vfio.h).
// Like iommufd's, they are _IO(';', VFIO_BASE + n) with VFIO_BASE = 100; the struct's argsz
// carries the length. Layouts are the current header's (attach/detach gained a pasid field;
// older kernels accept the longer argsz as long as the extra bytes are zero and no PASID flag
// is set).

/// <summary>VFIO ioctl request numbers used on a device cdev.</summary>
public enum VfioIoctl : uint
{
    /// <summary>VFIO_DEVICE_BIND_IOMMUFD, VFIO_BASE + 18.</summary>
    [UapiName("VFIO_DEVICE_BIND_IOMMUFD")] DeviceBindIommufd = IommufdIoctls.Base | (VfioIoctls.VfioBase + 18),
    /// <summary>VFIO_DEVICE_ATTACH_IOMMUFD_PT, VFIO_BASE + 19.</summary>
    [UapiName("VFIO_DEVICE_ATTACH_IOMMUFD_PT")] DeviceAttachIommufdPt = IommufdIoctls.Base | (VfioIoctls.VfioBase + 19),
    /// <summary>VFIO_DEVICE_DETACH_IOMMUFD_PT, VFIO_BASE + 20.</summary>
    [UapiName("VFIO_DEVICE_DETACH_IOMMUFD_PT")] DeviceDetachIommufdPt = IommufdIoctls.Base | (VfioIoctls.VfioBase + 20),
}

/// <summary>Helpers for <see cref="VfioIoctl"/>.</summary>
public static class VfioIoctls
{
    /// <summary>VFIO_BASE: VFIO's command numbers start here (its type byte is ';', as iommufd's).</summary>
    public const uint VfioBase = 100;

    /// <summary>VFIO_DEVICE_BIND_FLAG_TOKEN: <c>token_uuid_ptr</c> is valid.</summary>
    public const uint BindFlagToken = 1 << 0;

    /// <summary>VFIO_DEVICE_ATTACH_PASID / VFIO_DEVICE_DETACH_PASID: <c>pasid</c> is valid.</summary>
    public const uint PasidFlag = 1 << 0;

    /// <summary>The C macro name, for messages.</summary>
    public static string CName(this VfioIoctl ioctl) => ioctl switch
    {
        VfioIoctl.DeviceBindIommufd => "VFIO_DEVICE_BIND_IOMMUFD",
        VfioIoctl.DeviceAttachIommufdPt => "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
        VfioIoctl.DeviceDetachIommufdPt => "VFIO_DEVICE_DETACH_IOMMUFD_PT",
        _ => $"ioctl 0x{(uint)ioctl:X}",
    };
}

/// <summary><c>struct vfio_device_bind_iommufd</c>: binds the cdev's device to an iommufd, returns the dev_id.</summary>
[UapiName("vfio_device_bind_iommufd"), StructLayout(LayoutKind.Explicit, Size = 24)]
public struct VfioDeviceBindIommufd
{
    [UapiName("argsz"), FieldOffset(0)] public uint Argsz;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("iommufd"), FieldOffset(8)] public int Iommufd;
    [UapiName("out_devid"), FieldOffset(12)] public uint OutDevid;
    /// <summary>User pointer to a 16-byte VF token UUID, with <see cref="VfioIoctls.BindFlagToken"/>.</summary>
    [UapiName("token_uuid_ptr"), FieldOffset(16)] public ulong TokenUuidPtr;
}

/// <summary><c>struct vfio_device_attach_iommufd_pt</c>: attaches to an IOAS or HWPT; <c>pt_id</c> returns what was attached.</summary>
[UapiName("vfio_device_attach_iommufd_pt"), StructLayout(LayoutKind.Explicit, Size = 16)]
public struct VfioDeviceAttachIommufdPt
{
    [UapiName("argsz"), FieldOffset(0)] public uint Argsz;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("pt_id"), FieldOffset(8)] public uint PtId;
    [UapiName("pasid"), FieldOffset(12)] public uint Pasid;
}

/// <summary><c>struct vfio_device_detach_iommufd_pt</c>.</summary>
[UapiName("vfio_device_detach_iommufd_pt"), StructLayout(LayoutKind.Explicit, Size = 12)]
public struct VfioDeviceDetachIommufdPt
{
    [UapiName("argsz"), FieldOffset(0)] public uint Argsz;
    [UapiName("flags"), FieldOffset(4)] public uint Flags;
    [UapiName("pasid"), FieldOffset(8)] public uint Pasid;
}

/// <summary>
/// Argument structs of the VFIO cdev ioctls that bind a device to iommufd (include/uapi/linux/vfio.h);
/// the iommufd structs themselves come from <see cref="IommufdMarshal"/>.
/// </summary>
public static class VfioMarshal
{
    /// <summary>VFIO_DEVICE_BIND_IOMMUFD to the iommufd <paramref name="iommufd"/> (no VF token).</summary>
    public static VfioDeviceBindIommufd VfioBind(int iommufd) =>
        new() { Argsz = IommufdMarshal.SizeOf<VfioDeviceBindIommufd>(), Iommufd = iommufd };

    /// <summary>VFIO_DEVICE_ATTACH_IOMMUFD_PT to an IOAS or HWPT (no PASID).</summary>
    public static VfioDeviceAttachIommufdPt VfioAttach(ObjectId pt) =>
        new() { Argsz = IommufdMarshal.SizeOf<VfioDeviceAttachIommufdPt>(), PtId = pt.Value };

    /// <summary>VFIO_DEVICE_DETACH_IOMMUFD_PT (no PASID).</summary>
    public static VfioDeviceDetachIommufdPt VfioDetach() =>
        new() { Argsz = IommufdMarshal.SizeOf<VfioDeviceDetachIommufdPt>() };
}

using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Iommufd.Uapi.Vfio;

namespace NestedSmmu.Iommufd.Linux;

/// <summary>
/// <see cref="IIommufd"/> on a real Linux host: ioctl(2) on /dev/iommu with the
/// <see cref="NestedSmmu.Iommufd.Uapi"/> structs, devices bound through their VFIO cdevs.
/// Argument structs come from <see cref="IommufdMarshal"/>; system calls go through
/// <see cref="ILinuxSyscalls"/> (the C library by default).
/// </summary>
/// <remarks>
/// Structs are passed in native byte order, which is little-endian on every host this runs
/// on (x86-64, arm64); driver-data words are little-endian by definition. Calls are
/// serialised by a lock, so a vEVENTQ reader thread may run beside the VMM thread.
/// </remarks>
public sealed unsafe class LinuxIommufd : IIommufd
{
    /// <summary>The iommufd character device.</summary>
    public const string DefaultPath = "/dev/iommu";

    private readonly ILinuxSyscalls _sys;
    private readonly Lock _lock = new();
    private readonly Dictionary<uint, BoundDevice> _devices = [];
    private int _fd;

    private sealed record BoundDevice(DeviceId Id, string Name, string CdevPath, int Fd);

    private LinuxIommufd(ILinuxSyscalls syscalls, int fd, string path)
    {
        _sys = syscalls;
        _fd = fd;
        DevicePath = path;
    }

    /// <summary>The path opened, normally /dev/iommu.</summary>
    public string DevicePath { get; }

    /// <summary>The iommufd file descriptor (-1 once disposed).</summary>
    public int FileDescriptor => _fd;

    /// <inheritdoc/>
    public string Description => DevicePath;

    /// <summary>Opens /dev/iommu (or <paramref name="path"/>) through the C library.</summary>
    /// <exception cref="IommufdException">
    /// ENOENT the node is missing (iommufd not loaded); EACCES/EPERM no permission; ENOSYS not
    /// a Linux host; any other errno of open(2). The message says what to check.
    /// </exception>
    public static LinuxIommufd Open(string path = DefaultPath) => Open(LibcSyscalls.Instance, path);

    /// <summary>Opens <paramref name="path"/> through the given system-call layer.</summary>
    /// <exception cref="IommufdException">As <see cref="Open(string)"/>.</exception>
    public static LinuxIommufd Open(ILinuxSyscalls syscalls, string path = DefaultPath)
    {
        ArgumentNullException.ThrowIfNull(syscalls);
        ArgumentException.ThrowIfNullOrEmpty(path);
        int fd = syscalls.Open(path, LinuxAbi.O_RDWR | LinuxAbi.O_CLOEXEC);
        if (fd < 0) throw OpenError((Errno)(-fd), path);
        return new LinuxIommufd(syscalls, fd, path);
    }

    /// <summary>Opens like <see cref="Open(string)"/> but returns the error instead of throwing (backend probing).</summary>
    public static bool TryOpen(out LinuxIommufd? iommufd, out IommufdException? error, string path = DefaultPath)
    {
        try
        {
            iommufd = Open(path);
            error = null;
            return true;
        }
        catch (IommufdException e)
        {
            iommufd = null;
            error = e;
            return false;
        }
    }

    private static IommufdException OpenError(Errno errno, string path)
    {
        string hint = errno switch
        {
            Errno.ENOENT => $"{path} does not exist: the host needs an IOMMU and the iommufd driver (CONFIG_IOMMUFD; try 'modprobe iommufd'), or use the emulated host",
            Errno.EACCES or Errno.EPERM => $"no permission on {path}: run the VMM as root or give its user read/write access to {path} and to /dev/vfio/devices/* (e.g. a udev rule), and raise its memlock limit (ulimit -l) so guest RAM can be pinned",
            Errno.ENOSYS => "the real iommufd backend needs a Linux host with a C library; use the emulated host",
            Errno.ENODEV or Errno.ENXIO => $"{path} exists but no driver answers: check that the iommufd module is loaded",
            _ => $"open(2) of {path} failed",
        };
        return new IommufdException(errno, $"open {path}", hint);
    }

    // ------------------------------------------------------------------ memory and IOAS

    /// <inheritdoc/>
    public HostMemoryRegion AllocateHostMemory(ulong length, string name)
    {
        ArgumentOutOfRangeException.ThrowIfZero(length);
        ArgumentException.ThrowIfNullOrEmpty(name);
        ulong page = (ulong)Environment.SystemPageSize;
        if (length > ulong.MaxValue - (page - 1)) throw new IommufdException(Errno.ENOMEM, "mmap guest memory", $"'{name}': length 0x{length:X} is too large");
        ulong rounded = (length + page - 1) & ~(page - 1);
        int rc = _sys.Mmap(rounded, LinuxAbi.PROT_READ | LinuxAbi.PROT_WRITE, LinuxAbi.MAP_PRIVATE | LinuxAbi.MAP_ANONYMOUS, -1, 0, out nint address);
        if (rc < 0)
            throw new IommufdException((Errno)(-rc), "mmap guest memory", $"'{name}': 0x{rounded:X} bytes of anonymous memory");
        ILinuxSyscalls sys = _sys;
        return new NativeHostMemoryRegion(address, rounded, name, (a, l) => sys.Munmap(a, l));
    }

    /// <inheritdoc/>
    public IoasId AllocIoas()
    {
        var a = IommufdMarshal.IoasAlloc();
        Check(Ioctl(ref a, IommufdIoctl.IoasAlloc), IommufdIoctl.IoasAlloc, "flags 0");
        return new IoasId(a.OutIoasId);
    }

    /// <inheritdoc/>
    public ulong MapIoas(IoasId ioas, HostMemoryRegion memory, ulong memoryOffset, ulong length, ulong? iova,
        IoasMapFlags flags = IoasMapFlags.Readable | IoasMapFlags.Writeable)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (memory is not NativeHostMemoryRegion native)
            throw new IommufdException(Errno.EFAULT, IommufdIoctl.IoasMap.CName(),
                $"host memory region '{memory.Name}' is a {memory.GetType().Name}, not memory of this process: allocate guest RAM with this backend's AllocateHostMemory");
        ObjectDisposedException.ThrowIf(native.IsDisposed, native);
        if (!native.Contains(memoryOffset, length))
            throw new IommufdException(Errno.EFAULT, IommufdIoctl.IoasMap.CName(),
                $"offset 0x{memoryOffset:X} + length 0x{length:X} leaves host memory region '{native.Name}' of 0x{native.Length:X} bytes");

        IoasMapFlags all = flags | (iova.HasValue ? IoasMapFlags.FixedIova : IoasMapFlags.None);
        var a = IommufdMarshal.IoasMap(ioas, all, native.VirtualAddressOf(memoryOffset), length, iova ?? 0);
        Check(Ioctl(ref a, IommufdIoctl.IoasMap), IommufdIoctl.IoasMap, IommufdMarshal.Describe(a));
        return a.Iova;
    }

    /// <inheritdoc/>
    public ulong UnmapIoas(IoasId ioas, ulong iova, ulong length)
    {
        var a = IommufdMarshal.IoasUnmap(ioas, iova, length);
        Check(Ioctl(ref a, IommufdIoctl.IoasUnmap), IommufdIoctl.IoasUnmap, IommufdMarshal.Describe(a));
        return a.Length;
    }

    /// <inheritdoc/>
    public IovaRanges GetIovaRanges(IoasId ioas)
    {
        uint capacity = 8;
        // The range count can change between calls when devices attach; a few rounds settle it.
        for (int attempt = 0; attempt < 4; attempt++)
        {
            var ranges = new IommuIovaRange[capacity];
            IommuIoasIovaRanges a;
            int rc;
            fixed (IommuIovaRange* p = ranges)
            {
                a = IommufdMarshal.IoasIovaRanges(ioas, capacity, (ulong)p);
                rc = Ioctl(ref a, IommufdIoctl.IoasIovaRanges);
            }
            if (rc == -(int)Errno.EMSGSIZE && a.NumIovas > capacity)
            {
                capacity = a.NumIovas;
                continue;
            }
            Check(rc, IommufdIoctl.IoasIovaRanges, $"ioas_id {ioas}, num_iovas {capacity}");
            return IommufdMarshal.ParseIovaRanges(a, ranges);
        }
        throw IommufdException.ForIoctl(IommufdIoctl.IoasIovaRanges, Errno.EMSGSIZE, $"ioas_id {ioas}: the range count kept growing");
    }

    // ------------------------------------------------------------------ devices

    /// <inheritdoc/>
    public DeviceId BindDevice(string device)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        int iommufd = CheckOpen();
        string cdev = VfioDeviceLocator.Resolve(_sys, device);
        int dfd = _sys.Open(cdev, LinuxAbi.O_RDWR | LinuxAbi.O_CLOEXEC);
        if (dfd < 0)
        {
            var errno = (Errno)(-dfd);
            string hint = errno switch
            {
                Errno.EACCES or Errno.EPERM => $"no permission on {cdev}: run as root or grant the VMM's user access to it",
                Errno.EBUSY => "the device is open elsewhere (another VMM, or a VFIO group user)",
                Errno.ENOENT => $"{cdev} vanished: the device was unbound",
                _ => "open(2) of the VFIO cdev failed",
            };
            throw new IommufdException(errno, $"open {cdev}", $"device {device}: {hint}");
        }

        var bind = VfioMarshal.VfioBind(iommufd);
        int rc = Ioctl(dfd, VfioIoctl.DeviceBindIommufd, ref bind);
        if (rc < 0)
        {
            _sys.Close(dfd);
            var errno = (Errno)(-rc);
            string hint = errno switch
            {
                Errno.EBUSY or Errno.EEXIST => "the device is already bound to an iommufd",
                Errno.EINVAL => "the device is already bound (its VFIO cdev can be opened once: vfio_df_open), or the kernel refused the bind arguments (a VF may need its PF's VF token)",
                Errno.ENOTTY => "the kernel lacks VFIO device cdev support (CONFIG_VFIO_DEVICE_CDEV)",
                Errno.EPERM => "the device needs a VF token, or the VMM lacks permission",
                _ => "binding the device to the iommufd failed",
            };
            throw new IommufdException(errno, VfioIoctl.DeviceBindIommufd.CName(), $"device {device} ({cdev}), iommufd fd {iommufd}: {hint}");
        }

        var id = new DeviceId(bind.OutDevid);
        lock (_lock) _devices[id.Value] = new BoundDevice(id, device, cdev, dfd);
        return id;
    }

    /// <inheritdoc/>
    public void UnbindDevice(DeviceId device)
    {
        BoundDevice d = Lookup(device, "unbind device");
        lock (_lock) _devices.Remove(device.Value);
        _sys.Close(d.Fd);
    }

    /// <inheritdoc/>
    public ObjectId AttachDevice(DeviceId device, ObjectId pt)
    {
        BoundDevice d = Lookup(device, VfioIoctl.DeviceAttachIommufdPt.CName());
        var a = VfioMarshal.VfioAttach(pt);
        int rc = Ioctl(d.Fd, VfioIoctl.DeviceAttachIommufdPt, ref a);
        if (rc < 0)
        {
            var errno = (Errno)(-rc);
            string hint = errno switch
            {
                Errno.ENOENT => "pt_id does not exist, or it is a nested HWPT that translates (STE.CFG = S1) and the device has no vDEVICE yet: allocate the vDEVICE first",
                Errno.EINVAL => "pt_id is not an IOAS or HWPT, or it belongs to another IOMMU instance",
                Errno.EBUSY => "the device has PASIDs attached or is being reset",
                _ => "attaching failed",
            };
            throw new IommufdException(errno, VfioIoctl.DeviceAttachIommufdPt.CName(), $"dev_id {device} ({d.Name}), pt_id {pt}: {hint}");
        }
        return new ObjectId(a.PtId);
    }

    /// <inheritdoc/>
    public void DetachDevice(DeviceId device)
    {
        BoundDevice d = Lookup(device, VfioIoctl.DeviceDetachIommufdPt.CName());
        var a = VfioMarshal.VfioDetach();
        int rc = Ioctl(d.Fd, VfioIoctl.DeviceDetachIommufdPt, ref a);
        if (rc < 0)
            throw new IommufdException((Errno)(-rc), VfioIoctl.DeviceDetachIommufdPt.CName(), $"dev_id {device} ({d.Name})");
    }

    /// <inheritdoc/>
    public HwInfo GetHwInfo(DeviceId device, HwInfoType? type = null, uint? dataLength = null)
    {
        // Large enough for every type known today (ARM_SMMUV3 is 40 bytes); retried if not.
        uint length = dataLength ?? 64;
        while (true)
        {
            var buffer = new byte[length];
            IommuHwInfo a;
            int rc;
            fixed (byte* p = buffer)
            {
                a = IommufdMarshal.HwInfo(device, type, length, (ulong)p);
                rc = Ioctl(ref a, IommufdIoctl.GetHwInfo);
            }
            Check(rc, IommufdIoctl.GetHwInfo, IommufdMarshal.Describe(a));
            if (dataLength is null && a.DataLen > length)
            {
                length = a.DataLen;
                continue;
            }
            return IommufdMarshal.ParseHwInfo(a, buffer);
        }
    }

    // ------------------------------------------------------------------ HWPT

    /// <inheritdoc/>
    public HwptId AllocHwpt(DeviceId device, ObjectId pt, HwptAllocFlags flags, HwptDataType dataType,
        ReadOnlySpan<byte> data, uint? faultId = null)
    {
        IommuHwptAlloc a;
        int rc;
        fixed (byte* p = data)
        {
            a = IommufdMarshal.HwptAlloc(device, pt, flags, dataType, (uint)data.Length, (ulong)p, faultId);
            rc = Ioctl(ref a, IommufdIoctl.HwptAlloc);
        }
        Check(rc, IommufdIoctl.HwptAlloc, IommufdMarshal.Describe(a));
        return new HwptId(a.OutHwptId);
    }

    /// <inheritdoc/>
    public InvalidateResult Invalidate(ObjectId target, HwptInvalidateDataType dataType, uint entryLength, uint entryCount,
        ReadOnlySpan<byte> entries)
    {
        // Never hand the kernel a length that runs past the caller's buffer.
        if ((ulong)entryLength * entryCount > (ulong)entries.Length) return new InvalidateResult(0, Errno.EFAULT);
        IommuHwptInvalidate a;
        int rc;
        fixed (byte* p = entries)
        {
            a = IommufdMarshal.HwptInvalidate(target, dataType, entryLength, entryCount, (ulong)p);
            rc = Ioctl(ref a, IommufdIoctl.HwptInvalidate);
        }
        // entry_num comes back as the count handled; a failure before the kernel wrote it
        // back leaves the input, so clamp to what was asked.
        return new InvalidateResult(Math.Min(a.EntryNum, entryCount), rc < 0 ? (Errno)(-rc) : Errno.None);
    }

    // ------------------------------------------------------------------ vIOMMU

    /// <inheritdoc/>
    public ViommuAllocation AllocViommu(DeviceId device, HwptId nestParent, ViommuType type, ReadOnlySpan<byte> data = default,
        uint flags = 0)
    {
        // The kernel writes outputs into the driver data, so it gets a private copy.
        byte[] buffer = data.ToArray();
        IommuViommuAlloc a;
        int rc;
        fixed (byte* p = buffer)
        {
            a = IommufdMarshal.ViommuAlloc(device, nestParent, type, flags, (uint)buffer.Length, (ulong)p);
            rc = Ioctl(ref a, IommufdIoctl.ViommuAlloc);
        }
        Check(rc, IommufdIoctl.ViommuAlloc, IommufdMarshal.Describe(a));
        return new ViommuAllocation(new ViommuId(a.OutViommuId), type, buffer);
    }

    /// <inheritdoc/>
    public VdeviceId AllocVdevice(ViommuId viommu, DeviceId device, ulong virtId)
    {
        var a = IommufdMarshal.VdeviceAlloc(viommu, device, virtId);
        Check(Ioctl(ref a, IommufdIoctl.VdeviceAlloc), IommufdIoctl.VdeviceAlloc, IommufdMarshal.Describe(a));
        return new VdeviceId(a.OutVdeviceId);
    }

    /// <inheritdoc/>
    public IVeventQueue AllocVeventq(ViommuId viommu, VeventqType type, uint depth, uint flags = 0)
    {
        var a = IommufdMarshal.VeventqAlloc(viommu, type, depth, flags);
        Check(Ioctl(ref a, IommufdIoctl.VeventqAlloc), IommufdIoctl.VeventqAlloc, IommufdMarshal.Describe(a));
        return new LinuxVeventQueue(_sys, a.OutVeventqFd, new VeventqId(a.OutVeventqId), type, depth);
    }

    /// <inheritdoc/>
    public HwQueueId AllocHwQueue(ViommuId viommu, HwQueueType type, uint index, ulong nestingParentIova, ulong length,
        uint flags = 0)
    {
        var a = IommufdMarshal.HwQueueAlloc(viommu, type, index, nestingParentIova, length, flags);
        Check(Ioctl(ref a, IommufdIoctl.HwQueueAlloc), IommufdIoctl.HwQueueAlloc, IommufdMarshal.Describe(a));
        return new HwQueueId(a.OutHwQueueId);
    }

    /// <inheritdoc/>
    public IMmioMapping Mmap(ulong offset, ulong length)
    {
        int fd = CheckOpen();
        const string op = "mmap /dev/iommu";
        if (offset > long.MaxValue)
            throw new IommufdException(Errno.EINVAL, op, $"offset 0x{offset:X} does not fit off_t");
        int rc = _sys.Mmap(length, LinuxAbi.PROT_READ | LinuxAbi.PROT_WRITE, LinuxAbi.MAP_SHARED, fd, (long)offset, out nint address);
        if (rc < 0)
        {
            var errno = (Errno)(-rc);
            string hint = errno switch
            {
                Errno.ENXIO => "offset and length must exactly match a region a vIOMMU exported (e.g. the VINTF page from IOMMU_VIOMMU_ALLOC)",
                Errno.EINVAL => "length must be a multiple of the page size",
                Errno.EPERM => "executable mappings are refused",
                _ => "mmap(2) failed",
            };
            throw new IommufdException(errno, op, $"offset 0x{offset:X}, length 0x{length:X}: {hint}");
        }
        return new LinuxMmioMapping(_sys, address, length, offset);
    }

    // ------------------------------------------------------------------ all objects

    /// <inheritdoc/>
    public void Destroy(ObjectId id)
    {
        var a = IommufdMarshal.Destroy(id);
        Check(Ioctl(ref a, IommufdIoctl.Destroy), IommufdIoctl.Destroy, $"id {id}");
    }

    /// <summary>Closes every bound device's cdev, then the iommufd (the kernel destroys what is left).</summary>
    public void Dispose()
    {
        BoundDevice[] devices;
        lock (_lock)
        {
            devices = [.. _devices.Values];
            _devices.Clear();
        }
        foreach (BoundDevice d in devices) _sys.Close(d.Fd);
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) _sys.Close(fd);
    }

    // ------------------------------------------------------------------ raw access

    /// <summary>
    /// ioctl(2) on the iommufd with caller-built argument bytes: 0 or -errno, never throws for
    /// the kernel's answer. For checks of the kernel's own argument rules (struct sizes,
    /// reserved bytes), which the typed calls above never break; the same entry point as the
    /// emulated context's <c>EmulatedIommufd.Ioctl</c>.
    /// </summary>
    public int Ioctl(uint request, Span<byte> argument)
    {
        int fd = CheckOpen();
        lock (_lock) return _sys.Ioctl(fd, request, argument);
    }

    /// <summary>
    /// The VFIO cdev file descriptor of a bound device, for the device's own VFIO calls (region
    /// access, reset) that are not the iommufd's business. Owned by this object: do not close it.
    /// </summary>
    /// <exception cref="IommufdException">ENOENT not a bound device.</exception>
    public int DeviceFileDescriptor(DeviceId device) => Lookup(device, "device file descriptor").Fd;

    // ------------------------------------------------------------------ plumbing

    private int Ioctl<T>(ref T argument, IommufdIoctl request) where T : unmanaged
    {
        int fd = CheckOpen();
        lock (_lock) return _sys.Ioctl(fd, (uint)request, IommufdMarshal.AsBytes(ref argument));
    }

    private int Ioctl<T>(int fd, VfioIoctl request, ref T argument) where T : unmanaged
    {
        lock (_lock) return _sys.Ioctl(fd, (uint)request, IommufdMarshal.AsBytes(ref argument));
    }

    private static void Check(int rc, IommufdIoctl ioctl, string arguments)
    {
        if (rc < 0) throw IommufdException.ForIoctl(ioctl, (Errno)(-rc), arguments);
    }

    private int CheckOpen()
    {
        int fd = _fd;
        ObjectDisposedException.ThrowIf(fd < 0, this);
        return fd;
    }

    private BoundDevice Lookup(DeviceId device, string operation)
    {
        CheckOpen();
        lock (_lock)
        {
            if (_devices.TryGetValue(device.Value, out BoundDevice? d)) return d;
        }
        throw new IommufdException(Errno.ENOENT, operation, $"dev_id {device} is not a device bound through this iommufd (BindDevice)");
    }
}

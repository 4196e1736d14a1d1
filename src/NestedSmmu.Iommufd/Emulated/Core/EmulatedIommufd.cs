using System.Buffers;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Iommufd.Uapi.Vfio;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// One open iommufd on an <see cref="EmulatedHost"/>: the emulated kernel's answer to
/// <see cref="IIommufd"/>. Every call goes through the same ioctl structs the real backend
/// builds (<see cref="IommufdMarshal"/>), with user pointers into the host's emulated VMM address
/// space, so the kernel side sees exactly what Linux would; <see cref="Ioctl"/> exposes that
/// level directly for tests that need raw arguments (NULL pointers, reserved fields, short
/// sizes). Devices are bound by name or PCI address; several contexts may be open on one host
/// (a device is bound to at most one). Disposing closes the fd: bound devices are unbound, then
/// objects are destroyed leaves first. Calls are serialised by the host's kernel lock.
/// </summary>
public sealed partial class EmulatedIommufd : IIommufd
{
    private readonly EmulatedHost _host;
    private readonly int _contextId;
    private bool _closed;

    internal EmulatedIommufd(EmulatedHost host, int contextId)
    {
        _host = host;
        _contextId = contextId;
    }

    /// <summary>The host this context was opened on.</summary>
    public EmulatedHost Host => _host;

    /// <inheritdoc/>
    public string Description => $"emulated host '{_host.Profile.Name}' (iommufd context {_contextId})";

    /// <summary>True once disposed.</summary>
    public bool IsClosed => _closed;

    internal UserCopy Copy => _host.Copy;

    // ------------------------------------------------------------------ memory and IOAS

    /// <inheritdoc/>
    /// <remarks>A physically contiguous run of host memory, zeroed, rounded up to whole pages.</remarks>
    public HostMemoryRegion AllocateHostMemory(ulong length, string name)
    {
        ArgumentOutOfRangeException.ThrowIfZero(length);
        ArgumentException.ThrowIfNullOrEmpty(name);
        lock (_host.KernelLock)
        {
            ThrowIfClosed();
            if (length > ulong.MaxValue - PageMask)
                throw new IommufdException(Errno.ENOMEM, "mmap guest memory", $"'{name}': length 0x{length:X} is too large");
            ulong rounded = (length + PageMask) & ~PageMask;
            ulong pa = _host.Allocator.TryAllocate(rounded, PageSize, name)
                ?? throw new IommufdException(Errno.ENOMEM, "mmap guest memory",
                    $"'{name}': no run of 0x{rounded:X} free bytes in the host's 0x{_host.Profile.Memory.Size:X} bytes of memory " +
                    $"(0x{_host.Allocator.BytesAllocated:X} in use)");
            return new EmulatedHostMemoryRegion(_host, pa, rounded, name);
        }
    }

    /// <inheritdoc/>
    public IoasId AllocIoas()
    {
        var a = IommufdMarshal.IoasAlloc();
        Check(Call(IommufdIoctl.IoasAlloc, ref a), IommufdIoctl.IoasAlloc, "flags 0");
        return new IoasId(a.OutIoasId);
    }

    /// <inheritdoc/>
    /// <remarks>The emulated host maps whole pages: offset, length and IOVA must be page aligned (else EINVAL).</remarks>
    public ulong MapIoas(IoasId ioas, HostMemoryRegion memory, ulong memoryOffset, ulong length, ulong? iova,
        IoasMapFlags flags = IoasMapFlags.Readable | IoasMapFlags.Writeable)
    {
        ArgumentNullException.ThrowIfNull(memory);
        if (memory is not EmulatedHostMemoryRegion region || region.Host != _host)
            throw new IommufdException(Errno.EFAULT, IommufdIoctl.IoasMap.CName(),
                $"host memory region '{memory.Name}' is a {memory.GetType().Name} not allocated on this emulated host: allocate guest RAM with this backend's AllocateHostMemory");
        ObjectDisposedException.ThrowIf(region.IsDisposed, region);
        if (!region.Contains(memoryOffset, length))
            throw new IommufdException(Errno.EFAULT, IommufdIoctl.IoasMap.CName(),
                $"offset 0x{memoryOffset:X} + length 0x{length:X} leaves host memory region '{region.Name}' of 0x{region.Length:X} bytes");
        IoasMapFlags all = flags | (iova.HasValue ? IoasMapFlags.FixedIova : IoasMapFlags.None);
        var a = IommufdMarshal.IoasMap(ioas, all, region.UserAddress + memoryOffset, length, iova ?? 0);
        // The argument text is built only on failure: a VMM maps memory piece by piece, a million times at scale.
        int rc = Call(IommufdIoctl.IoasMap, ref a);
        if (rc < 0) Check(rc, IommufdIoctl.IoasMap, IommufdMarshal.Describe(a));
        return a.Iova;
    }

    /// <inheritdoc/>
    public ulong UnmapIoas(IoasId ioas, ulong iova, ulong length)
    {
        var a = IommufdMarshal.IoasUnmap(ioas, iova, length);
        int rc = Call(IommufdIoctl.IoasUnmap, ref a);
        if (rc < 0) Check(rc, IommufdIoctl.IoasUnmap, IommufdMarshal.Describe(a));
        return a.Length;
    }

    /// <inheritdoc/>
    public IovaRanges GetIovaRanges(IoasId ioas)
    {
        lock (_host.KernelLock)
        {
            uint capacity = 1;
            while (true)
            {
                var buffer = new byte[capacity * (uint)System.Runtime.InteropServices.Marshal.SizeOf<IommuIovaRange>()];
                using var user = new UserBuffer(_host.UserMemory, buffer);
                var a = IommufdMarshal.IoasIovaRanges(ioas, capacity, user.Address);
                int rc = Call(IommufdIoctl.IoasIovaRanges, ref a);
                if (rc == -(int)Errno.EMSGSIZE && a.NumIovas > capacity)
                {
                    capacity = a.NumIovas;
                    continue;
                }
                Check(rc, IommufdIoctl.IoasIovaRanges, $"ioas_id {ioas}, num_iovas {capacity}");
                var ranges = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, IommuIovaRange>(buffer);
                return IommufdMarshal.ParseIovaRanges(a, ranges);
            }
        }
    }

    // ------------------------------------------------------------------ devices

    /// <inheritdoc/>
    /// <remarks>The device is named by its profile name (<c>gpu0</c>) or PCI address (<c>0009:01:00.0</c>, or <c>bb:dd.f</c> in segment 0).</remarks>
    public DeviceId BindDevice(string device)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(device);
        lock (_host.KernelLock)
        {
            ThrowIfClosed();
            return new DeviceId(BindCore(device).Id);
        }
    }

    /// <inheritdoc/>
    public void UnbindDevice(DeviceId device)
    {
        lock (_host.KernelLock) UnbindCore(LookupDevice(device, "unbind device"));
    }

    /// <inheritdoc/>
    public ObjectId AttachDevice(DeviceId device, ObjectId pt)
    {
        lock (_host.KernelLock)
        {
            DeviceObject dev = LookupDevice(device, VfioIoctl.DeviceAttachIommufdPt.CName());
            return new ObjectId(AttachCore(dev, pt.Value).Id);
        }
    }

    /// <inheritdoc/>
    /// <remarks>Detaching a device that is not attached does nothing, as VFIO does.</remarks>
    public void DetachDevice(DeviceId device)
    {
        lock (_host.KernelLock) DetachCore(LookupDevice(device, VfioIoctl.DeviceDetachIommufdPt.CName()));
    }

    /// <inheritdoc/>
    public HwInfo GetHwInfo(DeviceId device, HwInfoType? type = null, uint? dataLength = null)
    {
        lock (_host.KernelLock)
        {
            uint length = dataLength ?? KnownHwInfoLength;
            while (true)
            {
                var buffer = new byte[length];
                HwInfo info = GetHwInfo(device, type, buffer);
                if (dataLength is null && info.DataLength > length)
                {
                    length = info.DataLength;
                    continue;
                }
                return info;
            }
        }
    }

    /// <summary>Large enough for every hw_info type known today (ARM_SMMUV3 is 40 bytes).</summary>
    private const uint KnownHwInfoLength = 64;

    /// <summary>
    /// IOMMU_GET_HW_INFO into a caller's buffer, as the kernel fills it: min(buffer, kernel
    /// length) bytes of data, zeros after them (data_len is the buffer's length; empty passes
    /// NULL with length 0).
    /// </summary>
    /// <exception cref="IommufdException">As <see cref="GetHwInfo(DeviceId, HwInfoType?, uint?)"/>.</exception>
    public HwInfo GetHwInfo(DeviceId device, HwInfoType? type, Span<byte> buffer)
    {
        lock (_host.KernelLock)
        {
            byte[] bytes = buffer.ToArray();
            using var user = new UserBuffer(_host.UserMemory, bytes);
            var a = IommufdMarshal.HwInfo(device, type, (uint)bytes.Length, user.Address);
            Check(Call(IommufdIoctl.GetHwInfo, ref a), IommufdIoctl.GetHwInfo, IommufdMarshal.Describe(a));
            bytes.CopyTo(buffer);
            return IommufdMarshal.ParseHwInfo(a, bytes);
        }
    }

    // ------------------------------------------------------------------ HWPT

    /// <inheritdoc/>
    public HwptId AllocHwpt(DeviceId device, ObjectId pt, HwptAllocFlags flags, HwptDataType dataType,
        ReadOnlySpan<byte> data, uint? faultId = null)
    {
        lock (_host.KernelLock)
        {
            using var user = new UserBuffer(_host.UserMemory, data.ToArray());
            var a = IommufdMarshal.HwptAlloc(device, pt, flags, dataType, (uint)data.Length, user.Address, faultId);
            Check(Call(IommufdIoctl.HwptAlloc, ref a), IommufdIoctl.HwptAlloc, IommufdMarshal.Describe(a));
            return new HwptId(a.OutHwptId);
        }
    }

    /// <inheritdoc/>
    public InvalidateResult Invalidate(ObjectId target, HwptInvalidateDataType dataType, uint entryLength, uint entryCount,
        ReadOnlySpan<byte> entries)
    {
        // Never hand the kernel a length that runs past the caller's buffer.
        if ((ulong)entryLength * entryCount > (ulong)entries.Length) return new InvalidateResult(0, Errno.EFAULT);
        int length = (int)((ulong)entryLength * entryCount);
        // The caller's entries in user memory: a pooled copy, so an invalidation allocates nothing.
        byte[] copy = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            entries[..length].CopyTo(copy);
            lock (_host.KernelLock)
            {
                using var user = new UserBuffer(_host.UserMemory, copy, length);
                var a = IommufdMarshal.HwptInvalidate(target, dataType, entryLength, entryCount, user.Address);
                int rc = Call(IommufdIoctl.HwptInvalidate, ref a);
                return new InvalidateResult(Math.Min(a.EntryNum, entryCount), rc < 0 ? (Errno)(-rc) : Errno.None);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    // ------------------------------------------------------------------ vIOMMU

    /// <inheritdoc/>
    public ViommuAllocation AllocViommu(DeviceId device, HwptId nestParent, ViommuType type, ReadOnlySpan<byte> data = default,
        uint flags = 0)
    {
        lock (_host.KernelLock)
        {
            byte[] buffer = data.ToArray();
            using var user = new UserBuffer(_host.UserMemory, buffer);
            var a = IommufdMarshal.ViommuAlloc(device, nestParent, type, flags, (uint)buffer.Length, user.Address);
            Check(Call(IommufdIoctl.ViommuAlloc, ref a), IommufdIoctl.ViommuAlloc, IommufdMarshal.Describe(a));
            return new ViommuAllocation(new ViommuId(a.OutViommuId), type, buffer);
        }
    }

    /// <inheritdoc/>
    public VdeviceId AllocVdevice(ViommuId viommu, DeviceId device, ulong virtId)
    {
        var a = IommufdMarshal.VdeviceAlloc(viommu, device, virtId);
        Check(Call(IommufdIoctl.VdeviceAlloc, ref a), IommufdIoctl.VdeviceAlloc, IommufdMarshal.Describe(a));
        return new VdeviceId(a.OutVdeviceId);
    }

    /// <inheritdoc/>
    public IVeventQueue AllocVeventq(ViommuId viommu, VeventqType type, uint depth, uint flags = 0)
    {
        lock (_host.KernelLock)
        {
            var a = IommufdMarshal.VeventqAlloc(viommu, type, depth, flags);
            Check(Call(IommufdIoctl.VeventqAlloc, ref a), IommufdIoctl.VeventqAlloc, IommufdMarshal.Describe(a));
            return TakeVeventqFd(a.OutVeventqFd);
        }
    }

    /// <inheritdoc/>
    public HwQueueId AllocHwQueue(ViommuId viommu, HwQueueType type, uint index, ulong nestingParentIova, ulong length,
        uint flags = 0)
    {
        var a = IommufdMarshal.HwQueueAlloc(viommu, type, index, nestingParentIova, length, flags);
        Check(Call(IommufdIoctl.HwQueueAlloc, ref a), IommufdIoctl.HwQueueAlloc, IommufdMarshal.Describe(a));
        return new HwQueueId(a.OutHwQueueId);
    }

    /// <inheritdoc/>
    public IMmioMapping Mmap(ulong offset, ulong length)
    {
        lock (_host.KernelLock)
        {
            ThrowIfClosed();
            return MmapCore(offset, length);
        }
    }

    // ------------------------------------------------------------------ all objects

    /// <inheritdoc/>
    public void Destroy(ObjectId id)
    {
        var a = IommufdMarshal.Destroy(id);
        Check(Call(IommufdIoctl.Destroy, ref a), IommufdIoctl.Destroy, $"id {id}");
    }

    /// <summary>
    /// Closes the context: every bound device is unbound (its vDEVICE tombstoned), open mmaps
    /// and vEVENTQ readers are revoked, then every object is destroyed leaves first.
    /// </summary>
    public void Dispose()
    {
        lock (_host.KernelLock)
        {
            if (_closed) return;
            foreach (DeviceObject dev in _objects.Values.OfType<DeviceObject>().ToList()) UnbindCore(dev);
            foreach (EmulatedMmioMapping m in _mappings.ToList()) m.Dispose();
            foreach (VeventqObject q in _objects.Values.OfType<VeventqObject>())
            {
                if (q.Reader is null) continue;
                q.Reader.Orphan();
                q.Reader = null;
                q.Users--;
            }
            _veventqFds.Clear();
            DestroyAll();
            _closed = true;
            _host.ContextClosed(this);
        }
    }

    // ------------------------------------------------------------------ plumbing

    private int Call<T>(IommufdIoctl request, ref T argument) where T : unmanaged =>
        Ioctl((uint)request, IommufdMarshal.AsBytes(ref argument));

    private static void Check(int rc, IommufdIoctl ioctl, string arguments)
    {
        if (rc < 0) throw IommufdException.ForIoctl(ioctl, (Errno)(-rc), arguments);
    }

    private void ThrowIfClosed() => ObjectDisposedException.ThrowIf(_closed, this);

    private DeviceObject LookupDevice(DeviceId device, string operation)
    {
        ThrowIfClosed();
        return Get<DeviceObject>(device.Value, ObjectType.Device, out _)
            ?? throw new IommufdException(Errno.ENOENT, operation, $"dev_id {device} is not a device bound through this iommufd (BindDevice)");
    }

    /// <summary>A managed buffer mapped into the VMM address space for one call (NULL when empty).</summary>
    private readonly struct UserBuffer : IDisposable
    {
        private readonly UserAddressSpace _space;

        public UserBuffer(UserAddressSpace space, byte[] bytes) : this(space, bytes, bytes.Length) { }

        /// <summary>The first <paramref name="length"/> bytes of <paramref name="bytes"/> (a pooled array).</summary>
        public UserBuffer(UserAddressSpace space, byte[] bytes, int length)
        {
            _space = space;
            Address = length == 0 ? 0 : space.Map(bytes, length);
        }

        public ulong Address { get; }

        public void Dispose()
        {
            if (Address != 0) _space.Unmap(Address);
        }
    }
}

using NestedSmmu.Hardware.Memory;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Emulated;

// vIOMMUs and what hangs off them (viommu.c, eventq.c): IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC,
// IOMMU_VEVENTQ_ALLOC, IOMMU_HW_QUEUE_ALLOC, and the regions a vIOMMU exports for mmap.
public sealed partial class EmulatedIommufd
{
    /// <summary>An mmap-able region a vIOMMU exported (iommufd_mmap): exact offset and length, and what backs it.</summary>
    private sealed record MmapRegion(ViommuObject Owner, ulong Offset, ulong Length, IMmioDevice Device);

    private readonly SortedDictionary<ulong, MmapRegion> _mmapRegions = new();
    private readonly Dictionary<int, EmulatedVeventQueue> _veventqFds = new();
    private readonly List<EmulatedMmioMapping> _mappings = [];

    // ------------------------------------------------------------------ IOMMU_VIOMMU_ALLOC

    /// <summary>
    /// iommufd_viommu_alloc_ioctl, in the kernel's order: flags or type 0 (EOPNOTSUPP); the device
    /// (ENOENT); the driver's support for the type (EOPNOTSUPP; an SMMU that cannot nest supports
    /// none, nor does a master that is not CANWBS); the HWPT must be a paging HWPT (ENOENT) made with NEST_PARENT (EINVAL); then the
    /// driver's init (EINVAL when the parent belongs to another SMMU, ENOSPC without a
    /// free VMID, and the type's own data checks). The vIOMMU holds the parent.
    /// </summary>
    private int ViommuAllocIoctl(ref IommuViommuAlloc cmd, ref bool respond)
    {
        if (cmd.Flags != 0 || cmd.Type == (uint)ViommuType.Default) return Fail(Errno.EOPNOTSUPP);
        DeviceObject? dev = Get<DeviceObject>(cmd.DevId, ObjectType.Device, out Errno e);
        if (dev is null) return Fail(e);
        ArmSmmuDevice smmu = dev.Master.Smmu;
        // arm_smmu_get_viommu_size: no vIOMMU for a master that is not CANWBS (this SMMU has no S2FWB)
        if (!SupportsViommuType(smmu, cmd.Type) || !dev.Device.Profile.Canwbs) return Fail(Errno.EOPNOTSUPP);
        HwptPagingObject? hwpt = Get<HwptPagingObject>(cmd.HwptId, ObjectType.HwptPaging, out e);
        if (hwpt is null) return Fail(e);
        if (!hwpt.NestParent) return Fail(Errno.EINVAL);

        var viommu = new ViommuObject(this, cmd.Type, smmu, hwpt);
        AllocId(viommu);
        hwpt.Users++;
        UserData? data = cmd.DataLen != 0 ? new UserData(cmd.Type, cmd.DataUptr, cmd.DataLen) : null;
        e = InitViommu(viommu, data);
        if (e != Errno.None)
        {
            hwpt.Users--;
            AbortObject(viommu);
            return Fail(e);
        }
        cmd.OutViommuId = viommu.Id;
        respond = true;
        return 0;
    }

    /// <summary>get_viommu_size: which types the device's SMMU driver can make.</summary>
    private bool SupportsViommuType(ArmSmmuDevice smmu, uint type)
    {
        if (!smmu.SupportsNesting) return false;
        if (type == (uint)ViommuType.ArmSmmuV3) return true;
        if (type == SelftestTypes.ViommuTypeSelftest) return _host.Options.EnableSelftestTypes;
        return smmu.Implementation?.SupportsViommuType(type) ?? false;
    }

    /// <summary>viommu_init (arm_vsmmu_init and the implementation's vsmmu_init).</summary>
    private Errno InitViommu(ViommuObject viommu, UserData? data)
    {
        PagingDomain parent = viommu.Hwpt.Domain;
        ArmSmmuDevice smmu = viommu.Smmu;
        Errno e;
        if (viommu.ViommuType == (uint)ViommuType.ArmSmmuV3)
        {
            e = ArmVsmmu.TryCreate(smmu, parent, out ArmVsmmu? vsmmu);
            if (e != Errno.None) return e;
            vsmmu!.Core = viommu;
            viommu.Driver = vsmmu;
            return Errno.None;
        }
        if (viommu.ViommuType == SelftestTypes.ViommuTypeSelftest)
        {
            e = SelftestVsmmu.TryCreate(smmu, parent, out SelftestVsmmu? selftest);
            if (e != Errno.None) return e;
            selftest!.Core = viommu;
            viommu.Driver = selftest;
            e = selftest.InitData(data);
            if (e != Errno.None)
            {
                DestroyMmapsOf(viommu);
                selftest.Destroy();
            }
            return e;
        }
        SmmuImplementation impl = smmu.Implementation!;
        e = impl.InitViommu(viommu.ViommuType, parent, out ArmVsmmu? driver);
        if (e != Errno.None) return e;
        driver!.Core = viommu;
        viommu.Driver = driver;
        e = impl.InitViommuData(driver, data);
        if (e != Errno.None)
        {
            DestroyMmapsOf(viommu);
            driver.Destroy();
        }
        return e;
    }

    // ------------------------------------------------------------------ IOMMU_VDEVICE_ALLOC

    /// <summary>
    /// iommufd_vdevice_alloc_ioctl: the vIOMMU and device must exist (ENOENT) and share the SMMU
    /// (EINVAL); a device has at most one vDEVICE and a virtual ID one device (EEXIST); then the
    /// driver's vdevice_init. The vDEVICE holds the vIOMMU and the device.
    /// </summary>
    private int VdeviceAllocIoctl(ref IommuVdeviceAlloc cmd, ref bool respond)
    {
        // virt_id indexes an xarray (unsigned long): on a 64-bit kernel every value fits.
        ViommuObject? viommu = Get<ViommuObject>(cmd.ViommuId, ObjectType.Viommu, out Errno e);
        if (viommu is null) return Fail(e);
        DeviceObject? dev = Get<DeviceObject>(cmd.DevId, ObjectType.Device, out e);
        if (dev is null) return Fail(e);
        if (viommu.Smmu != dev.Master.Smmu) return Fail(Errno.EINVAL);
        if (dev.Vdevice is not null) return Fail(Errno.EEXIST);

        var vdev = new VdeviceObject(this, viommu, dev, cmd.VirtId);
        AllocId(vdev);
        if (!viommu.Vdevs.TryAdd(cmd.VirtId, vdev))
        {
            AbortObject(vdev);
            return Fail(Errno.EEXIST);
        }
        viommu.Users++;
        dev.Users++;
        dev.Vdevice = vdev;
        e = viommu.Driver.VdeviceInit(vdev);
        if (e != Errno.None)
        {
            AbortObject(vdev);
            vdev.Destroy();
            return Fail(e);
        }
        cmd.OutVdeviceId = vdev.Id;
        respond = true;
        return 0;
    }

    // ------------------------------------------------------------------ IOMMU_VEVENTQ_ALLOC

    /// <summary>
    /// iommufd_veventq_alloc: flags, __reserved or type 0 (EOPNOTSUPP); depth 0 (EINVAL); the
    /// vIOMMU (ENOENT); one queue per type per vIOMMU (EEXIST). Any non-zero type is accepted
    /// (only the driver decides what it reports). Returns the queue's ID and a new fd, which
    /// holds the queue; the queue holds the vIOMMU.
    /// </summary>
    private int VeventqAllocIoctl(ref IommuVeventqAlloc cmd, ref bool respond)
    {
        if (cmd.Flags != 0 || cmd.Reserved != 0 || cmd.Type == (uint)VeventqType.Default) return Fail(Errno.EOPNOTSUPP);
        if (cmd.VeventqDepth == 0) return Fail(Errno.EINVAL);
        ViommuObject? viommu = Get<ViommuObject>(cmd.ViommuId, ObjectType.Viommu, out Errno e);
        if (viommu is null) return Fail(e);
        if (viommu.FindVeventq(cmd.Type) is not null) return Fail(Errno.EEXIST);
        int fd = _host.AllocFd();
        var queue = new VeventqObject(this, viommu, cmd.Type, cmd.VeventqDepth, fd);
        AllocId(queue);
        viommu.Veventqs.Add(queue);
        viommu.Users++;
        var reader = new EmulatedVeventQueue(_host, queue);
        queue.Reader = reader;
        queue.Users++;
        _veventqFds.Add(fd, reader);
        cmd.OutVeventqId = queue.Id;
        cmd.OutVeventqFd = fd;
        respond = true;
        return 0;
    }

    /// <summary>
    /// The reader of the vEVENTQ fd an IOMMU_VEVENTQ_ALLOC issued through <see cref="Ioctl"/>
    /// returned (each fd is handed out once).
    /// </summary>
    /// <exception cref="IommufdException">EBADF: no such fd, or it was already taken.</exception>
    public EmulatedVeventQueue TakeVeventqFd(int fd)
    {
        lock (_host.KernelLock)
        {
            if (_veventqFds.Remove(fd, out EmulatedVeventQueue? reader)) return reader;
            throw new IommufdException(Errno.EBADF, "vEVENTQ fd", $"fd {fd} is not a vEVENTQ fd of this context, or it was already taken");
        }
    }

    // ------------------------------------------------------------------ IOMMU_HW_QUEUE_ALLOC

    /// <summary>
    /// iommufd_hw_queue_alloc_ioctl: flags or type 0 (EOPNOTSUPP); length 0 (EINVAL); the range
    /// overflowing (EOVERFLOW); the vIOMMU (ENOENT); the driver's support for the type
    /// (EOPNOTSUPP). The core then pins the pages of the parent IOAS that the queue spans (ENOENT
    /// when not mapped, EFAULT when not physically contiguous) and gives the driver the host PA.
    /// </summary>
    private int HwQueueAllocIoctl(ref IommuHwQueueAlloc cmd, ref bool respond)
    {
        if (cmd.Flags != 0 || cmd.Type == (uint)HwQueueType.Default) return Fail(Errno.EOPNOTSUPP);
        if (cmd.Length == 0) return Fail(Errno.EINVAL);
        if (cmd.NestingParentIova > ulong.MaxValue - (cmd.Length - 1)) return Fail(Errno.EOVERFLOW);
        ViommuObject? viommu = Get<ViommuObject>(cmd.ViommuId, ObjectType.Viommu, out Errno e);
        if (viommu is null) return Fail(e);
        if (viommu.Driver.GetHwQueueSize(cmd.Type) == 0) return Fail(Errno.EOPNOTSUPP);

        var queue = new HwQueueObject(this, viommu, cmd.Type, cmd.Index, cmd.NestingParentIova, cmd.Length);
        AllocId(queue);

        // iommufd_hw_queue_alloc_phys: pin [page_down(iova), page_up(iova + length)).
        ulong aligned = cmd.NestingParentIova & ~PageMask;
        ulong offset = cmd.NestingParentIova - aligned;
        if (offset > ulong.MaxValue - cmd.Length || offset + cmd.Length > ulong.MaxValue - PageMask)
        {
            AbortObject(queue);
            return Fail(Errno.ERANGE);
        }
        ulong pinLength = (offset + cmd.Length + PageMask) & ~PageMask;
        IoasObject ioas = viommu.Hwpt.Ioas;
        e = Pin(ioas, aligned, pinLength, out IoasPin? pin, out List<(ulong Pa, ulong Length)> runs);
        if (e == Errno.None && runs.Count != 1)
        {
            // The hardware reads the queue by physical address: its pages must be contiguous.
            ReleasePin(ioas, pin);
            e = Errno.EFAULT;
        }
        if (e != Errno.None)
        {
            AbortObject(queue);
            return Fail(e);
        }
        queue.Pin = pin;
        queue.BasePhysicalAddress = runs[0].Pa + offset;
        viommu.Users++;
        e = viommu.Driver.HwQueueInitPhys(queue, cmd.Index, queue.BasePhysicalAddress);
        if (e != Errno.None)
        {
            AbortObject(queue);
            queue.Destroy();
            return Fail(e);
        }
        queue.DriverInitialised = true;
        viommu.HwQueues[cmd.Index] = queue;
        cmd.OutHwQueueId = queue.Id;
        respond = true;
        return 0;
    }

    /// <summary>The vIOMMU <paramref name="id"/> of this context, or null (diagnostics).</summary>
    internal ViommuObject? FindViommu(uint id) => Get<ViommuObject>(id, ObjectType.Viommu, out _);

    // ------------------------------------------------------------------ mmap regions

    /// <summary>
    /// iommufd_viommu_alloc_mmap: exports <paramref name="device"/> for mmap at the lowest free
    /// page-aligned offset from one page up; returns the offset.
    /// </summary>
    internal ulong AllocMmap(ViommuObject owner, IMmioDevice device, ulong length)
    {
        ulong offset = PageSize;
        foreach (MmapRegion r in _mmapRegions.Values)
        {
            if (offset + length <= r.Offset) break;
            offset = Math.Max(offset, (r.Offset + r.Length + PageMask) & ~PageMask);
        }
        _mmapRegions.Add(offset, new MmapRegion(owner, offset, length, device));
        return offset;
    }

    /// <summary>Removes every region <paramref name="owner"/> exported (iommufd_viommu_destroy_mmap).</summary>
    internal void DestroyMmapsOf(ViommuObject owner)
    {
        foreach (MmapRegion r in _mmapRegions.Values.Where(r => r.Owner == owner).ToList()) _mmapRegions.Remove(r.Offset);
    }

    /// <summary>
    /// mmap(2) of the iommufd: the mm core refuses a zero length or an unaligned offset (EINVAL)
    /// and rounds the length up to whole pages; iommufd_fops_mmap then wants the offset and that
    /// length to match an exported region exactly (ENXIO). The mapping holds the vIOMMU.
    /// </summary>
    private IMmioMapping MmapCore(ulong offset, ulong length)
    {
        const string op = "mmap /dev/iommu";
        if (length == 0 || (offset & PageMask) != 0 || length > ulong.MaxValue - PageMask)
            throw new IommufdException(Errno.EINVAL, op, $"offset 0x{offset:X}, length 0x{length:X}: the offset must be a multiple of the page size and the length non-zero");
        length = (length + PageMask) & ~PageMask;
        if (!_mmapRegions.TryGetValue(offset, out MmapRegion? region) || region.Length != length)
            throw new IommufdException(Errno.ENXIO, op,
                $"offset 0x{offset:X}, length 0x{length:X}: offset and length must exactly match a region a vIOMMU exported");
        region.Owner.Users++;
        var mapping = new EmulatedMmioMapping(this, region.Owner, region.Device, offset);
        _mappings.Add(mapping);
        return mapping;
    }

    /// <summary>The vIOMMUs the live mmaps hold, one entry per mapping.</summary>
    internal IEnumerable<ViommuObject> MappedOwners => _mappings.Select(m => m.Owner);

    /// <summary>munmap: the mapping no longer holds its vIOMMU.</summary>
    internal void Unmapped(EmulatedMmioMapping mapping, ViommuObject owner)
    {
        if (_mappings.Remove(mapping)) owner.Users--;
    }
}

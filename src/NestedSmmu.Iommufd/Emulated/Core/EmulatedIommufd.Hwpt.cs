using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Emulated;

// Devices and hardware page tables: IOMMU_GET_HW_INFO, IOMMU_HWPT_ALLOC, IOMMU_HWPT_INVALIDATE
// (device.c, hw_pagetable.c) and the VFIO cdev operations that bind and attach devices.
public sealed partial class EmulatedIommufd
{
    private const HwptAllocFlags PagingFlags = HwptAllocFlags.NestParent | HwptAllocFlags.DirtyTracking
        | HwptAllocFlags.FaultIdValid | HwptAllocFlags.Pasid;
    private const HwptAllocFlags NestedFlags = HwptAllocFlags.FaultIdValid | HwptAllocFlags.Pasid;

    // ------------------------------------------------------------------ IOMMU_GET_HW_INFO

    /// <summary>
    /// iommufd_get_hw_info: flags other than INPUT_TYPE or a non-zero __reserved are EOPNOTSUPP;
    /// the device must be bound (ENOENT); the SMMU driver answers DEFAULT/ARM_SMMUV3 with its ID
    /// registers and hands other types to its implementation (EOPNOTSUPP without one). The user
    /// buffer gets min(data_len, kernel length) bytes and zeros after them; data_len becomes the
    /// kernel's length.
    /// </summary>
    private unsafe int GetHwInfoIoctl(ref IommuHwInfo cmd, ref bool respond)
    {
        if ((cmd.Flags & ~(uint)HwInfoFlags.InputType) != 0) return Fail(Errno.EOPNOTSUPP);
        if (cmd.Reserved[0] != 0 || cmd.Reserved[1] != 0 || cmd.Reserved[2] != 0) return Fail(Errno.EOPNOTSUPP);
        var type = (cmd.Flags & (uint)HwInfoFlags.InputType) != 0 ? (HwInfoType)cmd.InDataType : HwInfoType.Default;
        DeviceObject? dev = Get<DeviceObject>(cmd.DevId, ObjectType.Device, out Errno e);
        if (dev is null) return Fail(e);
        ArmSmmuDevice smmu = dev.Master.Smmu;

        byte[] data;
        if (type is HwInfoType.Default or HwInfoType.ArmSmmuV3)
        {
            // arm_smmu_hw_info: the raw ID registers, read from the SMMU.
            data = new ArmSmmuV3HwInfo(HwInfoArmSmmuV3Flags.None,
                smmu.Read32(SmmuRegister.IDR0), smmu.Read32(SmmuRegister.IDR1), smmu.Read32(SmmuRegister.IDR2),
                smmu.Read32(SmmuRegister.IDR3), smmu.Read32(SmmuRegister.IDR4), smmu.Read32(SmmuRegister.IDR5),
                smmu.Read32(SmmuRegister.IIDR), smmu.Read32(SmmuRegister.AIDR)).ToBytes();
            type = HwInfoType.ArmSmmuV3;
        }
        else
        {
            if (smmu.Implementation is not { } impl) return Fail(Errno.EOPNOTSUPP);
            e = impl.GetHwInfo(type, out data);
            if (e != Errno.None) return Fail(e);
        }

        uint copyLength = Math.Min(cmd.DataLen, (uint)data.Length);
        e = Copy.ToUser(cmd.DataUptr, data.AsSpan(0, (int)copyLength));
        if (e != Errno.None) return Fail(e);
        if (copyLength < cmd.DataLen)
        {
            e = Copy.ClearUser(cmd.DataUptr + copyLength, cmd.DataLen - copyLength);
            if (e != Errno.None) return Fail(e);
        }
        cmd.DataLen = (uint)data.Length;
        cmd.OutDataType = (uint)type;
        cmd.OutCapabilities = (ulong)DeviceCapabilities(dev);
        cmd.OutMaxPasidLog2 = MaxPasidLog2(dev);
        respond = true;
        return 0;
    }

    /// <summary>Dirty tracking is not modelled (never reported); ATS is reported as a negative capability.</summary>
    private static HwCapabilities DeviceCapabilities(DeviceObject dev) =>
        dev.Device.Profile.AtsCapable ? HwCapabilities.None : HwCapabilities.PciAtsNotSupported;

    /// <summary>The PASID width both the device and the SMMU (SSIDSIZE) support; 0 without PASID.</summary>
    private static byte MaxPasidLog2(DeviceObject dev)
    {
        int bits = Math.Min(dev.Device.Profile.PasidBits, dev.Master.Smmu.Features.SsidBits);
        return (byte)Math.Max(bits, 0);
    }

    // ------------------------------------------------------------------ IOMMU_HWPT_ALLOC

    /// <summary>
    /// iommufd_hwpt_alloc: __reserved is EOPNOTSUPP; DATA_NONE with data or a type without data
    /// EINVAL; an unknown device ENOENT; pt_id decides the kind: an IOAS makes a paging HWPT, a
    /// paging HWPT or a vIOMMU a nested one, anything else (or nothing) EINVAL. FAULT_ID_VALID
    /// then needs a fault queue, which this model never has (ENOENT).
    /// </summary>
    private int HwptAllocIoctl(ref IommuHwptAlloc cmd, ref bool respond)
    {
        if (cmd.Reserved != 0) return Fail(Errno.EOPNOTSUPP);
        bool none = cmd.DataType == (uint)HwptDataType.None;
        if ((none && cmd.DataLen != 0) || (!none && cmd.DataLen == 0)) return Fail(Errno.EINVAL);
        DeviceObject? dev = Get<DeviceObject>(cmd.DevId, ObjectType.Device, out Errno e);
        if (dev is null) return Fail(e);
        var data = new UserData(cmd.DataType, cmd.DataUptr, cmd.DataLen);
        var flags = (HwptAllocFlags)cmd.Flags;

        IommufdObject? pt = GetAny(cmd.PtId);
        IommufdObject hwpt;
        switch (pt)
        {
            case IoasObject ioas:
                e = AllocPaging(ioas, dev, flags, cmd.DataLen != 0 ? data : null, autoDomain: false, out HwptPagingObject? paging);
                if (e != Errno.None) return Fail(e);
                hwpt = paging!;
                break;
            case HwptPagingObject:
                // iommufd_hwpt_nested_alloc refuses bad flags, no data or no domain_alloc_nested op
                // with EOPNOTSUPP before it looks at the parent; arm-smmu-v3 has no such op (its
                // nested domains come from a vIOMMU), so a paging parent is always EOPNOTSUPP.
                return Fail(Errno.EOPNOTSUPP);
            case ViommuObject viommu:
                e = AllocNestedOnViommu(viommu, dev, flags, data, out HwptNestedObject? nested);
                if (e != Errno.None) return Fail(e);
                hwpt = nested!;
                break;
            default:
                return Fail(Errno.EINVAL);
        }

        if ((flags & HwptAllocFlags.FaultIdValid) != 0)
        {
            // No IOMMU_FAULT_QUEUE_ALLOC here: no ID names a fault queue.
            AbortHwpt(hwpt);
            return Fail(Errno.ENOENT);
        }
        cmd.OutHwptId = hwpt.Id;
        respond = true;
        return 0;
    }

    /// <summary>
    /// iommufd_hwpt_paging_alloc: unknown flags, DIRTY_TRACKING (never capable here) or
    /// FAULT_ID_VALID with NEST_PARENT are EOPNOTSUPP; then arm_smmu_domain_alloc_paging_flags
    /// (the flags without FAULT_ID_VALID) picks the stage: driver data is EOPNOTSUPP; no flags
    /// make a stage-1 domain when the SMMU has stage 1 (else stage 2); NEST_PARENT alone a
    /// stage-2 nest parent (EOPNOTSUPP on an SMMU that cannot nest); PASID (with or without
    /// DIRTY_TRACKING) a stage-1 domain (EOPNOTSUPP without stage 1); any other combination
    /// EOPNOTSUPP. The new domain gets every mapping of the IOAS (EADDRINUSE when one lies beyond
    /// its input size; ENOMEM when host memory runs out; EBUSY when no ASID is free).
    /// </summary>
    private Errno AllocPaging(IoasObject ioas, DeviceObject dev, HwptAllocFlags flags, UserData? data, bool autoDomain,
        out HwptPagingObject? hwpt)
    {
        hwpt = null;
        if ((flags & ~PagingFlags) != 0) return Errno.EOPNOTSUPP;
        if ((flags & HwptAllocFlags.DirtyTracking) != 0) return Errno.EOPNOTSUPP;
        if ((flags & HwptAllocFlags.FaultIdValid) != 0 && (flags & HwptAllocFlags.NestParent) != 0) return Errno.EOPNOTSUPP;
        ArmSmmuDevice smmu = dev.Master.Smmu;
        if (data is not null) return Errno.EOPNOTSUPP;
        bool stage1;
        switch (flags & ~HwptAllocFlags.FaultIdValid)
        {
            case HwptAllocFlags.None:
                stage1 = smmu.Features.Stage1;
                break;
            case HwptAllocFlags.NestParent:
                if (!smmu.SupportsNesting) return Errno.EOPNOTSUPP;
                stage1 = false;
                break;
            case HwptAllocFlags.DirtyTracking:
            case HwptAllocFlags.DirtyTracking | HwptAllocFlags.Pasid:
            case HwptAllocFlags.Pasid:
                if (!smmu.Features.Stage1) return Errno.EOPNOTSUPP;
                stage1 = true;
                break;
            default:
                return Errno.EOPNOTSUPP;
        }
        bool nestParent = (flags & HwptAllocFlags.NestParent) != 0;

        Errno created = PagingDomain.TryCreate(smmu, stage1, nestParent, $"ctx {_contextId} paging domain on {smmu.Name}", out PagingDomain? domain);
        if (created != Errno.None) return created;
        // iopt_table_add_domain: the first domain raises the IOAS's alignment to the page size,
        // which a mapping made without one may not meet (iopt_check_iova_alignment).
        if (ioas.IovaAlignment < PageSize && ioas.Areas.InOrder().Any(a => ((a.Iova | a.Length) & PageMask) != 0))
        {
            domain!.Free();
            return Errno.EADDRINUSE;
        }
        ulong aperture = (1UL << domain!.Table.InputBits) - 1;
        foreach (IoasArea a in ioas.Areas.InOrder())
        {
            Errno e = a.Last > aperture ? Errno.EADDRINUSE : domain.Map(a.Iova, a.HostPhysicalAddress, a.Length, a.Read, a.Write);
            if (e == Errno.None) continue;
            domain.Free();
            return e;
        }
        hwpt = new HwptPagingObject(this, ioas, domain, autoDomain);
        AllocId(hwpt);
        ioas.Hwpts.Add(hwpt);
        ioas.Users++;
        return Errno.None;
    }

    /// <summary>
    /// iommufd_viommu_alloc_hwpt_nested: the device must sit behind the vIOMMU's SMMU (EINVAL);
    /// flags other than FAULT_ID_VALID|PASID, no data, or no driver op: EOPNOTSUPP; then the
    /// driver validates the data. The nested HWPT holds the vIOMMU.
    /// </summary>
    private Errno AllocNestedOnViommu(ViommuObject viommu, DeviceObject dev, HwptAllocFlags flags, in UserData data,
        out HwptNestedObject? hwpt)
    {
        hwpt = null;
        if (viommu.Smmu != dev.Master.Smmu) return Errno.EINVAL;
        if ((flags & ~NestedFlags) != 0 || data.Length == 0 || !viommu.Driver.HasAllocDomainNested) return Errno.EOPNOTSUPP;
        Errno e = viommu.Driver.AllocDomainNested((uint)(flags & ~HwptAllocFlags.FaultIdValid), data, out NestedDomain? domain);
        if (e != Errno.None) return e;
        hwpt = new HwptNestedObject(this, viommu.Hwpt, viommu, domain!);
        AllocId(hwpt);
        viommu.Users++;
        return Errno.None;
    }

    /// <summary>iommufd_object_abort_and_destroy of a HWPT that was just made.</summary>
    private void AbortHwpt(IommufdObject hwpt)
    {
        AbortObject(hwpt);
        hwpt.Destroy();
    }

    // ------------------------------------------------------------------ IOMMU_HWPT_INVALIDATE

    /// <summary>
    /// iommufd_hwpt_invalidate: entry_num is always written back (the count handled).
    /// __reserved: EOPNOTSUPP; entries without data_uptr or entry_len: EINVAL; an unknown ID:
    /// ENOENT; a nested HWPT whose driver has no invalidation op (SMMUv3's has none): EOPNOTSUPP;
    /// anything but a nested HWPT or a vIOMMU: EINVAL.
    /// </summary>
    private int HwptInvalidateIoctl(ref IommuHwptInvalidate cmd, ref bool respond)
    {
        respond = true;
        uint done = 0;
        int rc;
        if (cmd.Reserved != 0)
        {
            rc = Fail(Errno.EOPNOTSUPP);
        }
        else if (cmd.EntryNum != 0 && (cmd.DataUptr == 0 || cmd.EntryLen == 0))
        {
            rc = Fail(Errno.EINVAL);
        }
        else
        {
            switch (GetAny(cmd.HwptId))
            {
                case null:
                    rc = Fail(Errno.ENOENT);
                    break;
                case HwptNestedObject:
                    rc = Fail(Errno.EOPNOTSUPP);
                    break;
                case ViommuObject viommu when viommu.Driver.HasCacheInvalidate:
                    var array = new UserDataArray(cmd.DataType, cmd.DataUptr, cmd.EntryLen, cmd.EntryNum);
                    Errno e = viommu.Driver.CacheInvalidate(array, out done);
                    rc = e == Errno.None ? 0 : Fail(e);
                    break;
                case ViommuObject:
                    rc = Fail(Errno.EOPNOTSUPP);
                    break;
                default:
                    rc = Fail(Errno.EINVAL);
                    break;
            }
        }
        cmd.EntryNum = done;
        return rc;
    }

    // ------------------------------------------------------------------ VFIO device cdev operations

    private DeviceObject BindCore(string device)
    {
        const string op = "VFIO_DEVICE_BIND_IOMMUFD";
        HostPciDevice host = _host.FindDevice(device)
            ?? throw new IommufdException(Errno.ENOENT, op,
                $"the emulated host '{_host.Profile.Name}' has no device '{device}'; devices: {string.Join(", ", _host.Devices.Select(d => $"{d.Name} ({d.Profile.Address})"))}");
        if (host.Binding is not null)
            // vfio_df_open: the cdev path opens a device once (the group path alone may open it again)
            throw new IommufdException(Errno.EINVAL, op, $"device {host.Name} ({host.Profile.Address}) is already bound to an iommufd");
        var obj = new DeviceObject(this, host) { Users = 1 };
        AllocId(obj);
        host.Binding = obj;
        // The device starts blocked: DMA aborts until a domain is attached.
        host.Master.AttachBlocked();
        return obj;
    }

    /// <summary>
    /// vfio_iommufd_physical_unbind: detaches the device, forces its vDEVICE down (the ID becomes
    /// a tombstone) and drops the device object.
    /// </summary>
    private void UnbindCore(DeviceObject dev)
    {
        DetachCore(dev);
        if (dev.Vdevice is { } vdev) Tombstone(vdev);
        dev.Users--;
        if (dev.Users != 0) _host.Log($"iommufd context {_contextId}: device {dev.Device.Name} unbound with {dev.Users} users left");
        _objects.Remove(dev.Id);
        dev.Device.Binding = null;
    }

    /// <summary>
    /// iommufd_device_change_pt: an unknown pt is ENOENT; an IOAS gets an automatic paging HWPT
    /// (an existing compatible one, or a new one); a paging or nested HWPT is attached through the
    /// driver (EINVAL / ENOENT / ENOSPC from it); anything else EINVAL. Replaces the current
    /// attachment; an automatic HWPT left without devices is destroyed.
    /// </summary>
    private IommufdObject AttachCore(DeviceObject dev, uint ptId)
    {
        IommufdObject? pt = GetAny(ptId);
        Errno e;
        IommufdObject target;
        // iommufd_device_attach_reserved_iova: the device's reserved regions go into the IOAS
        // first (a mapping already there is EADDRINUSE) and come out again if the attach fails.
        IoasObject? reserving = pt is IoasObject io ? io : ReservingIoas(pt);
        bool reserved = false;
        if (reserving is not null && !reserving.Reserved.Any(r => r.Owner == dev))
        {
            e = Reserve(reserving, dev);
            if (e != Errno.None) throw AttachError(e, dev, ptId);
            reserved = true;
        }
        try
        {
            target = AttachTo(dev, pt, ptId);
        }
        catch (IommufdException)
        {
            if (reserved) Unreserve(reserving, dev);
            throw;
        }
        if (dev.Attached != target)
        {
            ReleaseAttachment(dev, keep: reserving);
            dev.Attached = target;
            target.Users++;
            DevicesOf(target)?.Add(dev);
        }
        return target;
    }

    private IommufdObject AttachTo(DeviceObject dev, IommufdObject? pt, uint ptId)
    {
        const string op = "VFIO_DEVICE_ATTACH_IOMMUFD_PT";
        ArmSmmuMaster master = dev.Master;
        Errno e;
        IommufdObject target;
        switch (pt)
        {
            case null:
                throw new IommufdException(Errno.ENOENT, op, $"dev_id {dev.Id} ({dev.Device.Name}): pt_id {ptId} does not exist");
            case IoasObject ioas:
            {
                HwptPagingObject? auto = ioas.Hwpts.FirstOrDefault(h => h.AutoDomain && !h.NestParent && h.Domain.IsCompatible(master.Smmu));
                bool created = false;
                if (auto is null)
                {
                    e = AllocPaging(ioas, dev, HwptAllocFlags.None, null, autoDomain: true, out auto);
                    if (e != Errno.None) throw AttachError(e, dev, ptId);
                    created = true;
                }
                e = master.AttachPaging(auto!.Domain);
                if (e != Errno.None)
                {
                    if (created) RemoveAndDestroy(auto);
                    throw AttachError(e, dev, ptId);
                }
                target = auto;
                break;
            }
            case HwptPagingObject paging:
                e = master.AttachPaging(paging.Domain);
                if (e != Errno.None) throw AttachError(e, dev, ptId);
                target = paging;
                break;
            case HwptNestedObject nested:
                e = master.AttachNested(nested.Domain);
                if (e != Errno.None) throw AttachError(e, dev, ptId);
                target = nested;
                break;
            default:
                throw new IommufdException(Errno.EINVAL, op, $"dev_id {dev.Id} ({dev.Device.Name}): pt_id {ptId} is a {pt.Type}, not an IOAS or HWPT");
        }
        return target;
    }

    /// <summary>The IOAS that holds a device's reserved regions while it is attached to <paramref name="hwpt"/> (find_hwpt_paging: a nested HWPT's parent's).</summary>
    private static IoasObject? ReservingIoas(IommufdObject? hwpt) => hwpt switch
    {
        HwptPagingObject p => p.Ioas,
        HwptNestedObject n => n.Parent.Ioas,
        _ => null,
    };

    /// <summary>iopt_table_enforce_dev_resv_regions for an arm-smmu-v3 master: its software MSI window.</summary>
    private static Errno Reserve(IoasObject ioas, DeviceObject dev)
    {
        const ulong first = ArmSmmuDevice.MsiIovaBase, last = ArmSmmuDevice.MsiIovaBase + ArmSmmuDevice.MsiIovaLength - 1;
        if (ioas.Areas.Intersects(first, last)) return Errno.EADDRINUSE;
        ioas.Reserved.Add(new IoasReservation(first, last, dev));
        return Errno.None;
    }

    /// <summary>iopt_remove_reserved_iova: drops what the device reserved in the IOAS.</summary>
    private static void Unreserve(IoasObject? ioas, DeviceObject dev) => ioas?.Reserved.RemoveAll(r => r.Owner == dev);

    private static IommufdException AttachError(Errno e, DeviceObject dev, uint ptId) => new(e, "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
        $"dev_id {dev.Id} ({dev.Device.Name}), pt_id {ptId}: " + e switch
        {
            Errno.ENOENT => "the nested HWPT translates (STE.Config = S1) and the device has no vDEVICE in its vIOMMU yet: allocate the vDEVICE first",
            Errno.EINVAL => "the HWPT was allocated through a device behind another SMMU instance (arm_smmu_attach_dev)",
            Errno.ENOSPC => "the SMMU has no free VMID",
            _ => "attaching failed",
        });

    /// <summary>vfio_iommufd_physical_detach_ioas: DMA is blocked; detaching a detached device does nothing.</summary>
    private void DetachCore(DeviceObject dev)
    {
        if (dev.Attached is null) return;
        dev.Master.AttachBlocked();
        ReleaseAttachment(dev, keep: null);
    }

    /// <summary>Drops the device's attachment; its reservations go unless the new attachment uses the same IOAS (<paramref name="keep"/>).</summary>
    private void ReleaseAttachment(DeviceObject dev, IoasObject? keep)
    {
        if (dev.Attached is not { } old) return;
        IoasObject? oldIoas = ReservingIoas(old);
        if (oldIoas != keep) Unreserve(oldIoas, dev);
        dev.Attached = null;
        old.Users--;
        DevicesOf(old)?.Remove(dev);
        if (old is HwptPagingObject { AutoDomain: true, Users: 0 } auto) RemoveAndDestroy(auto);
    }

    private static List<DeviceObject>? DevicesOf(IommufdObject hwpt) => hwpt switch
    {
        HwptPagingObject p => p.Devices,
        HwptNestedObject n => n.Devices,
        _ => null,
    };
}

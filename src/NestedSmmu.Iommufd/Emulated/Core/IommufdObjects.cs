using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>The kinds of object in an iommufd context's table (IOMMUFD_OBJ_*).</summary>
internal enum ObjectType
{
    Ioas,
    HwptPaging,
    HwptNested,
    Device,
    Viommu,
    Vdevice,
    Veventq,
    HwQueue,
}

/// <summary>
/// One object of an iommufd context. <see cref="Users"/> counts what else holds it (other
/// objects, an open fd, an mmap, a VFIO binding): DESTROY refuses with EBUSY while it is non-zero.
/// <see cref="Destroy"/> drops the references this object holds on others.
/// </summary>
internal abstract class IommufdObject(EmulatedIommufd context)
{
    public EmulatedIommufd Context { get; } = context;
    public uint Id { get; set; }
    public abstract ObjectType Type { get; }
    public int Users { get; set; }

    /// <summary>Releases what this object holds. Called once, after it left the table.</summary>
    public virtual void Destroy() { }

    public override string ToString() => $"{Type} {Id}";
}

/// <summary>One IOAS mapping (iopt_area): IOVA range, the host memory behind it, the access it allows.</summary>
internal readonly record struct IoasArea(ulong Iova, ulong Length, EmulatedHostMemoryRegion Region, ulong RegionOffset, bool Read, bool Write)
{
    public ulong Last => Iova + Length - 1;
    public ulong HostPhysicalAddress => Region.HostPhysicalAddress + RegionOffset;
}

/// <summary>A reserved IOVA range of an IOAS and its owner (a device, for its software MSI window).</summary>
internal sealed record IoasReservation(ulong First, ulong Last, object Owner);

/// <summary>A kernel-internal pin of IOVA range of an IOAS (an iommufd_access; HW queues hold one).</summary>
internal sealed record IoasPin(ulong Iova, ulong Length)
{
    public ulong Last => Iova + Length - 1;
}

/// <summary>An IO address space (iommufd_ioas with its io_pagetable).</summary>
internal sealed class IoasObject(EmulatedIommufd context) : IommufdObject(context)
{
    public override ObjectType Type => ObjectType.Ioas;

    /// <summary>Mappings ordered by IOVA (the area interval tree).</summary>
    public IoasAreaIndex Areas { get; } = new();

    /// <summary>Paging HWPTs kept in sync with the mappings (hwpt_list).</summary>
    public List<HwptPagingObject> Hwpts { get; } = [];

    /// <summary>Kernel-internal pins.</summary>
    public List<IoasPin> Pins { get; } = [];

    /// <summary>
    /// Reserved IOVA ranges and who holds them (the io_pagetable's reserved_itree): the software
    /// MSI window of each device attached to a HWPT of this IOAS. Nothing may be mapped there.
    /// </summary>
    public List<IoasReservation> Reserved { get; } = [];

    /// <summary>
    /// The alignment of IOVAs and lengths (iopt_calculate_iova_alignment): none (1) while no
    /// domain and no pin use the IOAS (iopt_init_table), the page size once one does.
    /// </summary>
    public ulong IovaAlignment => Hwpts.Count > 0 || Pins.Count > 0 ? EmulatedIommufd.PageSize : 1;

    /// <summary>True when <c>[first, last]</c> leaves the aperture or touches a reserved range.</summary>
    public bool IsReserved(ulong first, ulong last)
    {
        if (last > ApertureLast) return true;
        // A loop, not Any(): every IOMMU_IOAS_MAP asks, and a lambda capturing the range allocates.
        foreach (IoasReservation r in Reserved)
            if (r.First <= last && first <= r.Last) return true;
        return false;
    }

    /// <summary>The IOVA ranges a mapping may use: the aperture without the reserved ranges, in order.</summary>
    public List<(ulong Start, ulong Last)> UsableRanges()
    {
        var ranges = new List<(ulong Start, ulong Last)>();
        ulong next = 0, end = ApertureLast;
        bool done = false;
        foreach (IoasReservation r in Reserved.OrderBy(r => r.First))
        {
            if (r.First > end) break;
            if (r.Last < next) continue;
            if (r.First > next) ranges.Add((next, r.First - 1));
            if (r.Last >= end) { done = true; break; }
            next = r.Last + 1;
        }
        if (!done) ranges.Add((next, end));
        return ranges;
    }

    /// <summary>The highest IOVA a mapping may use: the smallest aperture of the paging domains (2^IAS - 1).</summary>
    public ulong ApertureLast
    {
        get
        {
            // A loop, not Min(): every IOMMU_IOAS_MAP asks.
            ulong last = ulong.MaxValue;
            foreach (HwptPagingObject h in Hwpts)
                last = Math.Min(last, h.Domain.Table.InputBits >= 64 ? ulong.MaxValue : (1UL << h.Domain.Table.InputBits) - 1);
            return last;
        }
    }

    public override void Destroy()
    {
        // Only reachable with no HWPTs or pins (they hold the IOAS); drop the pins on host memory.
        foreach (IoasArea a in Areas.InOrder()) a.Region.Unpin();
        Areas.Clear();
    }
}

/// <summary>A paging HWPT: a stage-2 domain filled from its IOAS.</summary>
internal sealed class HwptPagingObject(EmulatedIommufd context, IoasObject ioas, PagingDomain domain, bool autoDomain)
    : IommufdObject(context)
{
    public override ObjectType Type => ObjectType.HwptPaging;
    public IoasObject Ioas { get; } = ioas;
    public PagingDomain Domain { get; } = domain;
    public bool NestParent => Domain.NestParent;
    /// <summary>Made by attaching a device to the IOAS itself; destroyed with its last device.</summary>
    public bool AutoDomain { get; } = autoDomain;
    public List<DeviceObject> Devices { get; } = [];

    public override void Destroy()
    {
        Ioas.Hwpts.Remove(this);
        Ioas.Users--;
        Domain.Free();
    }
}

/// <summary>A nested HWPT: a vSTE on a vIOMMU (or on a nest parent, for drivers that allow it).</summary>
internal sealed class HwptNestedObject(EmulatedIommufd context, HwptPagingObject parent, ViommuObject? viommu, NestedDomain domain)
    : IommufdObject(context)
{
    public override ObjectType Type => ObjectType.HwptNested;
    public HwptPagingObject Parent { get; } = parent;
    public ViommuObject? Viommu { get; } = viommu;
    public NestedDomain Domain { get; } = domain;
    public List<DeviceObject> Devices { get; } = [];

    public override void Destroy()
    {
        Domain.Vsmmu.NestedDomains.Remove(Domain);
        if (Viommu is not null) Viommu.Users--;
        else Parent.Users--;
    }
}

/// <summary>A device bound to the context (iommufd_device). The VFIO binding holds one user.</summary>
internal sealed class DeviceObject(EmulatedIommufd context, HostPciDevice device) : IommufdObject(context)
{
    public override ObjectType Type => ObjectType.Device;
    public HostPciDevice Device { get; } = device;
    public ArmSmmuMaster Master => Device.Master;
    /// <summary>The HWPT the device is attached to (paging or nested), or null (blocked).</summary>
    public IommufdObject? Attached { get; set; }
    public VdeviceObject? Vdevice { get; set; }
}

/// <summary>A vIOMMU: a physical SMMU's nesting context for one VM, with its driver ops.</summary>
internal sealed class ViommuObject(EmulatedIommufd context, uint type, ArmSmmuDevice smmu, HwptPagingObject hwpt)
    : IommufdObject(context)
{
    public override ObjectType Type => ObjectType.Viommu;
    /// <summary>The vIOMMU type as userspace gave it (ViommuType or a selftest value).</summary>
    public uint ViommuType { get; } = type;
    /// <summary>The physical IOMMU instance (viommu->iommu_dev).</summary>
    public ArmSmmuDevice Smmu { get; } = smmu;
    public HwptPagingObject Hwpt { get; } = hwpt;
    public ViommuDriver Driver { get; set; } = null!;
    /// <summary>vDEVICEs by virtual ID (vdevs).</summary>
    public Dictionary<ulong, VdeviceObject> Vdevs { get; } = new();
    public List<VeventqObject> Veventqs { get; } = [];
    /// <summary>HW queues by index, for drivers that need the table.</summary>
    public Dictionary<uint, HwQueueObject> HwQueues { get; } = new();

    public VeventqObject? FindVeventq(uint type) => Veventqs.FirstOrDefault(q => q.QueueType == type);

    /// <summary>
    /// iommufd_viommu_report_event: queues <paramref name="data"/> on the vEVENTQ of
    /// <paramref name="type"/>; EOPNOTSUPP when there is none (the event is dropped).
    /// </summary>
    public Errno ReportEvent(VeventqType type, ReadOnlySpan<byte> data) =>
        FindVeventq((uint)type) is { } q ? q.Report(data) : Errno.EOPNOTSUPP;

    public override void Destroy()
    {
        Driver.Destroy();
        Context.DestroyMmapsOf(this);
        Hwpt.Users--;
    }
}

/// <summary>A vDEVICE: a device's virtual ID in a vIOMMU.</summary>
internal sealed class VdeviceObject(EmulatedIommufd context, ViommuObject viommu, DeviceObject device, ulong virtId) : IommufdObject(context)
{
    public override ObjectType Type => ObjectType.Vdevice;
    public ViommuObject Viommu { get; } = viommu;
    public DeviceObject Device { get; } = device;
    public ulong VirtId { get; } = virtId;

    public override void Destroy()
    {
        Viommu.Driver.VdeviceDestroy(this);
        Viommu.Vdevs.Remove(VirtId);
        Viommu.Users--;
        Device.Vdevice = null;
        Device.Users--;
    }
}

/// <summary>A HW queue whose memory is pinned guest RAM.</summary>
internal sealed class HwQueueObject(EmulatedIommufd context, ViommuObject viommu, uint type, uint index, ulong baseIova, ulong length)
    : IommufdObject(context)
{
    public override ObjectType Type => ObjectType.HwQueue;
    public ViommuObject Viommu { get; } = viommu;
    public uint QueueType { get; } = type;
    public uint Index { get; } = index;
    public ulong BaseIova { get; } = baseIova;
    public ulong Length { get; } = length;
    /// <summary>Host PA of the queue's first byte (what the hardware reads).</summary>
    public ulong BasePhysicalAddress { get; set; }
    /// <summary>The pin on the parent IOAS, while held.</summary>
    public IoasPin? Pin { get; set; }
    /// <summary>The queue this one depends on (index - 1), which it keeps busy.</summary>
    public HwQueueObject? Previous { get; set; }
    /// <summary>Whether the driver initialised it (so destroy must tell the driver).</summary>
    public bool DriverInitialised { get; set; }

    public override void Destroy()
    {
        if (DriverInitialised) Viommu.Driver.HwQueueDestroy(this);
        if (Viommu.HwQueues.TryGetValue(Index, out HwQueueObject? current) && current == this) Viommu.HwQueues.Remove(Index);
        if (Previous is not null) Previous.Users--;
        Context.ReleasePin(Viommu.Hwpt.Ioas, Pin);
        Viommu.Users--;
    }
}

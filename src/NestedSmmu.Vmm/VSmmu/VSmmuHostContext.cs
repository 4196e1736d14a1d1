using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Vmm.VSmmu;

/// <summary>
/// What every accelerated vSMMU of one VM shares on the host: the iommufd, the IOAS that maps
/// guest RAM at IOVA = guest PA, and the nest-parent stage-2 HWPTs allocated on it. As VFIO does
/// for devices in one address space (hw/vfio/iommufd.c), a device is attached to an existing
/// nest parent when the kernel accepts it, and a new one is allocated only when none does; so
/// devices behind one physical SMMU share one stage 2, across vSMMUs too (and, where the kernel
/// allows a parent to span SMMU instances, across physical SMMUs).
/// </summary>
public sealed class VSmmuHostContext
{
    private readonly List<Parent> _parents = new();
    private readonly Dictionary<DeviceId, Parent> _deviceParent = new();

    private sealed class Parent(HwptId id)
    {
        public HwptId Id { get; } = id;
        public int Devices { get; set; }
    }

    /// <summary>A context over <paramref name="iommufd"/> whose stage 2 is <paramref name="ioas"/>.</summary>
    public VSmmuHostContext(IIommufd iommufd, IoasId ioas)
    {
        ArgumentNullException.ThrowIfNull(iommufd);
        Iommufd = iommufd;
        Ioas = ioas;
    }

    /// <summary>The host.</summary>
    public IIommufd Iommufd { get; }

    /// <summary>The IOAS mapping guest RAM at IOVA = guest PA.</summary>
    public IoasId Ioas { get; }

    /// <summary>The nest-parent HWPTs allocated so far.</summary>
    public IReadOnlyList<HwptId> NestParents => [.. _parents.Select(p => p.Id)];

    /// <summary>Nest-parent HWPTs allocated over the context's life.</summary>
    public int NestParentsAllocated { get; private set; }

    /// <summary>The nest parent <paramref name="device"/> is attached to, or null.</summary>
    public HwptId? NestParentOf(DeviceId device) => _deviceParent.TryGetValue(device, out Parent? p) ? p.Id : null;

    /// <summary>
    /// Attaches a bound device to a nest-parent stage 2 over the IOAS: the first existing parent the
    /// kernel accepts, else a new one (IOMMU_HWPT_ALLOC with NEST_PARENT). Returns the parent.
    /// </summary>
    /// <exception cref="InvalidOperationException">The device is already attached through this context.</exception>
    /// <exception cref="IommufdException">The kernel refused the allocation or the attach.</exception>
    public HwptId AttachToNestParent(DeviceId device)
    {
        if (_deviceParent.ContainsKey(device))
            throw new InvalidOperationException($"Device {device} is already attached to nest parent {_deviceParent[device].Id}.");
        foreach (Parent existing in _parents)
        {
            if (Iommufd.TryAttachDevice(device, existing.Id, out _, out _))
                return Use(device, existing);
        }
        HwptId id = Iommufd.AllocHwpt(device, Ioas, HwptAllocFlags.NestParent, HwptDataType.None, ReadOnlySpan<byte>.Empty);
        try
        {
            Iommufd.AttachDevice(device, id);
        }
        catch
        {
            Iommufd.TryDestroy(id, out _);
            throw;
        }
        NestParentsAllocated++;
        var parent = new Parent(id);
        _parents.Add(parent);
        return Use(device, parent);
    }

    /// <summary>
    /// Detaches the device (it blocks DMA afterwards) and frees its nest parent when no device
    /// uses it any more (VFIO's iommufd_cdev_detach and its HWPT release).
    /// </summary>
    public void DetachFromNestParent(DeviceId device)
    {
        if (!_deviceParent.Remove(device, out Parent? parent)) return;
        try
        {
            Iommufd.DetachDevice(device);
        }
        catch (IommufdException e) when (e.Errno == Errno.ENOENT)
        {
            // Already unbound (its VFIO cdev closed): the kernel detached it then.
        }
        if (--parent.Devices == 0 && Iommufd.TryDestroy(parent.Id, out _)) _parents.Remove(parent);
    }

    private HwptId Use(DeviceId device, Parent parent)
    {
        parent.Devices++;
        _deviceParent[device] = parent;
        return parent.Id;
    }
}

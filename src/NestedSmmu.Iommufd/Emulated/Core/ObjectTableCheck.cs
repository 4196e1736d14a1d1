namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// The object table's consistency, as iommufd's refcounts define it: HWPTs hold their IOAS, vIOMMUs
/// their nest parent, vDEVICEs their vIOMMU and device, attachments their HWPT, HW queues the queue
/// before them and a pin on the IOAS, an mmap its vIOMMU (iommufd/main.c, iommufd_object_destroy_user refuses while users
/// remain). Checked after every step of the fuzz campaigns, not only at teardown.
/// </summary>
internal static class ObjectTableCheck
{
    /// <summary>Null when every user count equals the references to the object and every reference is live; else what is wrong.</summary>
    public static string? Problem(EmulatedIommufd fd)
    {
        var live = fd.LiveObjects.ToList();
        var ids = new HashSet<uint>();
        foreach (IommufdObject o in live)
        {
            if (!ids.Add(o.Id)) return $"{o} appears twice";
            if (o.Users < 0) return $"{o} has {o.Users} users";
        }
        var set = live.ToHashSet();
        foreach (IommufdObject o in live)
        {
            int expected = o switch
            {
                IoasObject ioas => live.OfType<HwptPagingObject>().Count(h => h.Ioas == ioas) + ioas.Pins.Count,
                HwptPagingObject p => p.Devices.Count + live.OfType<ViommuObject>().Count(v => v.Hwpt == p)
                    + live.OfType<HwptNestedObject>().Count(n => n.Viommu is null && n.Parent == p),
                HwptNestedObject n => n.Devices.Count,
                DeviceObject d => 1 + (d.Vdevice is null ? 0 : 1),
                ViommuObject v => live.OfType<VdeviceObject>().Count(d => d.Viommu == v)
                    + live.OfType<HwptNestedObject>().Count(n => n.Viommu == v)
                    + live.OfType<VeventqObject>().Count(q => q.Viommu == v)
                    + live.OfType<HwQueueObject>().Count(q => q.Viommu == v)
                    + fd.MappedOwners.Count(m => m == v),
                HwQueueObject q => live.OfType<HwQueueObject>().Count(n => n.Previous == q),
                VeventqObject => o.Users, // its fd's reader holds it; that lives outside the table
                _ => 0,
            };
            if (o.Users != expected) return $"{o} has {o.Users} users, but {expected} references point at it";
            IommufdObject?[] refs = o switch
            {
                HwptPagingObject p => [p.Ioas, .. p.Devices],
                HwptNestedObject n => [n.Parent, n.Viommu, .. n.Devices],
                DeviceObject d => [d.Attached, d.Vdevice],
                ViommuObject v => [v.Hwpt, .. v.Vdevs.Values, .. v.Veventqs, .. v.HwQueues.Values],
                VdeviceObject d => [d.Viommu, d.Device],
                HwQueueObject q => [q.Viommu, q.Previous],
                VeventqObject q => [q.Viommu],
                _ => [],
            };
            foreach (IommufdObject? r in refs)
                if (r is not null && !set.Contains(r)) return $"{o} refers to {r}, which is not in the table";
        }
        return null;
    }
}

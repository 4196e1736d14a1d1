namespace NestedSmmu.Vmm.Config;

/// <summary>
/// Where the host's VFIO-ready PCI functions sit, read from sysfs for <see cref="HostView.Probe"/>
/// on a real host: every /sys/bus/pci/devices/BDF with a <c>vfio-dev</c> directory (bound to
/// vfio-pci with VFIO cdevs), its IOMMU from the <c>iommu</c> link (the SMMU's platform device,
/// e.g. <c>arm-smmu-v3.0.auto</c>; drivers/iommu/iommu-sysfs.c) and its group from the
/// <c>iommu_group</c> link (drivers/iommu/iommu.c). Read-only.
/// </summary>
public static class SysfsHostDevices
{
    /// <summary>The PCI devices folder under a sysfs root.</summary>
    public const string PciDevices = "bus/pci/devices";

    /// <summary>The VFIO-ready functions under <paramref name="sysfsRoot"/> (normally <c>/sys</c>), sorted by address.</summary>
    public static IReadOnlyList<HostDeviceLocation> Read(string sysfsRoot)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sysfsRoot);
        string devices = Path.Combine(sysfsRoot, PciDevices);
        if (!Directory.Exists(devices)) return [];
        var result = new List<HostDeviceLocation>();
        foreach (string dir in Directory.EnumerateFileSystemEntries(devices).Order(StringComparer.Ordinal))
        {
            string address = Path.GetFileName(dir);
            if (HostView.CanonicalAddress(address) is not { } canonical) continue;
            if (!Directory.Exists(Path.Combine(dir, "vfio-dev"))) continue;
            string? smmu = LinkName(Path.Combine(dir, "iommu"));
            string group = LinkName(Path.Combine(dir, "iommu_group")) ?? canonical;
            result.Add(new HostDeviceLocation(canonical, smmu, group));
        }
        return result;
    }

    // The last path component a link (or, in a copied tree, a plain file or directory) names.
    private static string? LinkName(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is { } target) return Path.GetFileName(target.TrimEnd('/'));
        if (Directory.Exists(path)) return new DirectoryInfo(path).LinkTarget is { } t ? Path.GetFileName(t.TrimEnd('/')) : null;
        return null;
    }
}

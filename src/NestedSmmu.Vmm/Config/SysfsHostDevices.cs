using System.Buffers.Binary;
using System.Globalization;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// Where the host's VFIO-ready PCI functions sit, read from sysfs for <see cref="HostView.Probe"/>
/// on a real host: every /sys/bus/pci/devices/BDF with a <c>vfio-dev</c> directory (bound to
/// vfio-pci with VFIO cdevs), its IOMMU from the <c>iommu</c> link (the SMMU's IOMMU class device,
/// e.g. <c>smmu3.0x0000000011000000</c>, which drivers/iommu/iommu-sysfs.c links from each device
/// it serves; when that link is absent, the IOMMU whose /sys/class/iommu/NAME/devices lists the
/// function), its group from the <c>iommu_group</c> link (drivers/iommu/iommu.c), its NUMA node
/// from <c>numa_node</c> (-1: none) and whether its config space carries the ATS extended
/// capability (read only where the <c>config</c> file shows the extended space: the kernel gives
/// unprivileged readers the first 64 bytes only). Read-only.
/// </summary>
public static class SysfsHostDevices
{
    /// <summary>The PCI devices folder under a sysfs root.</summary>
    public const string PciDevices = "bus/pci/devices";

    /// <summary>The IOMMU class folder under a sysfs root (one entry per registered IOMMU).</summary>
    public const string IommuClass = "class/iommu";

    // PCIe Base Specification 7.6 (Linux include/uapi/linux/pci_regs.h): extended capabilities start
    // after the 256-byte conventional space; each header is ID[15:0], version[19:16], next[31:20].
    private const int ExtendedCapabilitiesStart = 0x100;
    private const int ExtendedConfigSpaceSize = 0x1000;
    private const int ExtCapIdAts = 0x000F;
    private const uint ExtCapIdMask = 0xFFFF;
    private const int ExtCapNextShift = 20;
    private const int ExtCapHeaderSize = 4;

    /// <summary>The VFIO-ready functions under <paramref name="sysfsRoot"/> (normally <c>/sys</c>), sorted by address.</summary>
    public static IReadOnlyList<HostDeviceLocation> Read(string sysfsRoot) =>
        ReadAll(sysfsRoot).Where(f => f.VfioReady).Select(f => f.Location).ToList();

    /// <summary>Every PCI function under <paramref name="sysfsRoot"/>, VFIO-ready or not, sorted by address.</summary>
    public static IReadOnlyList<SysfsPciFunction> ReadAll(string sysfsRoot)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sysfsRoot);
        string devices = Path.Combine(sysfsRoot, PciDevices);
        if (!Directory.Exists(devices)) return [];
        IReadOnlyDictionary<string, string> servedBy = IommuOfFunctions(sysfsRoot);
        var result = new List<SysfsPciFunction>();
        foreach (string dir in Directory.EnumerateFileSystemEntries(devices).Order(StringComparer.Ordinal))
        {
            string address = Path.GetFileName(dir);
            if (HostView.CanonicalAddress(address) is not { } canonical) continue;
            bool vfio = Directory.Exists(Path.Combine(dir, "vfio-dev"));
            string? smmu = LinkName(Path.Combine(dir, "iommu")) ?? servedBy.GetValueOrDefault(canonical);
            string group = LinkName(Path.Combine(dir, "iommu_group")) ?? canonical;
            result.Add(new SysfsPciFunction(new HostDeviceLocation(canonical, smmu, group, NumaNode(dir), HasAts(dir)), vfio));
        }
        return result;
    }

    /// <summary>The IOMMUs registered under <paramref name="sysfsRoot"/> (/sys/class/iommu), sorted by name.</summary>
    public static IReadOnlyList<string> Iommus(string sysfsRoot)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(sysfsRoot);
        string dir = Path.Combine(sysfsRoot, IommuClass);
        return Directory.Exists(dir)
            ? [.. Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal)]
            : [];
    }

    // /sys/class/iommu/NAME/devices/BDF: the functions each IOMMU serves (iommu_device_link).
    private static Dictionary<string, string> IommuOfFunctions(string sysfsRoot)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string name in Iommus(sysfsRoot))
        {
            string served = Path.Combine(sysfsRoot, IommuClass, name, "devices");
            if (!Directory.Exists(served)) continue;
            foreach (string entry in Directory.EnumerateFileSystemEntries(served))
                if (HostView.CanonicalAddress(Path.GetFileName(entry)) is { } bdf) map.TryAdd(bdf, name);
        }
        return map;
    }

    private static int? NumaNode(string dir)
    {
        string path = Path.Combine(dir, "numa_node");
        if (!File.Exists(path)) return null;
        return int.TryParse(File.ReadAllText(path).Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int node) && node >= 0
            ? node : null;
    }

    // Walks the extended capability list; null when the extended space is not readable.
    private static bool? HasAts(string dir)
    {
        string path = Path.Combine(dir, "config");
        if (!File.Exists(path)) return null;
        byte[] config;
        try
        {
            config = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        if (config.Length < ExtendedConfigSpaceSize) return null;
        int offset = ExtendedCapabilitiesStart;
        for (int seen = 0; offset >= ExtendedCapabilitiesStart && seen < ExtendedConfigSpaceSize / ExtCapHeaderSize; seen++)
        {
            uint header = BinaryPrimitives.ReadUInt32LittleEndian(config.AsSpan(offset, ExtCapHeaderSize));
            if (header == 0 || header == uint.MaxValue) return false;
            if ((header & ExtCapIdMask) == ExtCapIdAts) return true;
            offset = (int)(header >> ExtCapNextShift) & ~(ExtCapHeaderSize - 1);
            if (offset == 0 || offset > ExtendedConfigSpaceSize - ExtCapHeaderSize) return false;
        }
        return false;
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

/// <summary>One PCI function found in sysfs.</summary>
/// <param name="Location">Where it sits (IOMMU, group, NUMA node, ATS capability).</param>
/// <param name="VfioReady">True when it is bound to vfio-pci with a VFIO cdev (<c>vfio-dev</c>).</param>
public sealed record SysfsPciFunction(HostDeviceLocation Location, bool VfioReady);

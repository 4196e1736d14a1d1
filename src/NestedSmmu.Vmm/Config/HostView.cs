using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// What validation may know about the host, read-only (VMM.md "Validate"): which physical SMMU
/// serves each host PCI function, that SMMU's GET_HW_INFO data, CMDQV presence, IOMMU groups.
/// Built without creating anything: from the emulated host's profile, a profile file, or by
/// probing an <see cref="IIommufd"/> (<see cref="Probe"/>).
/// </summary>
/// <param name="Description">What host this is, for messages (<c>emulated host 'grace'</c>).</param>
/// <param name="Smmus">The physical SMMUs.</param>
/// <param name="Devices">The PCI functions VFIO could hand to a VMM.</param>
public sealed record HostView(string Description, IReadOnlyList<HostSmmuInfo> Smmus, IReadOnlyList<HostDeviceInfo> Devices)
{
    /// <summary>The function at host address <paramref name="address"/> (<c>0009:06:00.0</c>, or <c>06:00.0</c> in segment 0), or null.</summary>
    public HostDeviceInfo? FindDevice(string address)
    {
        string? canonical = CanonicalAddress(address);
        return canonical is null ? null : Devices.FirstOrDefault(d => d.Address == canonical);
    }

    /// <summary>The physical SMMU named <paramref name="name"/>, or null.</summary>
    public HostSmmuInfo? FindSmmu(string name) => Smmus.FirstOrDefault(s => s.Name == name);

    /// <summary><c>ssss:bb:dd.f</c> in lower case, or null when <paramref name="address"/> is not a PCI address.</summary>
    public static string? CanonicalAddress(string address)
    {
        string[] parts = address.Trim().ToLowerInvariant().Split(':');
        if (parts.Length == 2) parts = ["0000", .. parts];
        if (parts.Length != 3) return null;
        string[] df = parts[2].Split('.');
        if (df.Length != 2) return null;
        if (!IsHex(parts[0], 4) || !IsHex(parts[1], 2) || !IsHex(df[0], 2) || df[1].Length != 1 || df[1][0] is < '0' or > '7') return null;
        if (Convert.ToInt32(df[0], 16) > 0x1F) return null;
        return $"{parts[0].PadLeft(4, '0')}:{parts[1].PadLeft(2, '0')}:{df[0].PadLeft(2, '0')}.{df[1]}";
    }

    private static bool IsHex(string s, int maxLength) => s.Length is > 0 && s.Length <= maxLength && s.All(char.IsAsciiHexDigit);

    /// <summary>
    /// Builds the view by asking the kernel: every device in <paramref name="devices"/> is bound
    /// (VFIO_DEVICE_BIND_IOMMUFD), asked IOMMU_GET_HW_INFO (its default type, then
    /// TEGRA241_CMDQV, which a host without CMDQV refuses with EOPNOTSUPP) and unbound again.
    /// Which SMMU a device sits behind and its IOMMU group are not in GET_HW_INFO: the caller
    /// says (from sysfs, /sys/bus/pci/devices/BDF/iommu and iommu_group, or a profile).
    /// A device the kernel cannot bind is listed with its errno in <see cref="HostDeviceInfo.Problem"/>.
    /// </summary>
    /// <param name="iommufd">An open iommufd context; nothing is left allocated in it.</param>
    /// <param name="description">What host this is, for messages.</param>
    /// <param name="devices">The functions to probe and where they sit.</param>
    public static HostView Probe(IIommufd iommufd, string description, IEnumerable<HostDeviceLocation> devices)
    {
        ArgumentNullException.ThrowIfNull(iommufd);
        ArgumentNullException.ThrowIfNull(devices);
        var smmus = new Dictionary<string, HostSmmuInfo>(StringComparer.Ordinal);
        var infos = new List<HostDeviceInfo>();
        foreach (HostDeviceLocation location in devices)
        {
            string address = CanonicalAddress(location.Address) ?? location.Address;
            DeviceId id;
            try
            {
                id = iommufd.BindDevice(address);
            }
            catch (IommufdException e)
            {
                infos.Add(new HostDeviceInfo(address, location.PhysicalSmmu, location.IommuGroup, false, 0, $"bind failed: {e.Message}",
                    location.NumaNode, location.AtsCapability));
                continue;
            }
            try
            {
                HwInfo info = iommufd.GetHwInfo(id);
                if (location.PhysicalSmmu is { } smmuName && !smmus.ContainsKey(smmuName))
                {
                    Tegra241CmdqvHwInfo? cmdqv = null;
                    try
                    {
                        cmdqv = iommufd.GetHwInfo(id, HwInfoType.Tegra241Cmdqv).AsTegra241Cmdqv();
                    }
                    catch (IommufdException e) when (e.Errno == Errno.EOPNOTSUPP)
                    {
                        // No CMDQV beside this SMMU.
                    }
                    smmus[smmuName] = new HostSmmuInfo(smmuName, info.Type,
                        info.Type == HwInfoType.ArmSmmuV3 ? info.AsArmSmmuV3() : default, cmdqv);
                }
                infos.Add(new HostDeviceInfo(address, location.PhysicalSmmu, location.IommuGroup,
                    info.Capabilities.HasFlag(HwCapabilities.PciAtsNotSupported), info.MaxPasidLog2, null, location.NumaNode, location.AtsCapability));
            }
            finally
            {
                iommufd.UnbindDevice(id);
            }
        }
        return new HostView(description, [.. smmus.Values], infos);
    }
}

/// <summary>Where a host PCI function sits, for <see cref="HostView.Probe"/>.</summary>
/// <param name="Address">Its PCI address.</param>
/// <param name="PhysicalSmmu">The name of the SMMU that serves it, or null when it has no IOMMU.</param>
/// <param name="IommuGroup">Its IOMMU group.</param>
/// <param name="NumaNode">Its host NUMA node (sysfs <c>numa_node</c>), or null when the host has none (-1) or does not say.</param>
/// <param name="AtsCapability">Whether its config space has the ATS extended capability, or null when that was not readable.</param>
public sealed record HostDeviceLocation(string Address, string? PhysicalSmmu, string IommuGroup, int? NumaNode = null, bool? AtsCapability = null);

/// <summary>One physical SMMU as GET_HW_INFO reports it.</summary>
/// <param name="Name">Its name (<c>smmu0</c>; on Linux its platform device).</param>
/// <param name="HwInfoType">The data type the kernel reported (ARM_SMMUV3 expected).</param>
/// <param name="HwInfo">Its ID registers (struct iommu_hw_info_arm_smmuv3).</param>
/// <param name="Cmdqv">Its Tegra241 CMDQV's info, or null when it has none.</param>
public sealed record HostSmmuInfo(string Name, HwInfoType HwInfoType, ArmSmmuV3HwInfo HwInfo, Tegra241CmdqvHwInfo? Cmdqv)
{
    /// <summary>True when a Tegra241 CMDQV sits beside it.</summary>
    public bool HasCmdqv => Cmdqv is not null;
}

/// <summary>One host PCI function.</summary>
/// <param name="Address">Its canonical PCI address (<c>0009:06:00.0</c>).</param>
/// <param name="PhysicalSmmu">The SMMU that serves it, or null when it has no IOMMU.</param>
/// <param name="IommuGroup">Its IOMMU group (devices of one group share one DMA context).</param>
/// <param name="AtsNotSupported">GET_HW_INFO's IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED for it.</param>
/// <param name="MaxPasidLog2">GET_HW_INFO's out_max_pasid_log2.</param>
/// <param name="Problem">Why it cannot be used (a bind errno), or null.</param>
/// <param name="NumaNode">Its host NUMA node, or null when unknown (profiles) or none.</param>
/// <param name="AtsCapability">Whether its config space has the ATS extended capability, or null when unknown.</param>
public sealed record HostDeviceInfo(string Address, string? PhysicalSmmu, string IommuGroup, bool AtsNotSupported, byte MaxPasidLog2,
    string? Problem, int? NumaNode = null, bool? AtsCapability = null);

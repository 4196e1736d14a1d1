using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// QEMU's refusal of a VFIO device whose DMA an emulated (accel=off) SMMUv3 translates, the
/// machine-wide iommu=smmuv3 included. VFIO mirrors the device's address space into the host
/// IOMMU with a memory listener, which needs MAP notifications from a vIOMMU region; QEMU's
/// SMMUv3 model refuses them (hw/arm/smmuv3.c smmuv3_notify_flag_changed), the listener keeps
/// the error (hw/vfio/listener.c vfio_container_region_add: "Region %s: "), the attach fails
/// (vfio_listener_register: "memory listener initialization failed: "; the legacy container adds
/// "failed to setup container for group %d: ", hw/vfio/container-legacy.c vfio_group_get) and
/// so does the realize (hw/vfio/pci.c: "vfio %s: "), so QEMU exits. An accel=on SMMUv3 keeps a
/// VFIO device in system memory (hw/arm/smmuv3-accel.c smmuv3_accel_find_add_as), and a VFIO
/// device behind no vIOMMU never meets an IOMMU region.
/// </summary>
public static class EmulatedSmmuVfio
{
    /// <summary>
    /// The name VFIO gives the device in its messages (hw/vfio/device.c vfio_device_get_name):
    /// the host address, else the last part of <c>sysfsdev</c>, else (a passed <c>fd</c>) the
    /// device id or <c>VFIO_FD&lt;fd&gt;</c>.
    /// </summary>
    public static string DeviceName(VfioPciDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.Host is { } host) return HostView.CanonicalAddress(host) ?? host;
        if (Extra(device, "sysfsdev") is { } sysfs) return Path.GetFileName(sysfs.TrimEnd('/'));
        return device.Id ?? $"VFIO_FD{Extra(device, "fd")}";
    }

    /// <summary>
    /// QEMU's message, after the device's quote. <paramref name="legacyGroup"/> is the host IOMMU
    /// group when the device uses the legacy VFIO container (no <c>iommufd</c>), or null for an
    /// iommufd device (or when the group is not known: no host view); <paramref name="busNumber"/>
    /// and <paramref name="devfn"/> are what the SMMU sees the DMA come from at that moment
    /// (<see cref="PciTopology.DmaAlias"/>), <paramref name="regionIndex"/> its region's number
    /// (<see cref="SmmuDeviceRegions"/>).
    /// </summary>
    public static string Refusal(VfioPciDevice device, string? legacyGroup, byte busNumber, PciDevfn devfn, int regionIndex)
    {
        ArgumentNullException.ThrowIfNull(device);
        string container = legacyGroup is { } g && device.Iommufd is null ? $"failed to setup container for group {g}: " : "";
        return $"vfio {DeviceName(device)}: {container}memory listener initialization failed: " +
               $"Region {SmmuDeviceRegions.NameOf(devfn, regionIndex)}: " +
               $"device {busNumber:x2}.{devfn.Slot:x2}.{devfn.Function:x} requires iommu MAP notifier which is not currently supported";
    }

    private static string? Extra(VfioPciDevice device, string key) => device.Extra.FirstOrDefault(p => p.Key == key)?.Value;
}

using NestedSmmu.Hardware.Pci;

namespace NestedSmmu.Iommufd.Emulated;

/// <summary>
/// A PCI function of the emulated host, bound to vfio-pci and waiting for a VMM: its endpoint
/// model (which issues DMA through the SMMU), the host driver's master for it, and which iommufd
/// context (if any) has it bound.
/// </summary>
internal sealed class HostPciDevice
{
    public HostPciDevice(PciDeviceProfile profile, PciEndpoint endpoint)
    {
        Profile = profile;
        Endpoint = endpoint;
    }

    public PciDeviceProfile Profile { get; }
    public PciEndpoint Endpoint { get; }
    public string Name => Profile.Name;

    /// <summary>Set when the host driver probes the device (after the SMMU driver is up).</summary>
    public ArmSmmuMaster Master { get; set; } = null!;

    /// <summary>The iommufd device object while a context has the device bound (VFIO allows one at a time).</summary>
    public DeviceObject? Binding { get; set; }

    public override string ToString() => $"{Name} ({Profile.Address}, {Profile.Kind}, SID 0x{Profile.StreamId:X} on {Profile.Smmu})";
}

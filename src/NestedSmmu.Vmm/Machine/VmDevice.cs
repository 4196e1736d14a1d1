using NestedSmmu.Hardware.Pci;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Machine;

/// <summary>How a PCI function of a <see cref="Vm"/> reaches memory.</summary>
public enum VmDeviceKind
{
    /// <summary>A vfio-pci passthrough function, nested by an accelerated vSMMU.</summary>
    Vfio,
    /// <summary>A vfio-pci passthrough function with no vIOMMU: its DMA addresses are guest physical.</summary>
    VfioUntranslated,
    /// <summary>An emulated endpoint behind an emulated vSMMU, translated by the VMM's SMMUv3 model.</summary>
    Emulated,
    /// <summary>A device the model does not run DMA for (no vIOMMU above it, or not modelled).</summary>
    NotRun,
}

/// <summary>
/// One PCI function of a realized <see cref="Vm"/>: where it sits, the StreamID its vSMMU sees (its
/// requester ID after the firmware numbered the buses), and how its DMA is issued.
/// </summary>
public sealed class VmDevice
{
    private readonly IPassthroughDma? _passthrough;

    internal VmDevice(string name, DeviceSpec spec, VmDeviceKind kind, string bus, ushort requesterId, VmVsmmu? vsmmu,
        HostDeviceInfo? host, bool hotPlugged, IPassthroughDma? passthrough)
    {
        Name = name;
        Spec = spec;
        Kind = kind;
        Bus = bus;
        RequesterId = requesterId;
        Vsmmu = vsmmu;
        Host = host;
        HotPlugged = hotPlugged;
        _passthrough = passthrough;
    }

    /// <summary>Its id (or driver name).</summary>
    public string Name { get; }

    /// <summary>The -device it came from.</summary>
    public DeviceSpec Spec { get; }

    /// <summary>How its DMA is issued.</summary>
    public VmDeviceKind Kind { get; }

    /// <summary>The bus it sits on.</summary>
    public string Bus { get; }

    /// <summary>Its requester ID in the firmware-enumerated view; with a vSMMU also its vSID.</summary>
    public ushort RequesterId { get; }

    /// <summary>The StreamID its vSMMU sees: the requester ID (virt's root complexes map RID to StreamID one to one).</summary>
    public uint Vsid => RequesterId;

    /// <summary>The vSMMU translating it, or null.</summary>
    public VmVsmmu? Vsmmu { get; }

    /// <summary>vfio: the host function.</summary>
    public HostDeviceInfo? Host { get; }

    /// <summary>Plugged after boot.</summary>
    public bool HotPlugged { get; }

    /// <summary>vfio: the iommufd device object.</summary>
    public DeviceId? IommufdDevice { get; internal set; }

    /// <summary>Emulated: the endpoint behind the emulated vSMMU.</summary>
    internal PciEndpoint? Endpoint { get; set; }

    /// <summary>True when the VM can make this device issue DMA.</summary>
    public bool CanDma => Kind switch
    {
        VmDeviceKind.Emulated => Endpoint is not null,
        VmDeviceKind.Vfio or VmDeviceKind.VfioUntranslated => _passthrough is not null && Host is not null,
        _ => false,
    };

    /// <summary>
    /// The device reads into or writes from <paramref name="data"/> at <paramref name="iova"/>: an
    /// emulated endpoint through its vSMMU's model, a vfio function through its physical SMMU.
    /// </summary>
    /// <exception cref="InvalidOperationException">The VM cannot make this device issue DMA (<see cref="CanDma"/>).</exception>
    public DmaResult Dma(ulong iova, AccessKind access, Span<byte> data)
    {
        if (Kind == VmDeviceKind.Emulated && Endpoint is { } ep)
            return access == AccessKind.Read ? ep.Read(iova, data) : ep.Write(iova, data);
        if (_passthrough is not null && Host is { } h && Kind is VmDeviceKind.Vfio or VmDeviceKind.VfioUntranslated)
            return _passthrough.Dma(h.Address, iova, access, data);
        throw new InvalidOperationException($"{Name}: this VM cannot issue DMA for a {Kind} device.");
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Kind}, rid 0x{RequesterId:X4}{(Vsmmu is null ? "" : $" on {Vsmmu.Name}")})";
}

using System.Text.Json.Serialization;

namespace NestedSmmu.Vmm.Config;

/// <summary>
/// <c>-device driver,...</c>: the drivers this model knows, typed as QEMU declares their
/// properties, and any other device kept as written. Defaulted properties hold QEMU's default;
/// <see cref="OptionRecord.Given"/> says which were given.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "kind")]
[JsonDerivedType(typeof(PxbPcieDevice), "pxb-pcie")]
[JsonDerivedType(typeof(PcieRootPortDevice), "pcie-root-port")]
[JsonDerivedType(typeof(ArmSmmuV3Device), "arm-smmuv3")]
[JsonDerivedType(typeof(VfioPciDevice), "vfio-pci")]
[JsonDerivedType(typeof(OtherDevice), "other")]
public abstract record DeviceSpec : OptionRecord
{
    /// <inheritdoc/>
    public override string Option => "device";

    /// <summary><c>driver</c> (the implied first key).</summary>
    public required string Driver { get; init; }

    /// <summary><c>id</c>, or null.</summary>
    public string? Id { get; init; }

    /// <summary><c>bus</c>: the id of the bus it plugs into, or null for QEMU's choice (pcie.0 for PCI devices on virt).</summary>
    public string? Bus { get; init; }

    /// <summary><c>addr</c>: PCI slot and function, or null for the first free slot.</summary>
    public PciDevfn? Addr { get; init; }

    /// <summary>True when the device is a PCI function that takes a slot on a PCI bus.</summary>
    [JsonIgnore]
    public virtual bool IsPci => true;

    /// <summary>How messages name it: its id, or its driver when it has none.</summary>
    [JsonIgnore]
    public string Name => Id ?? Driver;
}

/// <summary>
/// <c>-device pxb-pcie</c>: a PCIe expander bridge, a second root complex whose root bus takes
/// number <see cref="BusNr"/> (hw/pci-bridge/pci_expander_bridge.c). It sits on pcie.0.
/// </summary>
public sealed record PxbPcieDevice : DeviceSpec
{
    /// <summary><c>bus_nr</c> (uint8): the root bus number.</summary>
    public byte BusNr { get; init; }

    /// <summary><c>numa_node</c> (uint16), or null for none.</summary>
    public ushort? NumaNode { get; init; }

    /// <summary><c>bypass_iommu</c>: its buses bypass the IOMMU (legacy iommu=smmuv3 only).</summary>
    public bool BypassIommu { get; init; }
}

/// <summary><c>-device pcie-root-port</c>: a PCIe root port; its secondary bus is named by its id.</summary>
public sealed record PcieRootPortDevice : DeviceSpec
{
    /// <summary><c>chassis</c> (uint8).</summary>
    public byte Chassis { get; init; }

    /// <summary><c>slot</c> (uint16).</summary>
    public ushort Slot { get; init; }
}

/// <summary>
/// <c>-device arm-smmuv3</c>: a user-created SMMUv3 on the platform bus for one PCIe root
/// complex (hw/arm/smmuv3.c properties; qemu.md §1).
/// </summary>
public sealed record ArmSmmuV3Device : DeviceSpec
{
    /// <summary><c>primary-bus</c> (link to a PCI bus): pcie.0 or a pxb-pcie root bus.</summary>
    public string? PrimaryBus { get; init; }

    /// <summary><c>stage</c> (str): "1" (default), "2", "nested"; any other word is kept as given.</summary>
    public string Stage { get; init; } = "1";

    /// <summary><c>identifier</c> (uint8): IORT node identifier, DSDT CMDQV name and _UID.</summary>
    public byte Identifier { get; init; }

    /// <summary><c>accel</c> (bool): nested translation through the host SMMU (iommufd).</summary>
    public bool Accel { get; init; }

    /// <summary><c>msi-gpa</c> (uint64), normally set by virt.</summary>
    public ulong MsiGpa { get; init; }

    /// <summary><c>ril</c> (OnOffAuto): range invalidation.</summary>
    public OnOffAuto Ril { get; init; } = OnOffAuto.Auto;

    /// <summary><c>ats</c> (OnOffAuto): PCIe ATS.</summary>
    public OnOffAuto Ats { get; init; } = OnOffAuto.Auto;

    /// <summary><c>oas</c> (OasMode): output address size.</summary>
    public AutoBits Oas { get; init; } = AutoBits.Auto;

    /// <summary><c>ssidsize</c> (SsidSizeMode): SubstreamID bits.</summary>
    public AutoBits SsidSize { get; init; } = AutoBits.Auto;

    /// <summary><c>cmdqv</c> (OnOffAuto): a Tegra241 CMDQV beside the vSMMU.</summary>
    public OnOffAuto Cmdqv { get; init; } = OnOffAuto.Auto;

    /// <inheritdoc/>
    [JsonIgnore]
    public override bool IsPci => false;

    /// <summary>The stage as an enum, or null for a word QEMU's model does not know (it then keeps stage 1).</summary>
    [JsonIgnore]
    public SmmuStage? StageKind => Stage switch { "1" => SmmuStage.Stage1, "2" => SmmuStage.Stage2, "nested" => SmmuStage.Nested, _ => null };
}

/// <summary><c>-device vfio-pci</c> or <c>vfio-pci-nohotplug</c>: a host PCI function assigned to the guest.</summary>
public sealed record VfioPciDevice : DeviceSpec
{
    /// <summary>The hot-pluggable driver name.</summary>
    public const string HotplugDriver = "vfio-pci";
    /// <summary>The cold-plug-only driver name.</summary>
    public const string NoHotplugDriver = "vfio-pci-nohotplug";

    /// <summary><c>host</c>: the host PCI address (<c>0009:06:00.0</c>), or null (then <c>sysfsdev</c> names it).</summary>
    public string? Host { get; init; }

    /// <summary><c>iommufd</c>: link to an <c>-object iommufd</c>, or null (legacy VFIO container).</summary>
    public string? Iommufd { get; init; }

    /// <summary><c>ats</c> (OnOffAuto): expose the ATS capability (auto: as the host reports it).</summary>
    public OnOffAuto Ats { get; init; } = OnOffAuto.Auto;

    /// <summary><c>rombar</c> (int32): -1 default, 0 hides the option ROM BAR.</summary>
    public int RomBar { get; init; } = -1;
}

/// <summary>Any other -device (nvme, e1000, virtio-*, ...): kept as written, not modelled.</summary>
public sealed record OtherDevice : DeviceSpec
{
    /// <summary>Drivers known to be PCI functions, beyond the <c>*-pci</c> naming rule.</summary>
    private static readonly HashSet<string> PciDrivers = new(StringComparer.Ordinal)
    {
        "nvme", "e1000", "e1000e", "igb", "rtl8139", "ne2k_pci", "pcnet", "vmxnet3", "ich9-ahci", "ahci",
        "qemu-xhci", "nec-usb-xhci", "usb-ehci", "ich9-usb-ehci1", "megasas", "megasas-gen2", "lsi53c895a",
        "mptsas1068", "pvscsi", "am53c974", "dc390", "edu", "pci-testdev", "iommu-testdev", "ivshmem-plain",
        "ivshmem-doorbell", "pcie-pci-bridge", "pci-bridge", "x3130-upstream", "xio3130-downstream",
        "ioh3420", "pci-serial", "pci-serial-2x", "pci-serial-4x", "bochs-display", "VGA",
        "intel-hda", "ich9-intel-hda", "i6300esb", "pvpanic-pci",
    };

    /// <summary>PCI bridges among them: each has a secondary bus named by its id.</summary>
    private static readonly HashSet<string> BridgeDrivers = new(StringComparer.Ordinal)
    {
        "pcie-pci-bridge", "pci-bridge", "x3130-upstream", "xio3130-downstream", "ioh3420",
    };

    /// <summary>True for a PCI-to-PCI bridge or switch port (allowed under an accel vSMMU).</summary>
    [JsonIgnore]
    public bool IsBridge => BridgeDrivers.Contains(Driver);

    /// <inheritdoc/>
    [JsonIgnore]
    public override bool IsPci => PciDrivers.Contains(Driver) || Driver.EndsWith("-pci", StringComparison.Ordinal);
}

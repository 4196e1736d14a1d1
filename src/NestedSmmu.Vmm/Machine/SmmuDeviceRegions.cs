using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Machine;

/// <summary>
/// The per-device IOMMU memory regions QEMU's SMMUv3 models create, one for each (bus, devfn)
/// DMA arrives from (hw/arm/smmu-common.c smmu_init_sdev, also behind accel=on through
/// smmuv3-accel.c smmuv3_accel_get_dev), and the one counter, shared by every SMMU of the
/// machine, that numbers them: a region is named
/// <c>smmuv3-iommu-memory-region-&lt;devfn&gt;-&lt;index&gt;</c>. QEMU prints that name when it
/// refuses a VFIO device behind an emulated SMMU, so the index is part of its message.
/// </summary>
/// <remarks>
/// When the regions appear (checked against QEMU 11.1.3, tests/vectors/qemu-verdicts/map-notifier):
/// a cold-plugged device asks for its address space at realize only when it is a VFIO device
/// (hw/vfio/pci.c vfio_pci_realize); every other device gets it when the machine is done
/// (hw/pci/pci.c pcibus_machine_done, the buses' notifiers run newest first, each bus in
/// devfn order, the GPEX root function at pcie.0 00.0 included); a hot-plugged device gets it
/// when it is registered. Regions stay when a device is unplugged.
/// </remarks>
public sealed class SmmuDeviceRegions
{
    /// <summary>The memory region type name of QEMU's SMMUv3 (TYPE_SMMUV3_IOMMU_MEMORY_REGION), the start of every region's name.</summary>
    public const string RegionTypeName = "smmuv3-iommu-memory-region";

    private readonly List<(string Bus, PciDevfn Devfn)> _created = [];

    /// <summary>How many regions exist.</summary>
    public int Count => _created.Count;

    /// <summary>The index of the region for DMA from (<paramref name="bus"/>, <paramref name="devfn"/>), creating it when it does not exist yet.</summary>
    public int Touch(string bus, PciDevfn devfn)
    {
        ArgumentNullException.ThrowIfNull(bus);
        int index = _created.IndexOf((bus, devfn));
        if (index >= 0) return index;
        _created.Add((bus, devfn));
        return _created.Count - 1;
    }

    /// <summary>The name QEMU gives region <paramref name="index"/> for <paramref name="devfn"/>.</summary>
    public static string NameOf(PciDevfn devfn, int index) => $"{RegionTypeName}-{devfn.Value}-{index}";

    /// <summary>
    /// The regions that exist when cold-plugged device <paramref name="deviceIndex"/> (an index
    /// into the spec's devices) starts to realize: one per earlier VFIO device behind an SMMU
    /// created before it (iommu=smmuv3 exists before every -device).
    /// </summary>
    public static SmmuDeviceRegions BeforeRealizeOf(PciTopology topology, int deviceIndex)
    {
        ArgumentNullException.ThrowIfNull(topology);
        var regions = new SmmuDeviceRegions();
        IReadOnlyList<DeviceSpec> devices = topology.Spec.Devices;
        for (int i = 0; i < Math.Min(deviceIndex, devices.Count); i++)
        {
            if (devices[i] is VfioPciDevice && topology.FunctionOf(devices[i]) is { } f && TranslatedAtRealize(topology, f, i))
                regions.Touch(topology.DmaAlias(f));
        }
        return regions;
    }

    /// <summary>The regions that exist once the machine is done (every cold-plugged device realized, then the buses' machine-done walk).</summary>
    public static SmmuDeviceRegions AtMachineDone(PciTopology topology)
    {
        ArgumentNullException.ThrowIfNull(topology);
        SmmuDeviceRegions regions = BeforeRealizeOf(topology, topology.Spec.Devices.Count);
        foreach (PciBus bus in topology.Buses.Reverse().Where(b => topology.OwnerOfRootBus(b.RootBus) is not null))
        {
            if (bus.Kind == PciBusKind.Root) regions.Touch(bus.Name, PciDevfn.Of(0, 0)); // the GPEX root function
            foreach (PciFunction f in topology.FunctionsOn(bus.Name))
                regions.Touch(topology.DmaAlias(f));
        }
        return regions;
    }

    /// <summary>
    /// True when an SMMU translates device <paramref name="deviceIndex"/>'s DMA as it realizes:
    /// iommu=smmuv3 on a root bus it owns, or an arm-smmuv3 given earlier on the command line
    /// for the function's root bus (hw/pci/pci.c pci_setup_iommu runs at the SMMU's realize).
    /// </summary>
    public static bool TranslatedAtRealize(PciTopology topology, PciFunction function, int deviceIndex)
    {
        ArgumentNullException.ThrowIfNull(topology);
        ArgumentNullException.ThrowIfNull(function);
        PciIommuOwner? owner = topology.OwnerOf(function);
        if (owner is null) return false;
        if (owner.IsLegacy) return true;
        IReadOnlyList<DeviceSpec> devices = topology.Spec.Devices;
        for (int i = 0; i < Math.Min(deviceIndex, devices.Count); i++)
            if (ReferenceEquals(devices[i], owner.Device)) return true;
        return false;
    }

    private int Touch((string Bus, PciDevfn Devfn) key) => Touch(key.Bus, key.Devfn);
}

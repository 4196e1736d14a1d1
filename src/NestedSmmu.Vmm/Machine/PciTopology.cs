using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Machine;

/// <summary>
/// The virt machine's PCI tree built from a <see cref="MachineSpec"/>: pcie.0, pxb-pcie root
/// buses, bridges (pcie-root-port and others) with their secondary buses, every PCI function in
/// its slot, which vSMMU owns which root bus, and two bus-numbering views
/// (<see cref="PciNumberingView"/>).
/// </summary>
/// <remarks>
/// Placement follows QEMU 11.1 (checked against it, tests/vectors/qemu-verdicts): devices are
/// created in command-line order; a PCI device without <c>bus=</c> goes to the newest pxb-pcie
/// root bus, else pcie.0 (qdev-monitor.c qbus_find_recursive visits the newest sysbus child
/// first); without <c>addr=</c> it takes the first free slot from the bus's first slot
/// (pcie.0's slot 0 is the GPEX root function, hw/pci/pci.c do_pci_register_device);
/// pxb-pcie sits on pcie.0 and its root bus takes only bridges.
/// Errors are QEMU's messages (<see cref="QemuConfigException"/>).
/// </remarks>
public sealed class PciTopology
{
    /// <summary>The GPEX root function's name, which holds pcie.0 slot 0 (QEMU prints it in slot conflicts).</summary>
    public const string GpexRootName = "gpex-root";

    /// <summary>Key of <see cref="Exception.Data"/> holding the index (in <see cref="MachineSpec.Devices"/>) of the device <see cref="Build"/> refused.</summary>
    public const string DeviceIndexKey = "NestedSmmu.DeviceIndex";

    private readonly List<PciBus> _buses = [];
    private readonly List<PciFunction> _functions = [];
    private readonly Dictionary<string, PciIommuOwner> _owners = new(StringComparer.Ordinal);
    private PciBusNumbering? _unenumerated, _enumerated;

    private PciTopology(MachineSpec spec) => Spec = spec;

    /// <summary>The spec the tree was built from.</summary>
    public MachineSpec Spec { get; }

    /// <summary>Every bus, in creation order (pcie.0 first).</summary>
    public IReadOnlyList<PciBus> Buses => _buses;

    /// <summary>Root buses (pcie.0 and pxb-pcie buses), in creation order.</summary>
    public IEnumerable<PciBus> RootBuses => _buses.Where(b => b.IsRootBus);

    /// <summary>Every PCI function, in creation order (the GPEX root function is not listed).</summary>
    public IReadOnlyList<PciFunction> Functions => _functions;

    /// <summary>The bus named <paramref name="name"/>.</summary>
    /// <exception cref="KeyNotFoundException">No such bus.</exception>
    public PciBus Bus(string name) => FindBus(name) ?? throw new KeyNotFoundException($"No PCI bus '{name}'.");

    /// <summary>The bus named <paramref name="name"/>, or null.</summary>
    public PciBus? FindBus(string name) => _buses.FirstOrDefault(b => b.Name == name);

    /// <summary>Functions on bus <paramref name="bus"/>, in slot order.</summary>
    public IEnumerable<PciFunction> FunctionsOn(string bus) => _functions.Where(f => f.Bus == bus).OrderBy(f => f.Devfn.Value);

    /// <summary>The function of a device, or null when it is not a PCI device.</summary>
    public PciFunction? FunctionOf(DeviceSpec device) => _functions.FirstOrDefault(f => ReferenceEquals(f.Device, device));

    /// <summary>The function of the device with <c>id=</c><paramref name="id"/>, or null.</summary>
    public PciFunction? FunctionOf(string id) => _functions.FirstOrDefault(f => f.Device.Id == id);

    /// <summary>The vSMMU translating a root bus's DMA, or null when none (DMA goes untranslated, IORT maps it to the ITS).</summary>
    public PciIommuOwner? OwnerOfRootBus(string rootBus) => _owners.GetValueOrDefault(rootBus);

    /// <summary>The vSMMU translating a function's DMA (the owner of its root bus), or null.</summary>
    public PciIommuOwner? OwnerOf(PciFunction function) => OwnerOfRootBus(Bus(function.Bus).RootBus);

    /// <summary>The root buses a vSMMU owns (one for -device arm-smmuv3; all non-bypass ones for iommu=smmuv3).</summary>
    public IEnumerable<PciBus> RootBusesOwnedBy(string ownerName) =>
        RootBuses.Where(b => _owners.TryGetValue(b.Name, out PciIommuOwner? o) && o.Name == ownerName);

    /// <summary>Bus numbers in one view (computed once per view).</summary>
    public PciBusNumbering Numbering(PciNumberingView view) => view switch
    {
        PciNumberingView.Unenumerated => _unenumerated ??= Number(view),
        PciNumberingView.FirmwareEnumerated => _enumerated ??= Number(view),
        _ => throw new ArgumentOutOfRangeException(nameof(view)),
    };

    /// <summary>Builds the tree from the devices of <paramref name="spec"/>, in order.</summary>
    /// <exception cref="QemuConfigException">QEMU's error for the first device it would refuse to place.</exception>
    public static PciTopology Build(MachineSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var t = new PciTopology(spec);
        t._buses.Add(new PciBus(PciBus.DefaultRootName, PciBusKind.Root, null, null, PciBus.DefaultRootName));
        var ids = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < spec.Devices.Count; i++)
        {
            DeviceSpec d = spec.Devices[i];
            try
            {
                // qdev_set_id (hw/core/qdev.c): ids are unique across all devices.
                if (d.Id is { } id && !ids.Add(id))
                    throw new QemuConfigException(d.Quote(), $"Duplicate ID '{id}' for device");
                if (d is ArmSmmuV3Device smmu) t.AttachSmmu(smmu);
                else if (d.IsPci) t.Place(d);
            }
            catch (QemuConfigException e)
            {
                e.Data[DeviceIndexKey] = i;
                throw;
            }
        }
        if (spec.Machine.HasLegacySmmu)
        {
            // virt.c create_pcie / the IORT builder: the machine-wide SMMU covers every root bus
            // that does not bypass the IOMMU.
            var legacy = new PciIommuOwner(PciIommuOwner.LegacyName, null);
            foreach (PciBus b in t.RootBuses.Where(b => !t.Bypasses(b)))
                t._owners.TryAdd(b.Name, legacy);
        }
        return t;
    }

    /// <summary>
    /// The bus and devfn an IOMMU sees a function's DMA come from (hw/pci/pci.c
    /// pci_device_get_iommu_bus_devfn): walking up to the root bus, every conventional PCI bus
    /// hides its devices behind the bridge that provides it, a PCIe-to-PCI bridge
    /// (pcie-pci-bridge) as its own secondary bus and devfn 00.0, any other bridge (pci-bridge)
    /// as the bridge's own bus and devfn. On PCIe buses the function keeps its own.
    /// </summary>
    public (string Bus, PciDevfn Devfn) DmaAlias(PciFunction function)
    {
        ArgumentNullException.ThrowIfNull(function);
        string bus = function.Bus;
        PciDevfn devfn = function.Devfn;
        for (PciBus b = Bus(function.Bus); !b.IsRootBus; b = Bus(b.ParentBus!))
        {
            if (b.Owner?.Driver == PcieToPciBridgeDriver)
            {
                (bus, devfn) = (b.Name, PciDevfn.Of(0, 0));
            }
            else if (b.Owner?.Driver == PciBridgeDriver)
            {
                PciFunction bridge = FunctionOf(b.Owner)!;
                (bus, devfn) = (bridge.Bus, bridge.Devfn);
            }
        }
        return (bus, devfn);
    }

    // The bridges whose secondary bus is conventional PCI; the others (root and switch ports) provide PCIe buses.
    private const string PciBridgeDriver = "pci-bridge";
    private const string PcieToPciBridgeDriver = "pcie-pci-bridge";

    /// <summary>True when a root bus bypasses the IOMMU (pxb-pcie bypass_iommu=on, or pcie.0 with default-bus-bypass-iommu=on).</summary>
    public bool Bypasses(PciBus rootBus) => rootBus.Kind == PciBusKind.Root
        ? Spec.Machine.DefaultBusBypassIommu
        : rootBus.Owner is PxbPcieDevice { BypassIommu: true };

    private void AttachSmmu(ArmSmmuV3Device smmu)
    {
        // The bus link is resolved when the property is set, before realize's own checks
        // (hw/core/qdev-properties.c link lookup: "Device '%s' not found").
        if (smmu.PrimaryBus is not { } name) return;
        PciBus bus = FindBus(name) ?? throw new QemuConfigException(smmu.Quote(), $"Device '{name}' not found");
        // The first SMMU on a root bus owns it; a second one, or one on a bridge's bus, is
        // refused by validation with QEMU's message (MachineValidator), not here.
        if (bus.IsRootBus) _owners.TryAdd(bus.Name, new PciIommuOwner(smmu.Name, smmu));
    }

    private void Place(DeviceSpec d)
    {
        PciBus bus;
        if (d.Bus is { } name)
        {
            bus = FindBus(name) ?? throw new QemuConfigException(d.Quote(), $"Bus '{name}' not found");
        }
        else
        {
            bus = _buses.LastOrDefault(b => b.Kind == PciBusKind.Expander) ?? _buses[0];
        }

        if (d is PxbPcieDevice pxb)
        {
            // hw/pci-bridge/pci_expander_bridge.c pxb_dev_realize_common.
            if (bus.Kind != PciBusKind.Root && !(bus.Kind == PciBusKind.Expander))
                throw new QemuConfigException(d.Quote(), "PXB devices can be attached only to root bus");
            if (bus.Kind == PciBusKind.Expander)
                throw new QemuConfigException(d.Quote(), "PCI: Only PCI/PCIe bridges can be plugged into pxb-pcie");
            if (_functions.Any(f => f.Device is PxbPcieDevice other && other.BusNr == pxb.BusNr))
                throw new QemuConfigException(d.Quote(), $"Bus {pxb.BusNr} is already in use");
        }
        else if (bus.Kind == PciBusKind.Expander && !IsBridgeDevice(d))
        {
            throw new QemuConfigException(d.Quote(), "PCI: Only PCI/PCIe bridges can be plugged into pxb-pcie");
        }

        PciDevfn devfn = d.Addr ?? FirstFreeSlot(bus, d);
        if (SlotHolder(bus, devfn) is { } holder)
            throw new QemuConfigException(d.Quote(),
                $"PCI: slot {devfn.Slot} function {devfn.Function} not available for {d.Driver}, in use by {holder}");

        string? secondary = null;
        if (d is PxbPcieDevice || IsBridgeDevice(d))
        {
            // A bridge's secondary bus and a pxb-pcie's root bus are named by the device id
            // (QEMU names an anonymous one after its type; such a bus cannot be referenced).
            secondary = d.Id ?? $"{d.Driver}.anonymous{_buses.Count}";
        }
        _functions.Add(new PciFunction(d, bus.Name, devfn, secondary));
        if (secondary is not null)
        {
            _buses.Add(d is PxbPcieDevice
                ? new PciBus(secondary, PciBusKind.Expander, d, bus.Name, secondary)
                : new PciBus(secondary, PciBusKind.Secondary, d, bus.Name, bus.RootBus));
        }
    }

    private static bool IsBridgeDevice(DeviceSpec d) => d is PcieRootPortDevice || d is OtherDevice { IsBridge: true };

    /// <summary>What holds a slot, as QEMU prints it (<c>e1000,id=(null)</c>), or null when free.</summary>
    private string? SlotHolder(PciBus bus, PciDevfn devfn)
    {
        if (bus.Kind == PciBusKind.Root && devfn.Value == 0) return $"{GpexRootName},id=(null)";
        PciFunction? f = _functions.FirstOrDefault(f => f.Bus == bus.Name && f.Devfn == devfn);
        return f is null ? null : $"{f.Device.Driver},id={f.Device.Id ?? "(null)"}";
    }

    private PciDevfn FirstFreeSlot(PciBus bus, DeviceSpec d)
    {
        for (int slot = 0; slot < PciDevfn.SlotsPerBus; slot++)
        {
            PciDevfn devfn = PciDevfn.Of(slot, 0);
            if (SlotHolder(bus, devfn) is null) return devfn;
        }
        throw new QemuConfigException(d.Quote(), $"PCI: no slot/function available for {d.Driver}, all in use or reserved");
    }

    private PciBusNumbering Number(PciNumberingView view)
    {
        var numbers = new Dictionary<string, byte>(StringComparer.Ordinal);
        var bridges = new Dictionary<string, (byte, byte)>(StringComparer.Ordinal);
        foreach (PciBus root in RootBuses)
        {
            byte own = root.Owner is PxbPcieDevice pxb ? pxb.BusNr : (byte)0;
            numbers[root.Name] = own;
            if (view == PciNumberingView.Unenumerated)
            {
                // Nothing has written the bridges' bus number registers yet: they read 0.
                foreach (PciBus b in _buses.Where(b => b.Kind == PciBusKind.Secondary && b.RootBus == root.Name))
                {
                    numbers[b.Name] = 0;
                    bridges[b.Name] = (0, 0);
                }
            }
            else
            {
                int next = own;
                EnumerateBelow(root.Name, ref next, numbers, bridges);
            }
        }
        return new PciBusNumbering(this, view, numbers, bridges);
    }

    // Depth first in slot order, as firmware (EDK2 PciBusDxe, Linux pci_scan_bridge) assigns numbers.
    private void EnumerateBelow(string bus, ref int next, Dictionary<string, byte> numbers, Dictionary<string, (byte, byte)> bridges)
    {
        foreach (PciFunction f in FunctionsOn(bus).Where(f => f.IsBridge))
        {
            next++;
            byte secondary = (byte)Math.Min(next, byte.MaxValue);
            numbers[f.SecondaryBus!] = secondary;
            EnumerateBelow(f.SecondaryBus!, ref next, numbers, bridges);
            bridges[f.SecondaryBus!] = (secondary, (byte)Math.Min(next, byte.MaxValue));
        }
    }
}

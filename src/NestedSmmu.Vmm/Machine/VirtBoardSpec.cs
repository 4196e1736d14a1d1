using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Machine;

/// <summary>The GIC the virt board emulates (-machine gic-version=).</summary>
public enum GicVersion
{
    V2 = 2,
    V3 = 3,
}

/// <summary>
/// One PCIe root complex of the board: the GPEX host bridge (pcie.0) or a pxb-pcie. <see cref="Range"/>
/// is the IORT's view (pci_bus_range, under the chosen bus-numbering view); <see cref="CrsMax"/> is the
/// last bus its DSDT _CRS claims.
/// </summary>
public sealed record PciRootComplexSpec(string Id, int BusNumber, bool BypassIommu, PciBusRange Range, int CrsMax);

/// <summary>One -device arm-smmuv3, as the tables need it.</summary>
/// <param name="Id">The device id (or a generated name).</param>
/// <param name="PrimaryBus">The root bus it serves (pcie.0 or a pxb-pcie id).</param>
/// <param name="Accel">accel=on: nested with a host SMMU; the IORT gets an RMR node for it.</param>
/// <param name="Cmdqv">A Tegra241 CMDQV is shown to the guest (cmdqv=on, or auto resolved to on).</param>
/// <param name="Ats">IDR0.ATS is set (accel with ats=on): the root complex node says ATS is supported.</param>
public sealed record SmmuDeviceSpec(string Id, string PrimaryBus, bool Accel = false, bool Cmdqv = false, bool Ats = false);

/// <summary>
/// What the firmware tables of the virt board depend on, in QEMU's terms: RAM, CPUs, the GIC and
/// its MSI frame, the IOMMU choice, the root complexes (with bus ranges in the chosen view) and the
/// -device arm-smmuv3 list in creation order.
/// </summary>
public sealed record VirtBoardSpec
{
    /// <summary>QEMU's default -m: 128 MiB.</summary>
    public const ulong DefaultRamSize = 128UL << 20;

    public ulong RamSize { get; init; } = DefaultRamSize;
    /// <summary>-machine highmem-mmio-size= (the 64-bit PCIe window).</summary>
    public ulong HighMmioSize { get; init; } = VirtMemoryMap.DefaultHighPcieMmioSize;
    public int Cpus { get; init; } = 1;
    public string CpuType { get; init; } = DefaultCpuType;
    public GicVersion Gic { get; init; } = GicVersion.V2;
    /// <summary>-machine its= (only meaningful with GICv3; QEMU's default on).</summary>
    public bool ItsRequested { get; init; } = true;
    /// <summary>-machine iommu=smmuv3: the one machine-wide SMMU at 0x09050000.</summary>
    public bool LegacySmmu { get; init; }
    public IReadOnlyList<PciRootComplexSpec> RootComplexes { get; init; } = [new(PciBus.DefaultRootName, 0, false, new PciBusRange(0, 0), 0xFF)];
    public IReadOnlyList<SmmuDeviceSpec> Smmus { get; init; } = [];

    /// <summary>The board has a GICv3 ITS (vms->its): GICv3 with its=on.</summary>
    public bool HasIts => Gic == GicVersion.V3 && ItsRequested;

    /// <summary>The board has a GICv2m MSI frame: GICv2.</summary>
    public bool HasV2m => Gic == GicVersion.V2;

    /// <summary>
    /// What the tables need from a parsed machine, its PCI tree and one bus-numbering view: root
    /// complexes with pci_bus_range in that view, the SMMUs in creation order, GIC, RAM and CPUs.
    /// </summary>
    /// <remarks>
    /// Without a resolution, cmdqv=auto counts as no CMDQV and ats=auto as no ATS: QEMU resolves
    /// them from the host at the first device attach, which the spec alone cannot tell.
    /// </remarks>
    public static VirtBoardSpec From(MachineSpec spec, PciTopology topology, PciNumberingView view) =>
        From(spec, topology, view, resolved: null);

    /// <summary>
    /// The board of a machine the validator accepted: as <see cref="From(MachineSpec, PciTopology, PciNumberingView)"/>,
    /// with each vSMMU's CMDQV and ATS as validation resolved them (auto against the host) where it could.
    /// </summary>
    public static VirtBoardSpec From(MachineCheck check, PciNumberingView view)
    {
        if (!check.Accepted || check.Topology is null)
            throw new ArgumentException("Tables are built only for a machine the validator accepted.", nameof(check));
        // The legacy iommu=smmuv3 is listed without a device; only -device arm-smmuv3 ones resolve.
        var resolved = check.Vsmmus.Where(v => v.Device is not null && v.Resolved is not null).ToDictionary(v => v.Device!, v => v.Resolved!);
        return From(check.Spec, check.Topology, view, resolved);
    }

    private static VirtBoardSpec From(MachineSpec spec, PciTopology topology, PciNumberingView view,
        IReadOnlyDictionary<ArmSmmuV3Device, ResolvedSmmuProperties>? resolved)
    {
        var numbering = topology.Numbering(view);
        var roots = topology.RootBuses.Select(bus =>
        {
            var range = numbering.RangeOf(bus.Name);
            byte own = numbering.NumberOf(bus.Name);
            return new PciRootComplexSpec(bus.Name, own, topology.Bypasses(bus), range, Math.Max(own, range.Max));
        }).ToList();
        return new VirtBoardSpec
        {
            RamSize = spec.Memory?.Size ?? DefaultRamSize,
            HighMmioSize = spec.Machine.HighmemMmioSize ?? VirtMemoryMap.DefaultHighPcieMmioSize,
            Cpus = (int)(spec.Smp?.Cpus ?? 1),
            CpuType = spec.Cpu?.Model ?? DefaultCpuType,
            Gic = GicOf(spec),
            ItsRequested = spec.Machine.Its,
            LegacySmmu = spec.Machine.HasLegacySmmu,
            RootComplexes = roots,
            Smmus = spec.Smmus.Select(s => resolved?.GetValueOrDefault(s) is { } r
                ? new SmmuDeviceSpec(s.Name, s.PrimaryBus ?? PciBus.DefaultRootName, s.Accel, r.Accel && r.Cmdqv, r.Accel && r.Ats)
                : new SmmuDeviceSpec(s.Name, s.PrimaryBus ?? PciBus.DefaultRootName, s.Accel,
                    s.Accel && s.Cmdqv == OnOffAuto.On, s.Accel && s.Ats == OnOffAuto.On)).ToList(),
        };
    }

    /// <summary>QEMU's default -cpu for the virt board.</summary>
    public const string DefaultCpuType = "cortex-a15";

    // virt.c finalize_gic_version: "2" is GICv2; 3, 4, host and max give a GICv3-family GIC with an
    // ITS on the hosts this project targets; without gic-version, TCG picks GICv2 and KVM on a
    // GICv3 host (every SMMUv3 host here) picks GICv3.
    private static GicVersion GicOf(MachineSpec spec) => spec.Machine.GicVersion switch
    {
        "2" => GicVersion.V2,
        null => spec.KvmRequested ? GicVersion.V3 : GicVersion.V2,
        _ => GicVersion.V3,
    };
}

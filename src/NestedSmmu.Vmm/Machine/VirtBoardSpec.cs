namespace NestedSmmu.Vmm.Machine;

/// <summary>The GIC the virt board emulates (-machine gic-version=).</summary>
public enum GicVersion
{
    V2 = 2,
    V3 = 3,
}

/// <summary>
/// A PCI bus number range as QEMU's pci_bus_range reports it for a root bus: the root bus's own
/// number widened by the secondary and subordinate numbers of the bridges directly on it.
/// </summary>
public readonly record struct PciBusRange(int Min, int Max)
{
    /// <summary>Requester IDs are bus[15:8] device[7:3] function[2:0] (PCIe Base 2.2.6.2).</summary>
    public const int RequesterIdsPerBus = 256;

    /// <summary>First requester ID of the range.</summary>
    public uint FirstRequesterId => (uint)(Min * RequesterIdsPerBus);

    /// <summary>Requester IDs in the range.</summary>
    public uint RequesterIdCount => (uint)((Max - Min + 1) * RequesterIdsPerBus);

    /// <summary>
    /// pci_bus_range: start from the root bus's number and widen by every bridge directly on it.
    /// A bridge firmware has not numbered yet has secondary = subordinate = 0, so it pulls Min down to 0.
    /// </summary>
    public static PciBusRange Of(int rootBusNumber, IEnumerable<(int Secondary, int Subordinate)> bridges)
    {
        int min = rootBusNumber, max = rootBusNumber;
        foreach (var (secondary, subordinate) in bridges)
        {
            min = Math.Min(min, secondary);
            max = Math.Max(max, subordinate);
        }
        return new PciBusRange(min, max);
    }

    public override string ToString() => $"buses 0x{Min:x2}-0x{Max:x2}";
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
    public int Cpus { get; init; } = 1;
    public string CpuType { get; init; } = "cortex-a57";
    public GicVersion Gic { get; init; } = GicVersion.V2;
    /// <summary>-machine its= (only meaningful with GICv3; QEMU's default on).</summary>
    public bool ItsRequested { get; init; } = true;
    /// <summary>-machine iommu=smmuv3: the one machine-wide SMMU at 0x09050000.</summary>
    public bool LegacySmmu { get; init; }
    public IReadOnlyList<PciRootComplexSpec> RootComplexes { get; init; } = [new("pcie.0", 0, false, new PciBusRange(0, 0), 0xFF)];
    public IReadOnlyList<SmmuDeviceSpec> Smmus { get; init; } = [];

    /// <summary>The board has a GICv3 ITS (vms->its): GICv3 with its=on.</summary>
    public bool HasIts => Gic == GicVersion.V3 && ItsRequested;

    /// <summary>The board has a GICv2m MSI frame: GICv2.</summary>
    public bool HasV2m => Gic == GicVersion.V2;
}

using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Tests.Acpi;

/// <summary>
/// The boards of tests/vectors/qemu-tables, written out by hand (each case's cmdline.txt is the QEMU
/// command line): root complexes with the bridges on them as QEMU sees them before firmware runs
/// (secondary = subordinate = 0), and the arm-smmuv3 devices in creation order.
/// </summary>
internal static class QemuTableCases
{
    // pci_bus_range before firmware: a bridge's secondary and subordinate read 0, so any bridge
    // on a root bus pulls the range's start down to bus 0.
    private static PciRootComplexSpec Rc(string id, byte bus, int bridges = 0, bool bypass = false) =>
        new(id, bus, bypass, new PciBusRange(bridges > 0 ? (byte)0 : bus, bus), bus == 0 ? 0xFF : bus);

    public static VirtBoardSpec Spec(string name) => name switch
    {
        "smmuv3-legacy" => new VirtBoardSpec
        {
            LegacySmmu = true,
            RootComplexes = [Rc("pcie.0", 0, 1), Rc("pcie.1", 0x10), Rc("pcie.2", 0x20, bypass: true)],
        },
        "smmuv3-dev" => new VirtBoardSpec
        {
            RootComplexes = [Rc("pcie.0", 0, 1), Rc("pcie.1", 0x10), Rc("pcie.2", 0x20)],
            Smmus = [new("smmuv3.0", "pcie.0"), new("smmuv3.1", "pcie.1")],
        },
        "pxb-one-smmu" => new VirtBoardSpec
        {
            Gic = GicVersion.V3,
            RootComplexes = [Rc("pcie.0", 0), Rc("pcie.1", 0x10, 1)],
            Smmus = [new("smmuv3.0", "pcie.1")],
        },
        "three-smmus" => new VirtBoardSpec
        {
            Gic = GicVersion.V3,
            RootComplexes = [Rc("pcie.0", 0), Rc("pcie.1", 0x40, 1), Rc("pcie.2", 0x10, 1), Rc("pcie.3", 0x20, 2)],
            Smmus = [new("smmuv3.0", "pcie.1"), new("smmuv3.1", "pcie.2"), new("smmuv3.2", "pcie.3")],
        },
        "gicv3-its" => new VirtBoardSpec
        {
            Gic = GicVersion.V3,
            RootComplexes = [Rc("pcie.0", 0, 1)],
            Smmus = [new("smmuv3.0", "pcie.0")],
        },
        "gicv3-its-off" => new VirtBoardSpec
        {
            Gic = GicVersion.V3,
            ItsRequested = false,
            RootComplexes = [Rc("pcie.0", 0, 1)],
            Smmus = [new("smmuv3.0", "pcie.0")],
        },
        "gicv2-v2m" => new VirtBoardSpec
        {
            RootComplexes = [Rc("pcie.0", 0, 1)],
            Smmus = [new("smmuv3.0", "pcie.0")],
        },
        "bypass-pxb" => new VirtBoardSpec
        {
            Gic = GicVersion.V3,
            RootComplexes = [Rc("pcie.0", 0), Rc("pcie.1", 0x10, 1, bypass: true)],
            Smmus = [new("smmuv3.0", "pcie.0")],
        },
        "smp4-big" => new VirtBoardSpec
        {
            Gic = GicVersion.V3,
            Cpus = 4,
            RamSize = 2UL << 30,
            HighMmioSize = 1UL << 40,
            RootComplexes = [Rc("pcie.0", 0, 2), Rc("pcie.1", 0x80, 1)],
            Smmus = [new("smmuv3.0", "pcie.0"), new("smmuv3.1", "pcie.1")],
        },
        "iommu-smmuv3" => new VirtBoardSpec { LegacySmmu = true, RootComplexes = [Rc("pcie.0", 0)] },
        "iommu-smmuv3-gicv3" => new VirtBoardSpec { LegacySmmu = true, Gic = GicVersion.V3, RootComplexes = [Rc("pcie.0", 0, 1)] },
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no such case"),
    };

    public static readonly string[] Names =
    [
        "smmuv3-legacy", "smmuv3-dev", "pxb-one-smmu", "three-smmus", "gicv3-its", "gicv3-its-off",
        "gicv2-v2m", "bypass-pxb", "iommu-smmuv3", "iommu-smmuv3-gicv3", "smp4-big",
    ];

    public static TheoryData<string> All => new(Names);
}

/// <summary>The same boards parsed from each case's cmdline.txt through the Config parser and PCI topology.</summary>
internal static class ParsedTableCases
{
    public static string CommandLine(string name) =>
        File.ReadAllText(NestedSmmu.Tests.Common.TestVectors.PathOf("qemu-tables", name, "cmdline.txt")).Trim();

    public static VirtBoard Board(string name, PciNumberingView view = PciNumberingView.Unenumerated)
    {
        var spec = NestedSmmu.Vmm.Config.QemuCommandLine.Parse(CommandLine(name));
        return VirtBoard.Layout(VirtBoardSpec.From(spec, PciTopology.Build(spec), view));
    }
}

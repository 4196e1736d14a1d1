namespace NestedSmmu.Vmm.Machine;

/// <summary>
/// The virt board laid out from a <see cref="VirtBoardSpec"/>: the memory map, and each SMMU's
/// identifier, MMIO base and interrupts (the machine-wide one of iommu=smmuv3 at its fixed place,
/// or each -device arm-smmuv3 on the platform bus in creation order, its CMDQV region right
/// after its own).
/// </summary>
public sealed class VirtBoard
{
    /// <summary>An SMMUv3's register frame: two 64 KiB pages (IHI 0070 6.1; QEMU's memory region).</summary>
    public const ulong SmmuRegionSize = NestedSmmu.Hardware.Smmu.SmmuRegisters.FrameSize;

    /// <summary>The Tegra241 CMDQV region shown to the guest: config page, two VCMDQ pages, two VINTF pages.</summary>
    public const ulong CmdqvRegionSize = NestedSmmu.Vmm.VCmdqv.GuestCmdqvLayout.Size;

    /// <summary>An SMMUv3's wired interrupts: eventq, priq, cmdq-sync, gerror (in QEMU's sysbus order).</summary>
    public const int SmmuIrqCount = 4;

    private VirtBoard(VirtBoardSpec spec, VirtMemoryMap map, IReadOnlyList<PlacedSmmu> smmus)
    {
        Spec = spec;
        MemoryMap = map;
        Smmus = smmus;
    }

    public VirtBoardSpec Spec { get; }
    public VirtMemoryMap MemoryMap { get; }

    /// <summary>The SMMUs in creation order (the machine-wide one alone with iommu=smmuv3).</summary>
    public IReadOnlyList<PlacedSmmu> Smmus { get; }

    /// <summary>Lays out the board.</summary>
    public static VirtBoard Layout(VirtBoardSpec spec)
    {
        var map = VirtMemoryMap.Create(spec.RamSize, spec.HighMmioSize);
        var smmus = new List<PlacedSmmu>();
        if (spec.LegacySmmu)
        {
            // populate_smmuv3_legacy_dev: one SMMU for every root complex that does not bypass it.
            var ranges = spec.RootComplexes.Where(rc => !rc.BypassIommu).Select(rc => rc.Range)
                .OrderBy(r => r.FirstRequesterId).ToList();
            smmus.Add(new PlacedSmmu("smmuv3", Identifier: 0, map[VirtRegion.Smmu].Base, VirtIrqMap.Smmu,
                ranges, Accel: false, Ats: false, CmdqvBase: null, CmdqvSpi: null));
            return new VirtBoard(spec, map, smmus);
        }

        var bus = PlatformBus.ForVirt(map);
        ulong busBase = map[VirtRegion.PlatformBus].Base;
        // hw/arm/virt.c numbers each -device arm-smmuv3's "identifier" in creation order after the
        // ITS group node, so it matches the IORT node identifier QEMU's running counter gives it.
        uint firstIdentifier = spec.HasIts ? 1u : 0u;
        for (int i = 0; i < spec.Smmus.Count; i++)
        {
            var s = spec.Smmus[i];
            var rc = spec.RootComplexes.FirstOrDefault(r => r.Id == s.PrimaryBus)
                ?? throw new ArgumentException($"arm-smmuv3 '{s.Id}': primary-bus '{s.PrimaryBus}' is not a root complex of this board.");
            // The CMDQV adds sysbus region #1 and IRQ #4 to its SMMU (tegra241-cmdqv.c init); the
            // platform bus links a device's IRQs and regions together when it is plugged, so the
            // CMDQV takes the lines and hole right after its SMMU's. (Not checked against a running
            // QEMU: accel=on needs KVM and a host SMMU.)
            ulong[] regions = s.Cmdqv ? [SmmuRegionSize, CmdqvRegionSize] : [SmmuRegionSize];
            var linked = bus.Link(SmmuIrqCount + (s.Cmdqv ? 1 : 0), regions);
            smmus.Add(new PlacedSmmu(s.Id, firstIdentifier + (uint)i, busBase + linked.RegionOffsets[0],
                VirtIrqMap.PlatformBus + linked.Irqs[0], [rc.Range], s.Accel, s.Ats,
                s.Cmdqv ? busBase + linked.RegionOffsets[1] : null,
                s.Cmdqv ? VirtIrqMap.PlatformBus + linked.Irqs[SmmuIrqCount] : null));
        }
        return new VirtBoard(spec, map, smmus);
    }
}

/// <summary>
/// One SMMUv3 as the guest sees it. <see cref="Spi"/> is the eventq SPI; priq, cmdq-sync and gerror
/// follow it. <see cref="Ranges"/> are the root-complex bus ranges it translates.
/// </summary>
public sealed record PlacedSmmu(
    string Id,
    uint Identifier,
    ulong Base,
    int Spi,
    IReadOnlyList<PciBusRange> Ranges,
    bool Accel,
    bool Ats,
    ulong? CmdqvBase,
    int? CmdqvSpi);

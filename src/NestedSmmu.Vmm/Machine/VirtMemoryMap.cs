namespace NestedSmmu.Vmm.Machine;

/// <summary>A guest-physical window of the virt board: base and size in bytes.</summary>
public readonly record struct MemMapEntry(ulong Base, ulong Size)
{
    /// <summary>The last byte of the window.</summary>
    public ulong Last => Base + Size - 1;
}

/// <summary>The regions of QEMU's virt board, named as hw/arm/virt.h names them (VIRT_*).</summary>
public enum VirtRegion
{
    Flash,
    CpuPeripherals,
    GicDist,
    GicCpu,
    GicV2m,
    GicHyp,
    GicVcpu,
    GicIts,
    GicRedist,
    Uart0,
    Rtc,
    FwCfg,
    Gpio,
    Uart1,
    Smmu,
    PcdimmAcpi,
    AcpiGed,
    NvdimmAcpi,
    PvTime,
    SecureGpio,
    Mmio,
    PlatformBus,
    SecureMem,
    PcieMmio,
    PciePio,
    PcieEcam,
    Mem,
    HighGicRedist2,
    HighPcieEcam,
    HighPcieMmio,
}

/// <summary>
/// The virt board's guest-physical memory map (QEMU hw/arm/virt.c base_memmap and
/// extended_memmap, laid out by virt_set_memmap/virt_set_high_memmap): the fixed map below
/// 4 GiB and the high regions (second redistributor, ECAM, 64-bit PCIe MMIO) placed after RAM,
/// never below 256 GiB.
/// </summary>
public sealed class VirtMemoryMap
{
    private const ulong KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;

    /// <summary>RAM starts at 1 GiB (VIRT_MEM).</summary>
    public const ulong RamBase = 0x4000_0000;

    /// <summary>QEMU's LEGACY_RAMLIMIT_BYTES: the high IO regions never start below RAM base + 255 GiB.</summary>
    public const ulong LegacyRamLimit = 255 * GiB;

    /// <summary>One PCIe bus takes 1 MiB of ECAM (PCIE_MMCFG_SIZE_MIN).</summary>
    public const ulong EcamBytesPerBus = 1 * MiB;

    // hw/arm/virt.c base_memmap: sizes of the MMIO helpers the ACPI devices use.
    private const ulong MemoryHotplugIoLength = 24; // MEMORY_HOTPLUG_IO_LEN
    private const ulong AcpiGedEventSelectorLength = 4; // ACPI_GED_EVT_SEL_LEN
    private const ulong NvdimmAcpiIoLength = 4; // NVDIMM_ACPI_IO_LEN

    private static readonly Dictionary<VirtRegion, MemMapEntry> BaseMap = new()
    {
        [VirtRegion.Flash] = new(0x0000_0000, 0x0800_0000),
        [VirtRegion.CpuPeripherals] = new(0x0800_0000, 0x0002_0000),
        [VirtRegion.GicDist] = new(0x0800_0000, 0x0001_0000),
        [VirtRegion.GicCpu] = new(0x0801_0000, 0x0001_0000),
        [VirtRegion.GicV2m] = new(0x0802_0000, 0x0000_1000),
        [VirtRegion.GicHyp] = new(0x0803_0000, 0x0001_0000),
        [VirtRegion.GicVcpu] = new(0x0804_0000, 0x0001_0000),
        [VirtRegion.GicIts] = new(0x0808_0000, 0x0002_0000),
        [VirtRegion.GicRedist] = new(0x080A_0000, 0x00F6_0000),
        [VirtRegion.Uart0] = new(0x0900_0000, 0x0000_1000),
        [VirtRegion.Rtc] = new(0x0901_0000, 0x0000_1000),
        [VirtRegion.FwCfg] = new(0x0902_0000, 0x0000_0018),
        [VirtRegion.Gpio] = new(0x0903_0000, 0x0000_1000),
        [VirtRegion.Uart1] = new(0x0904_0000, 0x0000_1000),
        [VirtRegion.Smmu] = new(0x0905_0000, 0x0002_0000),
        [VirtRegion.PcdimmAcpi] = new(0x0907_0000, MemoryHotplugIoLength),
        [VirtRegion.AcpiGed] = new(0x0908_0000, AcpiGedEventSelectorLength),
        [VirtRegion.NvdimmAcpi] = new(0x0909_0000, NvdimmAcpiIoLength),
        [VirtRegion.PvTime] = new(0x090A_0000, 0x0001_0000),
        [VirtRegion.SecureGpio] = new(0x090B_0000, 0x0000_1000),
        [VirtRegion.Mmio] = new(0x0A00_0000, 0x0000_0200),
        [VirtRegion.PlatformBus] = new(0x0C00_0000, 0x0200_0000),
        [VirtRegion.SecureMem] = new(0x0E00_0000, 0x0100_0000),
        [VirtRegion.PcieMmio] = new(0x1000_0000, 0x2EFF_0000),
        [VirtRegion.PciePio] = new(0x3EFF_0000, 0x0001_0000),
        [VirtRegion.PcieEcam] = new(0x3F00_0000, 0x0100_0000),
    };

    /// <summary>The 64-bit PCIe MMIO window's default size (-machine highmem-mmio-size= changes it).</summary>
    public const ulong DefaultHighPcieMmioSize = 512 * GiB;

    // hw/arm/virt.c extended_memmap: only sizes; bases follow RAM (virt_set_high_memmap).
    private static (VirtRegion Region, ulong Size)[] HighRegions(ulong highMmioSize) =>
    [
        (VirtRegion.HighGicRedist2, 64 * MiB),
        (VirtRegion.HighPcieEcam, 256 * MiB),
        (VirtRegion.HighPcieMmio, highMmioSize),
    ];

    /// <summary>The number of virtio-mmio transports the board creates (NUM_VIRTIO_TRANSPORTS).</summary>
    public const int VirtioTransports = 32;

    private readonly Dictionary<VirtRegion, MemMapEntry> _map;

    private VirtMemoryMap(Dictionary<VirtRegion, MemMapEntry> map) => _map = map;

    /// <summary>
    /// The board's map for <paramref name="ramSize"/> bytes of RAM, no hot-pluggable memory, and a
    /// 64-bit PCIe window of <paramref name="highMmioSize"/> bytes (a power of two, as QEMU requires).
    /// </summary>
    public static VirtMemoryMap Create(ulong ramSize, ulong highMmioSize = DefaultHighPcieMmioSize)
    {
        var map = new Dictionary<VirtRegion, MemMapEntry>(BaseMap)
        {
            [VirtRegion.Mem] = new(RamBase, ramSize),
        };
        // virt_set_memmap: device memory starts at the next GiB after RAM (empty here: no
        // slots, maxmem = ram), and the high IO regions start there or at 256 GiB, whichever is higher.
        ulong deviceMemoryBase = AlignUp(RamBase + ramSize, GiB);
        ulong highBase = Math.Max(deviceMemoryBase, RamBase + LegacyRamLimit);
        // virt_set_high_memmap: each region naturally aligned on its own size, one after another.
        foreach (var (region, size) in HighRegions(highMmioSize))
        {
            ulong regionBase = AlignUp(highBase, size);
            map[region] = new(regionBase, size);
            highBase = regionBase + size;
        }
        return new VirtMemoryMap(map);
    }

    /// <summary>The window of one region.</summary>
    public MemMapEntry this[VirtRegion region] => _map[region];

    /// <summary>The ECAM window in use: the high one (highmem-ecam, QEMU's default with highmem).</summary>
    public MemMapEntry Ecam => _map[VirtRegion.HighPcieEcam];

    /// <summary>Buses the ECAM window decodes.</summary>
    public int EcamBusCount => (int)(Ecam.Size / EcamBytesPerBus);

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) & ~(alignment - 1);
}

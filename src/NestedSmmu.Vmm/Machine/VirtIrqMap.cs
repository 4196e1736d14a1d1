namespace NestedSmmu.Vmm.Machine;

/// <summary>
/// The virt board's interrupt map (QEMU hw/arm/virt.c a15irqmap): SPI numbers relative to the
/// first SPI. The GIC numbers an SPI's INTID as 32 + SPI (GIC architecture, INTIDs 0-31 are SGIs
/// and PPIs), which is what ACPI GSIVs and the FDT's SPI cells use.
/// </summary>
public static class VirtIrqMap
{
    /// <summary>INTID of SPI 0 (ARM_SPI_BASE).</summary>
    public const int SpiBase = 32;

    public const int Uart0 = 1;
    public const int Rtc = 2;
    /// <summary>PCIe INTA..INTD: four consecutive SPIs (PCI_NUM_PINS).</summary>
    public const int Pcie = 3;
    public const int PciePins = 4;
    public const int Gpio = 7;
    public const int Uart1 = 8;
    public const int AcpiGed = 9;
    /// <summary>First virtio-mmio transport; one SPI each.</summary>
    public const int Mmio = 16;
    /// <summary>First SPI of the GICv2m frame (NUM_GICV2M_SPIS of them).</summary>
    public const int GicV2m = 48;
    public const int GicV2mSpis = 64;
    /// <summary>The machine-wide SMMU of iommu=smmuv3: eventq, priq, cmdq-sync, gerror.</summary>
    public const int Smmu = 74;
    /// <summary>First SPI of the platform bus (PLATFORM_BUS_NUM_IRQS of them).</summary>
    public const int PlatformBus = 112;
    public const int PlatformBusIrqs = 64;

    /// <summary>The GSIV (INTID) of an SPI.</summary>
    public static int Gsiv(int spi) => SpiBase + spi;
}

using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Acpi;

/// <summary>
/// The Differentiated System Description Table of the virt board, in AML: what a guest needs to
/// find its devices. Under \_SB: the processors, the PL011 console, fw_cfg, the virtio-mmio
/// transports, the PCIe root complexes (pcie.0 as PCI0 with its windows and ECAM, each pxb-pcie
/// as PCnn with its bus range), the power button, and one CVnn device per SMMU with a Tegra241 CMDQV. Names, IDs and resources follow QEMU 11.1
/// (hw/arm/virt-acpi-build.c, hw/pci-host/gpex-acpi.c); QEMU's methods (_OSC, _DSM, _PRT and the
/// INTx link devices, the GPIO power-button event, the GED) are left out: a guest finds every
/// device without them.
/// </summary>
public static class Dsdt
{
    /// <summary>QEMU writes DSDT revision 2 (64-bit integers in AML, ACPI 6.5 5.2.11.1).</summary>
    public const byte Revision = 2;

    /// <summary>The _HID of the Tegra241 CMDQV (Linux drivers/iommu/arm/arm-smmu-v3/tegra241-cmdqv.c).</summary>
    public const string CmdqvHid = "NVDA200C";

    // Plug and Play IDs (ACPI 6.5 6.1.5 / PCI Firmware 3.3 4.1): PCIe host bridge, PCI host bridge,
    // motherboard resources; ACPI0007 is a processor device (8.4).
    private const string PcieHostBridgeHid = "PNP0A08", PciHostBridgeCid = "PNP0A03", MotherboardResourcesHid = "PNP0C02";
    private const string ProcessorHid = "ACPI0007", Pl011Hid = "ARMH0011", PowerButtonHid = "PNP0C0C";
    // QEMU's own IDs: fw_cfg (QEMU0002) and Linaro's virtio-mmio (LNRO0005).
    private const string FwCfgHid = "QEMU0002", VirtioMmioHid = "LNRO0005";
    private const ulong FwCfgStatus = 0xB;
    // _CCA = 1: the device's DMA is cache coherent (6.2.17).
    private const ulong Coherent = 1;

    /// <summary>Builds the table for a laid-out board.</summary>
    public static byte[] Build(VirtBoard board, AcpiOem? oem = null)
    {
        var spec = board.Spec;
        var map = board.MemoryMap;
        var devices = new List<byte[]>();
        for (int cpu = 0; cpu < spec.Cpus; cpu++)
            devices.Add(Aml.Device($"C{cpu:X3}", Aml.Name("_HID", Aml.String(ProcessorHid)), Aml.Name("_UID", Aml.Integer((ulong)cpu))));

        var uart = map[VirtRegion.Uart0];
        devices.Add(Aml.Device("COM0",
            Aml.Name("_HID", Aml.String(Pl011Hid)),
            Aml.Name("_UID", Aml.Integer(0)),
            Aml.Name("_CRS", new ResourceTemplate()
                .Memory32Fixed((uint)uart.Base, (uint)uart.Size)
                .Interrupt(AmlTrigger.Level, AmlPolarity.ActiveHigh, (uint)VirtIrqMap.Gsiv(VirtIrqMap.Uart0)).ToAml())));

        // QEMU's fw_cfg (hw/nvram/fw_cfg-acpi.c): _STA 0xB = present, enabled, functioning, not shown.
        var fwCfg = map[VirtRegion.FwCfg];
        devices.Add(Aml.Device("FWCF",
            Aml.Name("_HID", Aml.String(FwCfgHid)),
            Aml.Name("_STA", Aml.Integer(FwCfgStatus)),
            Aml.Name("_CCA", Aml.Integer(Coherent)),
            Aml.Name("_CRS", new ResourceTemplate().Memory32Fixed((uint)fwCfg.Base, (uint)fwCfg.Size).ToAml())));

        // The virtio-mmio transports (hw/virtio/virtio-acpi.c): one device each, its interrupt level-triggered as QEMU declares it.
        var mmio = map[VirtRegion.Mmio];
        for (int i = 0; i < VirtMemoryMap.VirtioTransports; i++)
            devices.Add(Aml.Device($"VR{i:D2}",
                Aml.Name("_HID", Aml.String(VirtioMmioHid)),
                Aml.Name("_UID", Aml.Integer((ulong)i)),
                Aml.Name("_CCA", Aml.Integer(Coherent)),
                Aml.Name("_CRS", new ResourceTemplate()
                    .Memory32Fixed((uint)(mmio.Base + (ulong)i * mmio.Size), (uint)mmio.Size)
                    .Interrupt(AmlTrigger.Level, AmlPolarity.ActiveHigh, (uint)VirtIrqMap.Gsiv(VirtIrqMap.Mmio + i)).ToAml())));

        devices.Add(Pci0(board));
        foreach (var pxb in spec.RootComplexes.Where(rc => rc.BusNumber != 0).OrderBy(rc => rc.BusNumber))
            devices.Add(Pxb(pxb));

        devices.Add(Aml.Device("PWRB", Aml.Name("_HID", Aml.String(PowerButtonHid)), Aml.Name("_UID", Aml.Integer(0))));

        // virt-acpi-build.c: CMDQV devices only when the SMMUs are -device ones (not iommu=smmuv3).
        if (!spec.LegacySmmu)
            foreach (var smmu in board.Smmus.Where(s => s.CmdqvBase is not null))
                devices.Add(Cmdqv(smmu));

        var table = AcpiTable.Begin(new ByteSink(), "DSDT", Revision, oem ?? AcpiOem.Qemu);
        table.Sink.Bytes(Aml.Scope("\\_SB", [.. devices]));
        return table.End();
    }

    /// <summary>The Device CVnn QEMU writes for an SMMU's CMDQV (name and _UID from the SMMU's identifier).</summary>
    public static byte[] Cmdqv(PlacedSmmu smmu)
    {
        ulong cmdqvBase = smmu.CmdqvBase ?? throw new ArgumentException($"SMMU '{smmu.Id}' has no CMDQV.", nameof(smmu));
        int spi = smmu.CmdqvSpi ?? throw new ArgumentException($"SMMU '{smmu.Id}' has no CMDQV interrupt.", nameof(smmu));
        return Aml.Device($"CV{smmu.Identifier:D2}",
            Aml.Name("_HID", Aml.String(CmdqvHid)),
            Aml.Name("_UID", Aml.Integer(smmu.Identifier)),
            Aml.Name("_CCA", Aml.Integer(Coherent)),
            Aml.Name("_CRS", new ResourceTemplate()
                .QWordMemory(cmdqvBase, VirtBoard.CmdqvRegionSize, cacheable: true)
                .Interrupt(AmlTrigger.Edge, AmlPolarity.ActiveHigh, (uint)VirtIrqMap.Gsiv(spi)).ToAml()));
    }

    // gpex-acpi.c acpi_dsdt_add_gpex: bus 0 up to the bus before the first pxb-pcie, the 32-bit and
    // 64-bit windows, the I/O window, and the ECAM as motherboard resources.
    private static byte[] Pci0(VirtBoard board)
    {
        var map = board.MemoryMap;
        int firstPxb = board.Spec.RootComplexes.Where(rc => rc.BusNumber != 0).Select(rc => rc.BusNumber).DefaultIfEmpty(map.EcamBusCount).Min();
        var mmio = map[VirtRegion.PcieMmio];
        var pio = map[VirtRegion.PciePio];
        var high = map[VirtRegion.HighPcieMmio];
        var ecam = map.Ecam;
        var crs = new ResourceTemplate()
            .WordBusNumber(0, (ushort)(firstPxb - 1))
            .DWordMemory((uint)mmio.Base, (uint)mmio.Size)
            .DWordIo(0, (uint)pio.Size, (uint)pio.Base)
            .QWordMemory(high.Base, high.Size);
        return Aml.Device("PCI0",
            Aml.Name("_HID", Aml.String(PcieHostBridgeHid)),
            Aml.Name("_CID", Aml.String(PciHostBridgeCid)),
            Aml.Name("_SEG", Aml.Integer(0)),
            Aml.Name("_BBN", Aml.Integer(0)),
            Aml.Name("_UID", Aml.Integer(0)),
            Aml.Name("_STR", Aml.Unicode("PCIe 0 Device")),
            Aml.Name("_CCA", Aml.Integer(Coherent)),
            Aml.Name("_CRS", crs.ToAml()),
            Aml.Device("RES0",
                Aml.Name("_HID", Aml.String(MotherboardResourcesHid)),
                Aml.Name("_CRS", new ResourceTemplate().QWordMemory(ecam.Base, ecam.Size).ToAml())));
    }

    // gpex-acpi.c: a pxb-pcie is Device PCnn (its bus number in hex) with _BBN and _UID = bus number.
    private static byte[] Pxb(PciRootComplexSpec pxb) =>
        Aml.Device($"PC{pxb.BusNumber:X2}",
            Aml.Name("_HID", Aml.String(PcieHostBridgeHid)),
            Aml.Name("_CID", Aml.String(PciHostBridgeCid)),
            Aml.Name("_BBN", Aml.Integer((ulong)pxb.BusNumber)),
            Aml.Name("_UID", Aml.Integer((ulong)pxb.BusNumber)),
            Aml.Name("_STR", Aml.Unicode("pxb Device")),
            Aml.Name("_CCA", Aml.Integer(Coherent)),
            Aml.Name("_CRS", new ResourceTemplate().WordBusNumber((ushort)pxb.BusNumber, (ushort)pxb.CrsMax).ToAml()));
}

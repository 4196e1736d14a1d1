using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Fdt;

/// <summary>
/// The device tree QEMU 11.1's virt board gives a guest (hw/arm/virt.c create_fdt and the
/// create_* helpers), for a laid-out board: nodes and properties in the order QEMU's blob holds
/// them (libfdt inserts each new property and subnode first, so the blob lists them in reverse of
/// creation). The PCIe node carries msi-map to the ITS or v2m frame and iommu-map to the SMMU of
/// pcie.0 (iommu=smmuv3's machine-wide one, or a -device arm-smmuv3 on pcie.0).
/// </summary>
/// <remarks>
/// Left out: /chosen's rng-seed and kaslr-seed (random per boot in QEMU) and the CPU nodes'
/// cache geometry (QEMU reads it from the CPU model's CCSIDR registers).
/// </remarks>
public static class VirtDeviceTree
{
    // QEMU's phandles start here (qemu_fdt_alloc_phandle), in creation order.
    private const uint FirstPhandle = 0x8000;

    // GIC binding (Documentation/devicetree/bindings/interrupt-controller/arm,gic.yaml): three
    // cells: type (0 SPI, 1 PPI), number, flags (1 edge rising, 4 level high; on GICv2 a PPI's
    // flags also carry the CPU mask in bits 15:8).
    private const uint Spi = 0, Ppi = 1, EdgeRising = 1, LevelHigh = 4;
    private const int PpiCpuMaskShift = 8;

    // Arm generic timer PPIs (secure, non-secure, virtual, hypervisor) and the PMU's PPI, as the virt
    // board wires them (ARCH_TIMER_*_PPI, VIRTUAL_PMU_IRQ in include/hw/arm/virt.h).
    private static readonly uint[] TimerPpis = [13, 14, 11, 10];
    private const uint PmuPpi = 7;

    // PSCI 0.2 function IDs (Arm DEN 0022): SMC64 CPU_SUSPEND, SMC32 CPU_OFF, SMC64 CPU_ON, SMC64 MIGRATE.
    private const uint PsciCpuSuspend = 0xC400_0001, PsciCpuOff = 0x8400_0002, PsciCpuOn = 0xC400_0003, PsciMigrate = 0xC400_0005;

    // The PL061's GPIO 3 is the power button (Linux input code KEY_POWER = 116).
    private const uint PowerButtonGpio = 3, KeyPower = 116;
    private const uint ApbClockHz = 24_000_000;

    // PCI bus binding (IEEE 1275 PCI, Documentation/devicetree/bindings/pci): phys.hi space codes.
    private const uint PciSpaceIo = 0x0100_0000, PciSpaceMmio32 = 0x0200_0000, PciSpaceMmio64 = 0x0300_0000;
    // interrupt-map-mask: the slot bits of phys.hi (devfn slot is bits 15:11) and the pin.
    private const uint PciSlotMask = 0x1800, PciPinMask = 0x7;
    private const int PciDevfnSlotShift = 11;
    // The GIC's #address-cells inside interrupt-map entries.
    private const int GicAddressCells = 2;
    // GICv3 redistributor regions in the intc node (only the low one with few CPUs).
    private const uint RedistributorRegions = 1;

    /// <summary>Builds the blob for a laid-out board.</summary>
    public static byte[] Build(VirtBoard board)
    {
        if (!Supports(board)) throw new InvalidOperationException("SMMUv3 with accel=on not supported for DT");
        var spec = board.Spec;
        var map = board.MemoryMap;

        // Phandles in QEMU's creation order: clock, CPUs, GIC, MSI frame, the legacy SMMU (made
        // with the PCIe host), the GPIO, then -device SMMUs (made when the platform bus links them).
        uint next = FirstPhandle;
        uint clock = next++;
        // virt.c fdt_add_cpu_nodes makes the CPU nodes from the last CPU down, so CPU n gets the
        // (Cpus - n)th phandle.
        var cpuPhandles = new uint[spec.Cpus];
        for (int i = spec.Cpus - 1; i >= 0; i--) cpuPhandles[i] = next++;
        uint gic = next++;
        uint? msi = spec.HasIts || spec.HasV2m ? next++ : null;
        var treeSmmu = TreeSmmu(board);
        uint? smmuPhandle = null;
        if (spec.LegacySmmu && treeSmmu is not null) smmuPhandle = next++;
        uint gpio = next++;
        if (!spec.LegacySmmu && treeSmmu is not null) smmuPhandle = next++;

        uint ppiFlags = spec.Gic == GicVersion.V2 ? LevelHigh | (uint)(((1 << spec.Cpus) - 1) << PpiCpuMaskShift) : LevelHigh;
        var w = new FdtWriter();
        w.BeginNode("")
            .Cells("interrupt-parent", gic)
            .Empty("dma-coherent")
            .Strings("model", "linux,dummy-virt")
            .Cells("#size-cells", 2)
            .Cells("#address-cells", 2)
            .Strings("compatible", "linux,dummy-virt");

        w.BeginNode("psci")
            .Cells("migrate", PsciMigrate).Cells("cpu_on", PsciCpuOn).Cells("cpu_off", PsciCpuOff).Cells("cpu_suspend", PsciCpuSuspend)
            .Strings("method", "hvc")
            .Strings("compatible", "arm,psci-1.0", "arm,psci-0.2", "arm,psci")
            .EndNode();

        var mem = map[VirtRegion.Mem];
        w.BeginNode($"memory@{mem.Base:x}").Cells("reg", Reg(mem)).Strings("device_type", "memory").EndNode();

        var pbus = map[VirtRegion.PlatformBus];
        w.BeginNode($"platform-bus@{pbus.Base:x}")
            .Cells("interrupt-parent", gic)
            .Cells("ranges", 0, 0, (uint)pbus.Base, (uint)pbus.Size)
            .Cells("#address-cells", 1)
            .Cells("#size-cells", 1)
            .Strings("compatible", "qemu,platform", "simple-bus")
            .EndNode();

        if (!spec.LegacySmmu && treeSmmu is not null) SmmuNode(w, treeSmmu, smmuPhandle!.Value);

        var fwCfg = map[VirtRegion.FwCfg];
        w.BeginNode($"fw-cfg@{fwCfg.Base:x}").Empty("dma-coherent").Cells("reg", Reg(fwCfg)).Strings("compatible", "qemu,fw-cfg-mmio").EndNode();

        var mmio = map[VirtRegion.Mmio];
        for (int i = 0; i < VirtMemoryMap.VirtioTransports; i++)
        {
            var transport = new MemMapEntry(mmio.Base + (ulong)i * mmio.Size, mmio.Size);
            w.BeginNode($"virtio_mmio@{transport.Base:x}")
                .Empty("dma-coherent")
                .Cells("interrupts", Spi, (uint)(VirtIrqMap.Mmio + i), EdgeRising)
                .Cells("reg", Reg(transport))
                .Strings("compatible", "virtio,mmio")
                .EndNode();
        }

        w.BeginNode("gpio-keys").Strings("compatible", "gpio-keys")
            .BeginNode("poweroff").Cells("gpios", gpio, PowerButtonGpio, 0).Cells("linux,code", KeyPower).Strings("label", "GPIO Key Poweroff").EndNode()
            .EndNode();
        var gpioRegion = map[VirtRegion.Gpio];
        w.BeginNode($"pl061@{gpioRegion.Base:x}")
            .Cells("phandle", gpio)
            .Strings("clock-names", "apb_pclk")
            .Cells("clocks", clock)
            .Cells("interrupts", Spi, VirtIrqMap.Gpio, LevelHigh)
            .Empty("gpio-controller")
            .Cells("#gpio-cells", 2)
            .Strings("compatible", "arm,pl061", "arm,primecell")
            .Cells("reg", Reg(gpioRegion))
            .EndNode();

        if (spec.LegacySmmu && treeSmmu is not null) SmmuNode(w, treeSmmu, smmuPhandle!.Value);

        PcieNode(w, board, gic, msi, smmuPhandle);

        var rtc = map[VirtRegion.Rtc];
        w.BeginNode($"pl031@{rtc.Base:x}")
            .Strings("clock-names", "apb_pclk").Cells("clocks", clock)
            .Cells("interrupts", Spi, VirtIrqMap.Rtc, LevelHigh)
            .Cells("reg", Reg(rtc))
            .Strings("compatible", "arm,pl031", "arm,primecell")
            .EndNode();
        var uart = map[VirtRegion.Uart0];
        string uartPath = $"/pl011@{uart.Base:x}";
        w.BeginNode($"pl011@{uart.Base:x}")
            .Strings("clock-names", "uartclk", "apb_pclk").Cells("clocks", clock, clock)
            .Cells("interrupts", Spi, VirtIrqMap.Uart0, LevelHigh)
            .Cells("reg", Reg(uart))
            .Strings("compatible", "arm,pl011", "arm,primecell")
            .EndNode();

        // fdt_add_pmu_nodes: an Armv8 CPU's PMU gets its PPI and compatible; a v7 one an empty node.
        w.BeginNode("pmu");
        if (IsArmV8(spec.CpuType)) w.Cells("interrupts", Ppi, PmuPpi, ppiFlags).Strings("compatible", "arm,armv8-pmuv3");
        w.EndNode();

        IntcNode(w, board, gic, msi);

        var flash = map[VirtRegion.Flash];
        ulong bank = flash.Size / 2;
        w.BeginNode($"flash@{flash.Base:x}")
            .Cells("bank-width", 4)
            .Cells("reg", [.. Reg(new MemMapEntry(flash.Base, bank)), .. Reg(new MemMapEntry(flash.Base + bank, bank))])
            .Strings("compatible", "cfi-flash")
            .EndNode();

        w.BeginNode("cpus").Cells("#size-cells", 0).Cells("#address-cells", 1);
        w.BeginNode("cpu-map").BeginNode("socket0").BeginNode("cluster0");
        for (int i = 0; i < spec.Cpus; i++) w.BeginNode($"core{i}").Cells("cpu", cpuPhandles[i]).EndNode();
        w.EndNode().EndNode().EndNode();
        for (int i = 0; i < spec.Cpus; i++)
        {
            w.BeginNode($"cpu@{i:x}").Cells("phandle", cpuPhandles[i]).Cells("reg", (uint)i);
            if (spec.Cpus > 1) w.Strings("enable-method", "psci");
            w.Strings("compatible", CpuCompatible(spec.CpuType)).Strings("device_type", "cpu").EndNode();
        }
        w.EndNode();

        w.BeginNode("timer")
            .Cells("interrupts", [.. TimerPpis.SelectMany(p => new[] { Ppi, p, ppiFlags })])
            .Empty("always-on")
            .Strings("compatible", "arm,armv8-timer", "arm,armv7-timer")
            .EndNode();
        w.BeginNode("apb-pclk")
            .Cells("phandle", clock)
            .Strings("clock-output-names", "clk24mhz")
            .Cells("clock-frequency", ApbClockHz)
            .Cells("#clock-cells", 0)
            .Strings("compatible", "fixed-clock")
            .EndNode();
        w.BeginNode("aliases").Strings("serial0", uartPath).EndNode();
        w.BeginNode("chosen").Strings("stdout-path", uartPath).EndNode();
        w.EndNode();
        return w.Finish();
    }

    // target/arm cpu models' dtb_compatible: "arm,<model>" for the Cortex models, the generic
    // "arm,arm-v8" for host (KVM), and TCG's max reports itself as a Cortex-A57.
    private static string CpuCompatible(string model) => model switch
    {
        "host" => "arm,arm-v8",
        "max" => "arm,cortex-a57",
        _ => $"arm,{model}",
    };

    // The 32-bit-only Armv7 models the virt board takes; everything else it runs is Armv8 or later.
    private static bool IsArmV8(string model) => model is not ("cortex-a7" or "cortex-a15");

    /// <summary>True when QEMU can describe the board in a device tree: no accel=on SMMU ("SMMUv3 with accel=on not supported for DT").</summary>
    public static bool Supports(VirtBoard board) => !board.Smmus.Any(s => s.Accel);

    // The SMMU the tree describes: iommu=smmuv3's, or the -device arm-smmuv3 on pcie.0 (one on
    // another bus draws QEMU's warning "SMMUv3 device only supported with pcie.0 for DT" and no node).
    private static PlacedSmmu? TreeSmmu(VirtBoard board)
    {
        if (board.Spec.LegacySmmu) return board.Smmus.FirstOrDefault();
        for (int i = 0; i < board.Spec.Smmus.Count; i++)
            if (board.Spec.Smmus[i].PrimaryBus == PciBus.DefaultRootName && !board.Spec.Smmus[i].Accel) return board.Smmus[i];
        return null;
    }

    // Documentation/devicetree/bindings/iommu/arm,smmu-v3.yaml.
    private static void SmmuNode(FdtWriter w, PlacedSmmu smmu, uint phandle)
    {
        uint spi = (uint)smmu.Spi;
        w.BeginNode($"smmuv3@{smmu.Base:x}")
            .Cells("phandle", phandle)
            .Cells("#iommu-cells", 1)
            .Empty("dma-coherent")
            .Strings("interrupt-names", "eventq", "priq", "cmdq-sync", "gerror")
            .Cells("interrupts", Spi, spi, EdgeRising, Spi, spi + 1, EdgeRising, Spi, spi + 2, EdgeRising, Spi, spi + 3, EdgeRising)
            .Cells("reg", Reg(new MemMapEntry(smmu.Base, VirtBoard.SmmuRegionSize)))
            .Strings("compatible", "arm,smmu-v3")
            .EndNode();
    }

    // virt.c create_pcie; Documentation/devicetree/bindings/pci/host-generic-pci.yaml, pci-iommu.yaml, pci-msi.yaml.
    private static void PcieNode(FdtWriter w, VirtBoard board, uint gic, uint? msi, uint? smmu)
    {
        var map = board.MemoryMap;
        var mmio = map[VirtRegion.PcieMmio];
        var pio = map[VirtRegion.PciePio];
        var high = map[VirtRegion.HighPcieMmio];
        var ecam = map.Ecam;
        w.BeginNode($"pcie@{mmio.Base:x}");
        if (smmu is { } s) w.Cells("iommu-map", 0, s, 0, Acpi.IortLayout.RequesterIdSpace);
        w.Cells("interrupt-map-mask", PciSlotMask, 0, 0, PciPinMask);
        var imap = new List<uint>();
        for (uint slot = 0; slot < VirtIrqMap.PciePins; slot++)
            for (uint pin = 1; pin <= VirtIrqMap.PciePins; pin++)
            {
                imap.AddRange([slot << PciDevfnSlotShift, 0, 0, pin, gic]);
                imap.AddRange(Enumerable.Repeat(0u, GicAddressCells));
                imap.AddRange([Spi, (uint)(VirtIrqMap.Pcie + (pin - 1 + slot) % VirtIrqMap.PciePins), LevelHigh]);
            }
        w.Cells("interrupt-map", [.. imap]);
        w.Cells("#interrupt-cells", 1);
        w.Cells("ranges",
            PciSpaceIo, 0, 0, Hi(pio.Base), Lo(pio.Base), Hi(pio.Size), Lo(pio.Size),
            PciSpaceMmio32, Hi(mmio.Base), Lo(mmio.Base), Hi(mmio.Base), Lo(mmio.Base), Hi(mmio.Size), Lo(mmio.Size),
            PciSpaceMmio64, Hi(high.Base), Lo(high.Base), Hi(high.Base), Lo(high.Base), Hi(high.Size), Lo(high.Size));
        w.Cells("reg", Reg(ecam));
        if (msi is { } m) w.Cells("msi-map", 0, m, 0, Acpi.IortLayout.RequesterIdSpace);
        w.Empty("dma-coherent")
            .Cells("bus-range", 0, (uint)(map.EcamBusCount - 1))
            .Cells("linux,pci-domain", 0)
            .Cells("#size-cells", 2)
            .Cells("#address-cells", 3)
            .Strings("device_type", "pci")
            .Strings("compatible", "pci-host-ecam-generic")
            .EndNode();
    }

    // virt.c create_gic / create_its / create_v2m; bindings arm,gic.yaml, arm,gic-v3.yaml.
    private static void IntcNode(FdtWriter w, VirtBoard board, uint gic, uint? msi)
    {
        var spec = board.Spec;
        var map = board.MemoryMap;
        var dist = map[VirtRegion.GicDist];
        w.BeginNode($"intc@{dist.Base:x}").Cells("phandle", gic);
        if (spec.Gic == GicVersion.V3)
        {
            w.Cells("reg", [.. Reg(dist), .. Reg(map[VirtRegion.GicRedist])])
                .Cells("#redistributor-regions", RedistributorRegions)
                .Strings("compatible", "arm,gic-v3");
        }
        else
        {
            w.Cells("reg", [.. Reg(dist), .. Reg(map[VirtRegion.GicCpu])])
                .Strings("compatible", "arm,cortex-a15-gic");
        }
        w.Empty("ranges").Cells("#size-cells", 2).Cells("#address-cells", 2).Empty("interrupt-controller").Cells("#interrupt-cells", 3);
        if (msi is { } m && spec.HasIts)
        {
            var its = map[VirtRegion.GicIts];
            w.BeginNode($"its@{its.Base:x}").Cells("phandle", m).Cells("reg", Reg(its)).Cells("#msi-cells", 1)
                .Empty("msi-controller").Strings("compatible", "arm,gic-v3-its").EndNode();
        }
        else if (msi is { } v && spec.HasV2m)
        {
            var v2m = map[VirtRegion.GicV2m];
            w.BeginNode($"v2m@{v2m.Base:x}").Cells("phandle", v).Cells("reg", Reg(v2m))
                .Empty("msi-controller").Strings("compatible", "arm,gic-v2m-frame").EndNode();
        }
        w.EndNode();
    }

    // Two address cells and two size cells, as the root node declares.
    private static uint[] Reg(MemMapEntry e) => [Hi(e.Base), Lo(e.Base), Hi(e.Size), Lo(e.Size)];
    private static uint Hi(ulong v) => (uint)(v >> 32);
    private static uint Lo(ulong v) => (uint)v;
}

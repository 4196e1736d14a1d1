using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Machine;

// Not "...Tests.Machine": that namespace would hide NestedSmmu.Vmm.Machine from the other test folders.
namespace NestedSmmu.Vmm.Tests.Pci;

/// <summary>The PCIe tree: placement, bus numbers in both views, requester IDs, vSMMU ownership.</summary>
public sealed class PciTopologyTests
{
    private static PciTopology Build(string line) => PciTopology.Build(QemuCommandLine.Parse(line));

    [Fact]
    public void Seed_002_places_the_vfio_device_behind_its_root_port_on_the_expander_bus()
    {
        MachineSpec spec = QemuCommandLine.Parse(File.ReadAllText(TestVectors.PathOf("qemu-verdicts", "seed-002.cmdline")));
        PciTopology t = PciTopology.Build(spec);

        t.RootBuses.Select(b => b.Name).ShouldBe(["pcie.0", "pcie.1"]);
        PciFunction dev0 = t.FunctionOf("dev0").ShouldNotBeNull();
        dev0.Bus.ShouldBe("pcie.port1");
        dev0.Devfn.ShouldBe(PciDevfn.Of(0, 0));
        t.Bus("pcie.port1").RootBus.ShouldBe("pcie.1");

        // Firmware: pcie.1 is bus 1, the root port's secondary bus 2; StreamID = RID 0x0200.
        PciBusNumbering fw = t.Numbering(PciNumberingView.FirmwareEnumerated);
        fw.NumberOf("pcie.port1").ShouldBe((byte)2);
        fw.RequesterIdOf(dev0).Value.ShouldBe((ushort)0x0200);
        fw.RangeOf("pcie.1").ShouldBe(new PciBusRange(1, 2));

        // pxb-pcie takes the first free slot on pcie.0 (slot 0 is the GPEX root), nvme and e1000 the next ones.
        t.FunctionOf(spec.Devices.OfType<PxbPcieDevice>().Single())!.Devfn.ShouldBe(PciDevfn.Of(1, 0));
        t.Functions.Where(f => f.Device is OtherDevice).Select(f => f.Devfn.Slot).ShouldBe([2, 3]);
    }

    [Fact]
    public void Unenumerated_view_reads_zero_from_bridges_as_qemu_pci_bus_range_does()
    {
        // QEMU 11.1 at startup (IORT built before firmware) for this line maps RC input IDs
        // 0x0000..0x10FF to the SMMU: pci_bus_range gives min(0x10, secondary 0) = 0, max 0x10.
        PciTopology t = Build("-device pxb-pcie,id=pcie.1,bus_nr=0x10,bus=pcie.0 -device arm-smmuv3,primary-bus=pcie.1,id=s1 " +
            "-device pcie-root-port,id=rp1,bus=pcie.1,chassis=1 -device pcie-root-port,id=rp0,bus=pcie.0,chassis=2");
        PciBusNumbering boot = t.Numbering(PciNumberingView.Unenumerated);
        boot.RangeOf("pcie.1").ShouldBe(new PciBusRange(0, 0x10));
        boot.NumberOf("rp1").ShouldBe((byte)0);
        boot.RangeOf("pcie.0").ShouldBe(new PciBusRange(0, 0));

        PciBusNumbering fw = t.Numbering(PciNumberingView.FirmwareEnumerated);
        fw.RangeOf("pcie.1").ShouldBe(new PciBusRange(0x10, 0x11));
        fw.BridgeWindow("rp1").ShouldBe(((byte)0x11, (byte)0x11));
        fw.RangeOf("pcie.0").ShouldBe(new PciBusRange(0, 1));
    }

    [Fact]
    public void Firmware_numbers_depth_first_in_slot_order()
    {
        PciTopology t = Build("-device pcie-root-port,id=a,chassis=1,addr=3 -device pcie-root-port,id=b,chassis=2,addr=2 " +
            "-device pcie-pci-bridge,id=br,bus=b -device e1000,bus=br,addr=5");
        PciBusNumbering fw = t.Numbering(PciNumberingView.FirmwareEnumerated);
        fw.NumberOf("b").ShouldBe((byte)1);
        fw.NumberOf("br").ShouldBe((byte)2);
        fw.NumberOf("a").ShouldBe((byte)3);
        fw.BridgeWindow("b").ShouldBe(((byte)1, (byte)2));
        fw.RequesterIdOf(t.Functions.Single(f => f.Device.Driver == "e1000")).Value.ShouldBe((ushort)0x0228);
    }

    [Fact]
    public void Legacy_smmu_owns_every_root_bus_that_does_not_bypass()
    {
        PciTopology t = Build("-machine virt,iommu=smmuv3 -device pxb-pcie,id=pcie.1,bus=pcie.0,bus_nr=0x10 " +
            "-device pxb-pcie,id=pcie.2,bus=pcie.0,bus_nr=0x20,bypass_iommu=on");
        t.OwnerOfRootBus("pcie.0")!.IsLegacy.ShouldBeTrue();
        t.OwnerOfRootBus("pcie.1")!.Name.ShouldBe(PciIommuOwner.LegacyName);
        t.OwnerOfRootBus("pcie.2").ShouldBeNull();
    }

    [Fact]
    public void A_pci_device_without_bus_goes_to_the_newest_expander_bus()
    {
        // QEMU 11.1: "-device pxb-pcie,id=pcie.1,bus_nr=4 -device e1000" fails on pcie.1.
        Should.Throw<QemuConfigException>(() => Build("-device pxb-pcie,id=pcie.1,bus_nr=4 -device e1000"))
            .Message.ShouldBe("-device e1000: PCI: Only PCI/PCIe bridges can be plugged into pxb-pcie");
    }

    [Fact]
    public void Each_device_smmu_owns_its_primary_bus_only()
    {
        PciTopology t = Build("-device arm-smmuv3,primary-bus=pcie.0,id=smmuv3.0 -device pxb-pcie,id=pcie.1,bus=pcie.0,bus_nr=0x10 " +
            "-device arm-smmuv3,primary-bus=pcie.1,id=smmuv3.1 -device pxb-pcie,id=pcie.2,bus=pcie.0,bus_nr=0x20");
        t.OwnerOfRootBus("pcie.0")!.Name.ShouldBe("smmuv3.0");
        t.OwnerOfRootBus("pcie.1")!.Name.ShouldBe("smmuv3.1");
        t.OwnerOfRootBus("pcie.2").ShouldBeNull();
        t.RootBusesOwnedBy("smmuv3.1").Select(b => b.Name).ShouldBe(["pcie.1"]);
    }
}

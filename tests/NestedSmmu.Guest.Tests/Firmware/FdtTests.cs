using NestedSmmu.Guest.Firmware;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Guest.Tests.Firmware;

/// <summary>The FDT reader on the device tree QEMU 11.1 gives a virt,iommu=smmuv3 guest (dumpdtb).</summary>
public sealed class FdtTests
{
    private static FlattenedDeviceTree Load() =>
        FlattenedDeviceTree.Parse(File.ReadAllBytes(TestVectors.PathOf("qemu-tables", "guest-fdt-smmuv3", "virt.dtb")));

    [Fact]
    public void The_smmuv3_node_gives_frame_interrupts_and_the_pcie_iommu_map_the_streamids()
    {
        var topo = FdtIommuTopology.Read(Load());
        var smmu = topo.Smmus.ShouldHaveSingleItem();
        // virt's memory map: VIRT_SMMU at 0x09050000, 0x20000 bytes, SPIs 74..77 (hw/arm/virt.c).
        smmu.BaseAddress.ShouldBe(0x0905_0000UL);
        smmu.Size.ShouldBe(0x2_0000UL);
        smmu.Interrupts["eventq"].ShouldBe(74u + 32);
        smmu.Interrupts["gerror"].ShouldBe(77u + 32);
        smmu.DmaCoherent.ShouldBeTrue();
        topo.IommuMap.ShouldHaveSingleItem().Length.ShouldBe(0x1_0000u);
        topo.TryResolve(0x0010, out var s, out uint sid).ShouldBeTrue();
        s.ShouldBeSameAs(smmu);
        sid.ShouldBe(0x0010u);
    }

    [Fact]
    public void Device_tree_and_iort_of_the_same_machine_agree()
    {
        // The same machine (virt,iommu=smmuv3) described both ways: frame and event interrupt must match.
        var fdt = FdtIommuTopology.Read(Load()).Smmus.Single();
        var iort = Iort.Parse(File.ReadAllBytes(TestVectors.PathOf("qemu-tables", "guest-smmuv3-legacy", "IORT.dat"))).SmmuV3Nodes.Single();
        fdt.BaseAddress.ShouldBe(iort.BaseAddress);
        fdt.Interrupts["eventq"].ShouldBe(iort.EventGsiv);
        fdt.Interrupts["priq"].ShouldBe(iort.PriGsiv);
        fdt.Interrupts["cmdq-sync"].ShouldBe(iort.SyncGsiv);
        fdt.Interrupts["gerror"].ShouldBe(iort.GerrGsiv);
    }

    [Fact]
    public void Nodes_paths_and_cells_read_as_dtc_shows_them()
    {
        var fdt = Load();
        fdt.Root.Cell("#address-cells").ShouldBe(2u);
        var pcie = fdt.Compatible("pci-host-ecam-generic").Single();
        pcie.Path.ShouldBe("/pcie@10000000");
        pcie.Cells("bus-range").ShouldBe([0u, 0xFFu]);
        fdt.ByPhandle(pcie.Cells("iommu-map")[1])!.Name.ShouldBe("smmuv3@9050000");
    }

    [Fact]
    public void Not_a_device_tree_is_a_clear_error()
    {
        Should.Throw<FirmwareTableException>(() => FlattenedDeviceTree.Parse(File.ReadAllBytes(TestVectors.PathOf("qemu-tables", "guest-smmuv3-dev", "IORT.dat"))))
            .Message.ShouldContain("bad magic");
    }
}

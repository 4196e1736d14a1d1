using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.Fdt;
using NestedSmmu.Vmm.Machine;
using NestedSmmu.Vmm.Tests.Acpi;

namespace NestedSmmu.Vmm.Tests.Fdt;

/// <summary>Our virt device tree against QEMU 11.1's (tests/vectors/qemu-tables/*/virt.dtb, -machine dumpdtb=).</summary>
public sealed class VirtDeviceTreeTests
{
    public static readonly TheoryData<string> Cases = new(
        "iommu-smmuv3", "iommu-smmuv3-gicv3", "smmuv3-legacy", "smmuv3-dev", "gicv3-its", "gicv3-its-off", "gicv2-v2m", "smp4-big");

    private static FdtNode SmmuNode(FdtNode root) =>
        root.Children.SingleOrDefault(c => c.Name.StartsWith("smmuv3@", StringComparison.Ordinal)).ShouldNotBeNull();

    private static FdtNode Qemu(string name) => FdtReader.Read(File.ReadAllBytes(TestVectors.PathOf("qemu-tables", name, "virt.dtb")));

    private static FdtNode Ours(string name) => FdtReader.Read(VirtDeviceTree.Build(ParsedTableCases.Board(name)));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Smmuv3_node_equals_qemus(string name)
    {
        var qemu = SmmuNode(Qemu(name));
        var ours = SmmuNode(Ours(name));
        Describe(ours).ShouldBe(Describe(qemu));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Pcie_iommu_map_and_msi_map_equal_qemus(string name)
    {
        var qemu = Qemu(name).Find("pcie@10000000").ShouldNotBeNull();
        var ours = Ours(name).Find("pcie@10000000").ShouldNotBeNull();
        ours.Property("iommu-map").ShouldNotBeNull().Cells().ShouldBe(qemu.Property("iommu-map").ShouldNotBeNull().Cells());
        // iommu-map points at the SMMU node's phandle, msi-map (absent with its=off) at the MSI controller's.
        var tree = Ours(name);
        ours.Property("iommu-map")!.Cells()[1].ShouldBe(SmmuNode(tree).Property("phandle")!.Cells()[0]);
        if (qemu.Property("msi-map") is { } qemuMsi)
        {
            ours.Property("msi-map").ShouldNotBeNull().Cells().ShouldBe(qemuMsi.Cells());
            var msi = tree.Find("intc@8000000")!.Children.Single();
            ours.Property("msi-map")!.Cells()[1].ShouldBe(msi.Property("phandle")!.Cells()[0]);
        }
        else
        {
            ours.Property("msi-map").ShouldBeNull();
        }
    }

    /// <summary>Beyond the acceptance: the whole tree, node by node and property by property, except what QEMU randomizes or reads from the CPU model.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Whole_tree_equals_qemus_but_random_seeds_and_cpu_caches(string name)
    {
        Describe(Ours(name)).ShouldBe(Describe(Qemu(name)));
    }

    [Fact]
    public void A_device_smmu_on_pcie0_gets_a_node_on_the_platform_bus_and_the_iommu_map()
    {
        var spec = NestedSmmu.Vmm.Config.QemuCommandLine.Parse("-machine virt,gic-version=3 -device arm-smmuv3,primary-bus=pcie.0,id=s0");
        var tree = FdtReader.Read(VirtDeviceTree.Build(VirtBoard.Layout(VirtBoardSpec.From(spec, PciTopology.Build(spec), PciNumberingView.Unenumerated))));
        var smmu = tree.Find("smmuv3@c000000").ShouldNotBeNull();
        smmu.Property("interrupts")!.Cells().ShouldBe([0u, 112, 1, 0, 113, 1, 0, 114, 1, 0, 115, 1]);
        tree.Find("pcie@10000000")!.Property("iommu-map")!.Cells()[1].ShouldBe(smmu.Property("phandle")!.Cells()[0]);
    }

    [Fact]
    public void Writer_output_reads_back()
    {
        byte[] blob = new FdtWriter().Reserve(0x1000, 0x2000).BeginNode("").Cells("a", 1, 2).Strings("s", "x", "yz").Empty("e")
            .BeginNode("n@1").Cells("a", 3).EndNode().EndNode().Finish();
        var root = FdtReader.Read(blob);
        root.Property("a")!.Cells().ShouldBe([1u, 2]);
        root.Property("s")!.Strings().ShouldBe(["x", "yz"]);
        root.Property("e")!.Value.ShouldBeEmpty();
        root.Find("n@1")!.Property("a")!.Cells().ShouldBe([3u]);
        System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(blob.AsSpan(FdtFormat.TotalSizeOffset)).ShouldBe((uint)blob.Length);
        System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(blob.AsSpan(FdtFormat.VersionOffset)).ShouldBe(17u);
    }

    private static readonly HashSet<string> CpuCacheProperties =
    [
        "next-level-cache", "i-cache-sets", "i-cache-size", "i-cache-block-size", "d-cache-sets", "d-cache-size", "d-cache-block-size",
    ];

    // A dtc-like text of a subtree, without /chosen's seeds and the CPU nodes' cache geometry.
    private static string Describe(FdtNode node, string indent = "")
    {
        var sb = new System.Text.StringBuilder();
        sb.Append(indent).Append(node.Name).Append(" {\n");
        foreach (var p in node.Properties)
        {
            if (p.Name is "rng-seed" or "kaslr-seed") continue;
            if (node.Name.StartsWith("cpu@", StringComparison.Ordinal) && CpuCacheProperties.Contains(p.Name)) continue;
            sb.Append(indent).Append("  ").Append(p.Name).Append(" = ").Append(Convert.ToHexString(p.Value)).Append('\n');
        }
        foreach (var c in node.Children) sb.Append(Describe(c, indent + "  "));
        sb.Append(indent).Append("}\n");
        return sb.ToString();
    }
}

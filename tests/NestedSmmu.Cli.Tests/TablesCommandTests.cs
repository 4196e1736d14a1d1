using NestedSmmu.Tests.Common;

namespace NestedSmmu.Cli.Tests;

/// <summary>`nestedsmmu tables` end to end, against QEMU 11.1's tables (tests/vectors/qemu-tables).</summary>
public sealed class TablesCommandTests
{
    private const int ChecksumOffset = 9;

    public static readonly TheoryData<string> Cases = new(
        "smmuv3-legacy", "smmuv3-dev", "pxb-one-smmu", "three-smmus", "gicv3-its", "gicv3-its-off",
        "gicv2-v2m", "bypass-pxb", "iommu-smmuv3", "iommu-smmuv3-gicv3", "smp4-big");

    private static string[] QemuArgs(string name) =>
        File.ReadAllText(TestVectors.PathOf("qemu-tables", name, "cmdline.txt")).Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string TempDir() => Path.Combine(Path.GetTempPath(), "nestedsmmu-cli-tests", Guid.NewGuid().ToString("N"));

    private static void ShouldEqualMasked(byte[] ours, byte[] qemu)
    {
        byte sum = 0;
        foreach (byte b in ours) sum += b;
        sum.ShouldBe((byte)0, "our checksum");
        ours[ChecksumOffset] = qemu[ChecksumOffset] = 0;
        Convert.ToHexString(ours).ShouldBe(Convert.ToHexString(qemu));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Out_writes_qemus_iort_a_dsdt_and_a_device_tree(string name)
    {
        string dir = TempDir();
        var r = CliRunner.Run(["tables", "--out", dir, "--", .. QemuArgs(name)]);
        r.ExitCode.ShouldBe(0, r.Stderr);
        ShouldEqualMasked(File.ReadAllBytes(Path.Combine(dir, "IORT.dat")), File.ReadAllBytes(TestVectors.PathOf("qemu-tables", name, "IORT.dat")));
        File.ReadAllBytes(Path.Combine(dir, "DSDT.dat")).AsSpan(0, 4).ToArray().ShouldBe("DSDT"u8.ToArray());
        File.Exists(Path.Combine(dir, "virt.dtb")).ShouldBeTrue();
        r.Stdout.ShouldContain("IORT.dat");
    }

    [Theory]
    [InlineData("pxb-one-smmu")]
    [InlineData("three-smmus")]
    [InlineData("smmuv3-legacy")]
    public void Enumerated_gives_qemus_iort_after_the_bridges_are_numbered(string name)
    {
        string dir = TempDir();
        var r = CliRunner.Run(["tables", "--enumerated", "--out", dir, "--", .. QemuArgs(name)]);
        r.ExitCode.ShouldBe(0, r.Stderr);
        ShouldEqualMasked(File.ReadAllBytes(Path.Combine(dir, "IORT.dat")), File.ReadAllBytes(TestVectors.PathOf("qemu-tables", name, "IORT.enumerated.dat")));
    }

    [Fact]
    public void Without_out_it_prints_nodes_and_id_mappings()
    {
        var r = CliRunner.Run(["tables", "--", .. QemuArgs("pxb-one-smmu")]);
        r.ExitCode.ShouldBe(0, r.Stderr);
        r.Stdout.ShouldContain("ITS group [0x030] id 0");
        r.Stdout.ShouldContain("SMMUv3 [0x048] id 1 base 0x0c000000, GSIV event 144 pri 145 gerr 147 sync 146");
        r.Stdout.ShouldContain("IDs 0x0000-0x10ff -> SMMUv3 [0x048]");
        r.Stdout.ShouldContain("IDs 0x1100-0xffff -> ITS group [0x030]");
        r.Stdout.ShouldContain("PC10");
        // The SMMU is on a pxb-pcie: QEMU warns it gets no device tree node.
        r.Stderr.ShouldContain("warning: SMMUv3 device only supported with pcie.0 for DT");
    }

    [Fact]
    public void A_line_qemu_refuses_exits_2_with_qemus_message_on_one_error_line()
    {
        var r = CliRunner.Run(["tables", "--", "-machine", "virt,iommu=smmuv3", "-device", "arm-smmuv3,primary-bus=pcie.0"]);
        r.ExitCode.ShouldBe(2);
        var errors = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith("error: ", StringComparison.Ordinal)).ToList();
        errors.Count.ShouldBe(1);
        errors[0].ShouldContain("virt machine already has iommu=smmuv3 set. Doesn't support incompatible iommus");
        r.Stdout.ShouldBeEmpty();
    }

    [Fact]
    public void An_accel_cmdqv_machine_gets_cmdqv_devices_an_rmr_and_no_device_tree()
    {
        string dir = TempDir();
        var r = CliRunner.Run(["tables", "--host", "grace", "--out", dir, "--",
            "-machine", "virt,accel=kvm,gic-version=3", "-cpu", "host", "-m", "4G", "-bios", "firmware.fd",
            "-object", "iommufd,id=iommufd0",
            "-device", "pxb-pcie,id=pcie.1,bus_nr=1,bus=pcie.0",
            "-device", "arm-smmuv3,primary-bus=pcie.1,id=smmuv3.1,accel=on,cmdqv=on",
            "-device", "pcie-root-port,id=pcie.port1,bus=pcie.1,chassis=1",
            "-device", "vfio-pci,host=0009:06:00.0,bus=pcie.port1,id=dev0,iommufd=iommufd0"]);
        r.ExitCode.ShouldBe(0, r.Stderr);
        byte[] dsdt = File.ReadAllBytes(Path.Combine(dir, "DSDT.dat"));
        string text = System.Text.Encoding.ASCII.GetString(dsdt);
        text.ShouldContain("CV01");
        text.ShouldContain("NVDA200C");
        byte[] iort = File.ReadAllBytes(Path.Combine(dir, "IORT.dat"));
        iort[36].ShouldBe((byte)4); // ITS, SMMUv3, root complex, RMR
        File.Exists(Path.Combine(dir, "virt.dtb")).ShouldBeFalse();
    }
}

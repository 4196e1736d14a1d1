using System.Xml.Linq;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// `nestedsmmu plan` end to end: plans for the embedded grace host and for fake sysfs trees (a
/// 2-SMMU and a 4-SMMU host, probed through an emulated host with the same SMMUs), each fed back
/// through `nestedsmmu check`; the refusals; the three output formats.
/// </summary>
public sealed class PlanCommandTests
{
    private static CliRunner.Output Plan(params string[] args) => CliRunner.Run(["plan", .. args]);

    // The plan's QEMU text (backslash-newline continued), judged by `check` on the given host.
    private static CliRunner.Output CheckPlan(string qemuText, string host) => CliRunner.Run(["check", "--host", host, "--json", "--", qemuText]);

    private static System.Text.Json.JsonElement Accepted(CliRunner.Output check)
    {
        check.ExitCode.ShouldBe(0, check.Stderr);
        var root = System.Text.Json.JsonDocument.Parse(check.Stdout).RootElement;
        root.GetProperty("verdict").GetString().ShouldBe("accepted");
        return root;
    }

    // (vSMMU, physical SMMU) per vSMMU, and (host address, vSMMU, StreamID) per vfio device, from check's JSON.
    private static (string, string)[] Bindings(System.Text.Json.JsonElement check) =>
        [.. check.GetProperty("vsmmus").EnumerateArray().Select(v => (v.GetProperty("name").GetString()!, v.GetProperty("physicalSmmu").GetString()!))];

    private static (string, string, int)[] Devices(System.Text.Json.JsonElement check) =>
        [.. check.GetProperty("devices").EnumerateArray().Where(d => d.GetProperty("driver").GetString() == "vfio-pci")
            .Select(d => (d.GetProperty("hostAddress").GetString()!, d.GetProperty("vsmmu").GetString()!, d.GetProperty("streamId").GetInt32()))];

    [Fact]
    public void Grace_all_devices_one_vsmmu_per_physical_smmu_accepted_by_check()
    {
        CliRunner.Output o = Plan("--host", "grace");
        o.ExitCode.ShouldBe(0, o.Stderr);
        o.Stderr.ShouldBeEmpty();
        o.Stdout.ShouldStartWith("-machine virt,accel=kvm \\");
        var root = Accepted(CheckPlan(o.Stdout, "grace"));
        Bindings(root).ShouldBe([("vsmmu0", "smmu0"), ("vsmmu1", "smmu1"), ("vsmmu2", "smmu2"), ("vsmmu3", "smmu3"), ("vsmmu4", "smmu4")]);
        Devices(root).ShouldBe([
            ("0009:01:00.0", "vsmmu0", 0x1100), ("0009:06:00.0", "vsmmu0", 0x1200), ("0008:01:00.0", "vsmmu1", 0x2100),
            ("0006:01:00.0", "vsmmu2", 0x3100), ("0005:01:00.0", "vsmmu3", 0x4100), ("0005:01:00.1", "vsmmu3", 0x4200),
            ("0000:01:00.0", "vsmmu4", 0x5100), ("0000:01:00.1", "vsmmu4", 0x5200)]);
        // Bus ranges never collide: each pxb-pcie's hierarchy ends before the next one's bus_nr.
        root.GetProperty("vsmmus").EnumerateArray().Select(v => (v.GetProperty("busMin").GetInt32(), v.GetProperty("busMax").GetInt32()))
            .ShouldBe([(0x10, 0x12), (0x20, 0x21), (0x30, 0x31), (0x40, 0x42), (0x50, 0x52)]);
    }

    [Fact]
    public void Grace_named_devices_with_cmdqv_on_resolve_cmdqv_from_the_host()
    {
        CliRunner.Output o = Plan("--host", "grace", "--device", "0005:01:00.1", "--device", "0009:06:00.0", "--cmdqv", "on");
        o.ExitCode.ShouldBe(0, o.Stderr);
        o.Stdout.ShouldContain("arm-smmuv3,primary-bus=pcie.1,id=vsmmu0,accel=on,cmdqv=on");
        var root = Accepted(CheckPlan(o.Stdout, "grace"));
        Bindings(root).ShouldBe([("vsmmu0", "smmu0"), ("vsmmu1", "smmu3")]);
        root.GetProperty("vsmmus").EnumerateArray().ShouldAllBe(v => v.GetProperty("cmdqv").GetBoolean());
        Devices(root).ShouldBe([("0009:06:00.0", "vsmmu0", 0x1100), ("0005:01:00.1", "vsmmu1", 0x2100)]);
    }

    [Theory]
    [InlineData("off")]
    [InlineData("on")]
    public void Run_passes_on_the_plan_of_the_same_host(string cmdqv)
    {
        // The promise: what plan prints, run boots and drives on the emulated host built from the same profile.
        CliRunner.Output o = Plan("--host", "grace", "--cmdqv", cmdqv);
        o.ExitCode.ShouldBe(0, o.Stderr);
        CliRunner.Output run = CliRunner.Run(["run", "--host", "grace", "--json", "--", .. QemuCommandLine.SplitShellWords(o.Stdout)]);
        run.ExitCode.ShouldBe(0, run.Stdout + run.Stderr);
        using var report = System.Text.Json.JsonDocument.Parse(run.Stdout);
        report.RootElement.GetProperty("verdict").GetString().ShouldBe("pass");
        report.RootElement.GetProperty("failed_checks").GetArrayLength().ShouldBe(0);
        var vsmmus = report.RootElement.GetProperty("vsmmus").EnumerateArray().ToList();
        vsmmus.Count.ShouldBe(5);
        vsmmus.ShouldAllBe(v => v.GetProperty("cmdqv").GetBoolean() == (cmdqv == "on"));
        vsmmus.Sum(v => v.GetProperty("devices").GetArrayLength()).ShouldBe(8);
    }

    [Fact]
    public void The_firmware_tables_of_a_plan_map_each_expander_to_its_vsmmu_and_cmdqv()
    {
        CliRunner.Output o = Plan("--host", "grace", "--device", "0009:01:00.0", "--device", "0005:01:00.0", "--device", "0005:01:00.1", "--cmdqv", "on");
        o.ExitCode.ShouldBe(0, o.Stderr);
        CliRunner.Output tables = CliRunner.Run(["tables", "--enumerated", "--", .. QemuCommandLine.SplitShellWords(o.Stdout)]);
        tables.ExitCode.ShouldBe(0, tables.Stderr);
        tables.Stdout.ShouldContain("SMMUv3 vsmmu0: id 1, 0x0c000000, GSIV 144-147, accel, CMDQV 0x0c080000 GSIV 148, serves [0x10-0x11]");
        tables.Stdout.ShouldContain("SMMUv3 vsmmu1: id 2, 0x0c020000, GSIV 149-152, accel, CMDQV 0x0c100000 GSIV 153, serves [0x20-0x22]");
        tables.Stdout.ShouldContain("IDs 0x1000-0x11ff -> SMMUv3 [0x048] from 0x1000");
        tables.Stdout.ShouldContain("IDs 0x2000-0x22ff -> SMMUv3 [0x0a0] from 0x2000");
    }

    [Fact]
    public void Json_format_is_the_machine_json_and_reads_back()
    {
        CliRunner.Output o = Plan("--host", "grace", "--device", "0008:01:00.0", "--format", "json");
        o.ExitCode.ShouldBe(0, o.Stderr);
        MachineSpec spec = MachineSpecJson.Read(o.Stdout);
        spec.VfioDevices.Single().Host.ShouldBe("0008:01:00.0");
        spec.Smmus.Single().Accel.ShouldBeTrue();
        spec.KvmRequested.ShouldBeTrue();
        Plan("--host", "grace", "--device", "0008:01:00.0", "--json").Stdout.ShouldBe(o.Stdout);
    }

    [Fact]
    public void Libvirt_format_has_an_expander_bus_root_ports_hostdevs_and_an_iommu_per_physical_smmu()
    {
        CliRunner.Output o = Plan("--host", "grace", "--device", "0009:01:00.0", "--device", "0009:06:00.0", "--device", "0000:01:00.0",
            "--device", "0000:01:00.1", "--format", "libvirt");
        o.ExitCode.ShouldBe(0, o.Stderr);
        XElement devices = XElement.Parse(o.Stdout[o.Stdout.IndexOf("<devices>", StringComparison.Ordinal)..]);
        var controllers = devices.Elements("controller").ToList();
        controllers.Select(c => ((string)c.Attribute("index")!, (string)c.Attribute("model")!)).ShouldBe([
            ("0", "pcie-root"), ("1", "pcie-expander-bus"), ("2", "pcie-root-port"), ("3", "pcie-root-port"),
            ("4", "pcie-expander-bus"), ("5", "pcie-root-port"), ("6", "pcie-root-port")]);
        controllers.Where(c => (string)c.Attribute("model")! == "pcie-expander-bus").Select(c => (string)c.Element("target")!.Attribute("busNr")!)
            .ShouldBe(["16", "32"]);
        // Root ports sit on their expander (address bus = the expander's controller index).
        controllers[3].Element("address")!.Attribute("bus")!.Value.ShouldBe("0x01");
        controllers[3].Element("address")!.Attribute("slot")!.Value.ShouldBe("0x01");
        var hostdevs = devices.Elements("hostdev").ToList();
        hostdevs.Count.ShouldBe(4);
        hostdevs.ShouldAllBe(h => (string)h.Element("driver")!.Attribute("iommufd")! == "yes" && (string)h.Attribute("managed")! == "yes");
        hostdevs[2].Element("source")!.Element("address")!.Attributes().Select(a => a.Value).ShouldBe(["0x0000", "0x01", "0x00", "0x0"]);
        hostdevs[2].Element("address")!.Attribute("bus")!.Value.ShouldBe("0x05");
        devices.Elements("iommu").Select(i => ((string)i.Attribute("model")!, (string)i.Element("driver")!.Attribute("pciBus")!,
            (string)i.Element("driver")!.Attribute("accel")!)).ShouldBe([("smmuv3", "1", "on"), ("smmuv3", "4", "on")]);
    }

    [Fact]
    public void Two_smmu_sysfs_host_numa_nodes_from_the_devices()
    {
        using var sysfs = new FakeSysfs();
        int a = sysfs.Smmu(0x11000000), b = sysfs.Smmu(0x12000000);
        sysfs.Function("0009:01:00.0", a, "10", numaNode: 0);
        sysfs.Function("0009:02:00.0", a, "11", numaNode: 0, ats: false);
        sysfs.Function("0008:01:00.0", b, "12", numaNode: 1, ats: null);
        string profile = sysfs.WriteProfile("two");

        CliRunner.Output o = Plan("--host", sysfs.Root, "--iommufd", "emulated:" + profile);
        o.ExitCode.ShouldBe(0, o.Stderr);
        o.Stdout.ShouldContain("-device pxb-pcie,id=pcie.1,bus_nr=16,bus=pcie.0,numa_node=0 \\");
        o.Stdout.ShouldContain("-device pxb-pcie,id=pcie.2,bus_nr=32,bus=pcie.0,numa_node=1 \\");
        o.Stdout.ShouldContain("-numa node,nodeid=0,memdev=mem0 \\");
        o.Stdout.ShouldContain("-numa node,nodeid=1 \\");
        var root = Accepted(CheckPlan(o.Stdout, profile));
        Bindings(root).ShouldBe([("vsmmu0", sysfs.SmmuName(a)), ("vsmmu1", sysfs.SmmuName(b))]);
        Devices(root).ShouldBe([("0009:01:00.0", "vsmmu0", 0x1100), ("0009:02:00.0", "vsmmu0", 0x1200), ("0008:01:00.0", "vsmmu1", 0x2100)]);

        // And it runs on the emulated host built from the same profile.
        CliRunner.Output run = CliRunner.Run(["run", "--host", profile, "--json", "--", .. QemuCommandLine.SplitShellWords(o.Stdout)]);
        run.ExitCode.ShouldBe(0, run.Stdout + run.Stderr);
        using (var report = System.Text.Json.JsonDocument.Parse(run.Stdout))
        {
            report.RootElement.GetProperty("verdict").GetString().ShouldBe("pass");
            report.RootElement.GetProperty("vsmmus").EnumerateArray().Sum(v => v.GetProperty("devices").GetArrayLength()).ShouldBe(3);
        }

        string xml = Plan("--host", sysfs.Root, "--iommufd", "emulated:" + profile, "--format", "libvirt").Stdout;
        xml.ShouldContain($"{sysfs.SmmuName(a)}: 0009:01:00.0 0009:02:00.0 (no ATS capability)");
        XElement devices = XElement.Parse(xml.Split("-->")[1]);
        devices.Elements("controller").Where(c => (string)c.Attribute("model")! == "pcie-expander-bus")
            .Select(c => (string)c.Element("target")!.Element("node")!).ShouldBe(["0", "1"]);
    }

    [Fact]
    public void Four_smmu_sysfs_host_leaves_out_what_cannot_be_nested_and_refuses_it_by_name()
    {
        using var sysfs = new FakeSysfs();
        int s0 = sysfs.Smmu(0x11000000), s1 = sysfs.Smmu(0x12000000), s2 = sysfs.Smmu(0x15000000, cmdqv: false), s3 = sysfs.Smmu(0x16000000, nesting: false);
        sysfs.Function("0009:01:00.0", s0, "20");
        sysfs.Function("0008:01:00.0", s1, "21");
        sysfs.Function("0005:01:00.0", s2, "22");    // a two-function NIC in one group
        sysfs.Function("0005:01:00.1", s2, "22");
        sysfs.Function("0004:01:00.0", s3, "23");    // behind the SMMU without stage 1
        sysfs.Function("0003:01:00.0", null, "24");  // no IOMMU
        sysfs.Function("0002:03:00.0", s0, "25", vfio: false); // bound to its own driver
        string profile = sysfs.WriteProfile("four");
        string[] host = ["--host", sysfs.Root, "--iommufd", "emulated:" + profile];

        CliRunner.Output all = Plan(host);
        all.ExitCode.ShouldBe(0, all.Stderr);
        all.Stderr.ShouldContain("note: left out 0003:01:00.0 has no IOMMU");
        all.Stderr.ShouldContain($"note: left out 0004:01:00.0 is behind physical SMMU {sysfs.SmmuName(s3)}, which cannot nest (IDR0: S1P=0 S2P=1");
        all.Stdout.ShouldNotContain("0002:03:00.0");
        var root = Accepted(CheckPlan(all.Stdout, profile));
        Bindings(root).ShouldBe([("vsmmu0", sysfs.SmmuName(s0)), ("vsmmu1", sysfs.SmmuName(s1)), ("vsmmu2", sysfs.SmmuName(s2))]);
        Devices(root).Select(d => d.Item1).ShouldBe(["0009:01:00.0", "0008:01:00.0", "0005:01:00.0", "0005:01:00.1"]);

        CliRunner.Output split = Plan([.. host, "--device", "0005:01:00.0"]);
        split.ExitCode.ShouldBe(2);
        split.Stderr.ShouldBe("error: 0005:01:00.0 shares IOMMU group 22 with 0005:01:00.1, which the request leaves out: a group goes to one VM whole; " +
            "add --device 0005:01:00.1 or leave 0005:01:00.0 out" + Environment.NewLine);
        Plan([.. host, "--device", "0003:01:00.0"]).Stderr.ShouldStartWith("error: 0003:01:00.0 has no IOMMU on sysfs host");
        Plan([.. host, "--device", "0004:01:00.0"]).Stderr.ShouldContain("which cannot nest");
        Plan([.. host, "--device", "0002:03:00.0"]).Stderr.ShouldStartWith("error: 0002:03:00.0 is not bound to vfio-pci");
        CliRunner.Output cmdqv = Plan([.. host, "--device", "0009:01:00.0", "--device", "0005:01:00.0", "--device", "0005:01:00.1", "--cmdqv", "on"]);
        cmdqv.ExitCode.ShouldBe(2);
        cmdqv.Stderr.ShouldContain($"--cmdqv on: physical SMMU {sysfs.SmmuName(s2)} on sysfs host");
        cmdqv.Stderr.ShouldContain("has no usable Tegra241 CMDQV");
    }

    [Fact]
    public void Misuse_is_an_error_line_and_exit_2()
    {
        CliRunner.Output o = Plan("--host", "no-such-host");
        o.ExitCode.ShouldBe(2);
        o.Stderr.ShouldStartWith("error: host 'no-such-host': neither an embedded profile");
        Plan("--host", "grace", "--device", "0009:99:00.0").Stderr.ShouldStartWith("error: 0009:99:00.0 is not a passthrough-capable function on emulated host 'grace'");
        Plan("--host", "grace", "--device", "junk").Stderr.ShouldStartWith("error: 'junk' is not a PCI address");
        Plan("--host", "grace", "--cmdqv", "maybe").ExitCode.ShouldNotBe(0);
        // The small host's smmu0 has a linear stream table, QEMU's accel vSMMU a two-level one: QEMU's own message.
        CliRunner.Output small = Plan("--host", "small");
        small.ExitCode.ShouldBe(2);
        small.Stderr.ShouldContain("Host SMMUv3 Stream Table format mismatch (host STLEVEL=0, QEMU STLEVEL=1)");
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("check", "--help")]
    [InlineData("translate", "--help")]
    [InlineData("run", "--help")]
    [InlineData("tables", "--help")]
    [InlineData("bench", "--help")]
    [InlineData("plan", "--help")]
    public void Root_and_data_commands_show_an_example(params string[] args)
    {
        CliRunner.Output o = CliRunner.Run(args);
        o.ExitCode.ShouldBe(0);
        o.Stdout.ShouldContain("Example");
        o.Stdout.ShouldContain("nestedsmmu ");
    }

    [Fact]
    public void Help_lists_the_options_with_an_example()
    {
        CliRunner.Output o = Plan("--help");
        o.ExitCode.ShouldBe(0);
        foreach (string option in new[] { "--host", "--device", "--cmdqv", "--format", "--json", "--iommufd", "--firmware", "--memory", "Examples:" })
            o.Stdout.ShouldContain(option);
    }
}

using System.Text.Json;
using NestedSmmu.Tests.Common;

namespace NestedSmmu.Cli.Tests;

/// <summary>
/// `nestedsmmu run` end to end on the emulated host: the VMM realizes the machine, the reference
/// guest boots from its tables and runs the DMA workload per device on both invalidation paths;
/// every test reads the one JSON report.
/// </summary>
public sealed class RunCommandTests
{
    /// <summary>Two accel vSMMUs without CMDQV on two physical SMMUs of grace (smmu3: nic0; smmu4: nic2), and a free root port rp3 on pcie.2.</summary>
    private static readonly string[] TwoVsmmusNoCmdqv =
    [
        "-machine", "virt,accel=kvm,gic-version=3", "-bios", "AAVMF_CODE.fd", "-m", "1G", "-object", "iommufd,id=iommufd0",
        "-device", "pxb-pcie,id=pcie.1,bus_nr=1,bus=pcie.0",
        "-device", "arm-smmuv3,primary-bus=pcie.1,id=smmuv3.1,accel=on,cmdqv=off",
        "-device", "pcie-root-port,id=rp1,bus=pcie.1,chassis=1",
        "-device", "vfio-pci,host=0005:01:00.0,bus=rp1,id=nic0,iommufd=iommufd0",
        "-device", "pxb-pcie,id=pcie.2,bus_nr=8,bus=pcie.0",
        "-device", "arm-smmuv3,primary-bus=pcie.2,id=smmuv3.2,accel=on,cmdqv=off",
        "-device", "pcie-root-port,id=rp2,bus=pcie.2,chassis=2",
        "-device", "vfio-pci,host=0000:01:00.0,bus=rp2,id=nic2,iommufd=iommufd0",
        "-device", "pcie-root-port,id=rp3,bus=pcie.2,chassis=3",
    ];

    private static JsonElement Json(CliRunner.Output run) => JsonDocument.Parse(run.Stdout).RootElement;

    private static JsonElement[] Devices(JsonElement report) =>
        [.. report.GetProperty("vsmmus").EnumerateArray().SelectMany(v => v.GetProperty("devices").EnumerateArray())];

    private static long Figure(JsonElement e, string path, string name) => e.GetProperty(path).GetProperty(name).GetInt64();

    /// <summary>Every device that ran: data moved, each fault seen, trapped batches trapped, direct ones not.</summary>
    private static void ShouldHaveRunEveryDevice(JsonElement report, bool direct)
    {
        foreach (JsonElement d in Devices(report))
        {
            string name = d.GetProperty("name").GetString()!;
            d.GetProperty("dmas").GetInt64().ShouldBeGreaterThan(0, name);
            d.GetProperty("bytes").GetInt64().ShouldBeGreaterThan(0, name);
            d.GetProperty("faults_expected").GetInt32().ShouldBeGreaterThan(0, name);
            d.GetProperty("faults_seen").GetInt32().ShouldBe(d.GetProperty("faults_expected").GetInt32(), name);
            Figure(d, "trapped", "batches").ShouldBeGreaterThan(0, name);
            Figure(d, "trapped", "vmm_traps").ShouldBeGreaterThanOrEqualTo(Figure(d, "trapped", "batches"), name);
            if (direct) Figure(d, "direct", "batches").ShouldBeGreaterThan(0, name);
            else Figure(d, "direct", "batches").ShouldBe(0, name);
            Figure(d, "direct", "vmm_traps").ShouldBe(0, name);
        }
    }

    [Fact]
    public void The_16_vSMMU_64_device_host_of_the_performance_issue_runs_and_passes()
    {
        // The documented whole-system command: nestedsmmu run --host examples/hosts/perf-16x4.json.
        string profile = Path.Combine(TestVectors.RepositoryRoot, "examples", "hosts", "perf-16x4.json");
        var run = CliRunner.Run("run", "--json", "--host", profile);
        run.ExitCode.ShouldBe(0, run.Stderr);
        JsonElement r = Json(run);
        r.GetProperty("verdict").GetString().ShouldBe("pass");
        JsonElement[] vsmmus = [.. r.GetProperty("vsmmus").EnumerateArray()];
        vsmmus.Length.ShouldBe(16);
        vsmmus.ShouldAllBe(v => v.GetProperty("accel").GetBoolean() && v.GetProperty("devices").GetArrayLength() == 4);
        // 16 arm-smmuv3 take all 64 platform-bus IRQ lines of the virt board: no CMDQV fits, the run says so.
        vsmmus.ShouldAllBe(v => !v.GetProperty("cmdqv").GetBoolean());
        r.GetProperty("notes").EnumerateArray().Select(n => n.GetString()).ShouldContain(n => n!.Contains("cmdqv=off on 16 vSMMU(s)"));
        Devices(r).Length.ShouldBe(64);
        ShouldHaveRunEveryDevice(r, direct: false);
    }

    [Fact]
    public void The_default_machine_runs_every_device_of_grace_on_both_paths()
    {
        var run = CliRunner.Run("run", "--json");
        run.ExitCode.ShouldBe(0, run.Stderr);
        JsonElement r = Json(run);
        r.GetProperty("verdict").GetString().ShouldBe("pass");
        r.GetProperty("failed_checks").GetArrayLength().ShouldBe(0);
        r.GetProperty("boot").GetString().ShouldBe("acpi");
        // grace: five physical SMMUs with devices, each with a CMDQV: one accel vSMMU with cmdqv each.
        var vsmmus = r.GetProperty("vsmmus").EnumerateArray().ToList();
        vsmmus.Count.ShouldBe(5);
        vsmmus.Select(v => v.GetProperty("physical_smmu").GetString()).ShouldBe(["smmu0", "smmu1", "smmu2", "smmu3", "smmu4"]);
        vsmmus.ShouldAllBe(v => v.GetProperty("accel").GetBoolean() && v.GetProperty("cmdqv").GetBoolean());
        Devices(r).Select(d => d.GetProperty("host_address").GetString()).Order().ShouldBe(
            ["0000:01:00.0", "0000:01:00.1", "0005:01:00.0", "0005:01:00.1", "0006:01:00.0", "0008:01:00.0", "0009:01:00.0", "0009:06:00.0"]);
        ShouldHaveRunEveryDevice(r, direct: true);
        var checks = r.GetProperty("checks").EnumerateArray().ToList();
        checks.ShouldAllBe(c => c.GetProperty("passed").GetBoolean());
        checks.Select(c => c.GetProperty("name").GetString()).ShouldContain("gpu0 [direct]: device writes are in host memory where the SMMU translated them");
        checks.Select(c => c.GetProperty("name").GetString()).ShouldContain("teardown: the VM gave back every byte of host memory");

        // The paths side by side: direct batches cost no trap, trapped ones at least one each.
        JsonElement inv = r.GetProperty("invalidation");
        Figure(inv, "direct", "batches").ShouldBeGreaterThan(0);
        Figure(inv, "direct", "vmm_traps").ShouldBe(0);
        Figure(inv, "trapped", "vmm_traps").ShouldBeGreaterThanOrEqualTo(Figure(inv, "trapped", "batches"));
        Figure(inv, "trapped", "batches").ShouldBe(Devices(r).Sum(d => Figure(d, "trapped", "batches")));
        // Both paths carried the same invalidations for the same workload.
        Figure(inv, "direct", "commands").ShouldBe(Figure(inv, "trapped", "commands"));
        // ...and the direct run's batches rang VCMDQ doorbells in the mapped host page, which the VMM never saw.
        vsmmus.Sum(v => v.GetProperty("cmdqv_direct_doorbells").GetInt64()).ShouldBeGreaterThanOrEqualTo(Figure(inv, "direct", "batches"));
    }

    [Fact]
    public void People_get_a_table_per_vsmmu_and_a_one_line_verdict()
    {
        var run = CliRunner.Run("run");
        run.ExitCode.ShouldBe(0, run.Stderr);
        run.Stdout.ShouldContain("smmuv3.0 @ 0xC000000");
        run.Stdout.ShouldContain("invalidation by path");
        foreach (string device in new[] { "gpu0", "gpu3", "nic0", "nic3" }) run.Stdout.ShouldContain(device);
        run.Stdout.TrimEnd().Split('\n')[^1].ShouldStartWith("PASS: ");
    }

    [Fact]
    public void Verbose_prints_the_generated_command_line_and_traces_mmio_commands_and_ioctls()
    {
        var run = CliRunner.Run("run", "-v");
        run.ExitCode.ShouldBe(0, run.Stderr);
        string first = run.Stdout.Split('\n')[0];
        first.ShouldStartWith("qemu-system-aarch64 -machine virt,accel=kvm");
        first.ShouldContain("arm-smmuv3,primary-bus=pcie.1,id=smmuv3.0,accel=on,cmdqv=on");
        run.Stdout.ShouldContain("ioctl IOMMU_VIOMMU_ALLOC");
        run.Stdout.ShouldContain("ioctl IOMMU_HW_QUEUE_ALLOC");
        run.Stdout.ShouldContain("mmio smmuv3.0 W32 +0x00098"); // CMDQ_PROD trap
        run.Stdout.ShouldContain("TLBI_NH_VA");
    }

    [Fact]
    public void Legacy_iommu_smmuv3_with_emulated_devices_boots_from_the_device_tree()
    {
        var run = CliRunner.Run("run", "--json", "--", "-machine", "virt,iommu=smmuv3", "-m", "512M",
            "-device", "e1000,id=nic0", "-device", "virtio-net-pci,id=net1");
        run.ExitCode.ShouldBe(0, run.Stderr);
        JsonElement r = Json(run);
        r.GetProperty("verdict").GetString().ShouldBe("pass");
        r.GetProperty("boot").GetString().ShouldBe("device tree");
        JsonElement v = r.GetProperty("vsmmus").EnumerateArray().ShouldHaveSingleItem();
        v.GetProperty("accel").GetBoolean().ShouldBeFalse();
        v.GetProperty("base").GetString().ShouldBe("0x9050000");
        v.GetProperty("spi").GetInt32().ShouldBe(74);
        Devices(r).Select(d => d.GetProperty("kind").GetString()).ShouldBe(["emulated", "emulated"]);
        Devices(r).Select(d => d.GetProperty("vsid").GetString()).ShouldBe(["0x8", "0x10"]);
        ShouldHaveRunEveryDevice(r, direct: false);
    }

    [Fact]
    public void A_passed_through_device_without_a_vIOMMU_runs_and_its_teardown_leaves_only_the_drivers_CD_table()
    {
        // No vIOMMU: the device is attached to the IOAS's automatic domain, which arm-smmu-v3 makes a
        // stage-1 domain, so the host driver gives the device a CD table that lives as long as the
        // device (arm_smmu_release_device frees it), not the VM: the teardown check must not count it.
        var run = CliRunner.Run("run", "--json", "--", "-machine", "virt,accel=kvm", "-bios", "AAVMF_CODE.fd", "-m", "512M",
            "-object", "iommufd,id=iommufd0", "-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1",
            "-device", "vfio-pci,host=0009:01:00.0,bus=rp1,id=gpu0,iommufd=iommufd0");
        run.ExitCode.ShouldBe(0, run.Stdout + run.Stderr);
        JsonElement r = Json(run);
        r.GetProperty("verdict").GetString().ShouldBe("pass");
        r.GetProperty("checks").EnumerateArray()
            .ShouldContain(c => c.GetProperty("name").GetString()!.StartsWith("teardown") && c.GetProperty("passed").GetBoolean());
    }

    [Fact]
    public void Two_vsmmus_without_cmdqv_run_the_trapped_path_only()
    {
        var run = CliRunner.Run(["run", "--json", "--", .. TwoVsmmusNoCmdqv]);
        run.ExitCode.ShouldBe(0, run.Stderr);
        JsonElement r = Json(run);
        r.GetProperty("verdict").GetString().ShouldBe("pass");
        var vsmmus = r.GetProperty("vsmmus").EnumerateArray().ToList();
        vsmmus.Select(v => v.GetProperty("physical_smmu").GetString()).ShouldBe(["smmu3", "smmu4"]);
        vsmmus.ShouldAllBe(v => !v.GetProperty("cmdqv").GetBoolean() && v.GetProperty("cmdqv_traps").GetInt64() == 0);
        Devices(r).Select(d => d.GetProperty("vsid").GetString()).ShouldBe(["0x200", "0x900"]);
        ShouldHaveRunEveryDevice(r, direct: false);
        Figure(r.GetProperty("invalidation"), "direct", "batches").ShouldBe(0);
    }

    [Fact]
    public void A_device_hot_plugged_after_boot_runs_like_a_cold_plugged_one()
    {
        var run = CliRunner.Run(["run", "--json", "--hotplug", "vfio-pci,host=0000:01:00.1,bus=rp3,id=nic3,iommufd=iommufd0", "--", .. TwoVsmmusNoCmdqv]);
        run.ExitCode.ShouldBe(0, run.Stderr);
        JsonElement r = Json(run);
        r.GetProperty("verdict").GetString().ShouldBe("pass");
        JsonElement nic3 = Devices(r).Single(d => d.GetProperty("name").GetString() == "nic3");
        nic3.GetProperty("hot_plugged").GetBoolean().ShouldBeTrue();
        nic3.GetProperty("physical_smmu").GetString().ShouldBe("smmu4");
        nic3.GetProperty("vsid").GetString().ShouldBe("0xA00");
        r.GetProperty("vsmmus")[1].GetProperty("devices").GetArrayLength().ShouldBe(2);
        ShouldHaveRunEveryDevice(r, direct: false);
    }

    [Fact]
    public void A_hot_plug_behind_another_physical_smmu_is_refused_with_one_error_line()
    {
        var run = CliRunner.Run(["run", "--json", "--hotplug", "vfio-pci,host=0005:01:00.1,bus=rp3,id=nic1,iommufd=iommufd0", "--", .. TwoVsmmusNoCmdqv]);
        run.ExitCode.ShouldBe(2);
        run.Stdout.ShouldBeEmpty();
        string error = run.Stderr.Trim().Split('\n').ShouldHaveSingleItem();
        error.ShouldStartWith("error: ");
        error.ShouldContain("nic1 (host 0005:01:00.1) is behind physical SMMU smmu3, but vSMMU smmuv3.2 is bound to physical SMMU smmu4");
    }

    [Fact]
    public void The_seed_002_command_line_runs_with_auto_resolved_from_the_host()
    {
        string line = File.ReadAllText(TestVectors.PathOf("qemu-verdicts", "seed-002.cmdline")).Replace("\\\n", " ");
        var run = CliRunner.Run("run", "--json", "--", line);
        run.ExitCode.ShouldBe(0, run.Stderr);
        JsonElement r = Json(run);
        r.GetProperty("verdict").GetString().ShouldBe("pass");
        JsonElement v = r.GetProperty("vsmmus").EnumerateArray().ShouldHaveSingleItem();
        v.GetProperty("name").GetString().ShouldBe("smmuv3.1");
        v.GetProperty("physical_smmu").GetString().ShouldBe("smmu0");
        // ats, ril, ssidsize, oas (and cmdqv) were auto: grace's smmu0 gives them.
        v.GetProperty("ats").GetBoolean().ShouldBeTrue();
        v.GetProperty("ril").GetBoolean().ShouldBeTrue();
        v.GetProperty("ssidsize").GetInt32().ShouldBe(20);
        v.GetProperty("oas").GetInt32().ShouldBe(48);
        v.GetProperty("cmdqv").GetBoolean().ShouldBeTrue();
        JsonElement dev0 = v.GetProperty("devices").EnumerateArray().ShouldHaveSingleItem();
        dev0.GetProperty("host_address").GetString().ShouldBe("0009:06:00.0");
        ShouldHaveRunEveryDevice(r, direct: true);
        // -m 16G is backed by the emulated host's cap, and the report says so; nvme and e1000 have no vIOMMU.
        r.GetProperty("guest_ram_bytes").GetUInt64().ShouldBe(1UL << 30);
        var notes = r.GetProperty("notes").EnumerateArray().Select(n => n.GetString()!).ToList();
        notes.ShouldContain(n => n.Contains("0x400000000 requested"));
        notes.ShouldContain(n => n.StartsWith("nvme: no vIOMMU"));
    }

    [Fact]
    public void The_same_seed_gives_the_same_report_and_seeds_vary_only_the_data()
    {
        var a = CliRunner.Run(["run", "--json", "--seed", "7", "--", .. TwoVsmmusNoCmdqv]);
        var b = CliRunner.Run(["run", "--json", "--seed", "7", "--", .. TwoVsmmusNoCmdqv]);
        var c = CliRunner.Run(["run", "--json", "--seed", "8", "--", .. TwoVsmmusNoCmdqv]);
        a.ExitCode.ShouldBe(0, a.Stderr);
        b.Stdout.ShouldBe(a.Stdout);
        Json(c).GetProperty("verdict").GetString().ShouldBe("pass");
    }

    [Fact]
    public void A_device_the_run_cannot_drive_fails_the_run_with_exit_1_naming_the_check()
    {
        // QEMU accepts a vfio device named by sysfsdev; the model binds host functions by address only.
        var run = CliRunner.Run("run", "--json", "--", "-machine", "virt,accel=kvm", "-bios", "fw.fd", "-m", "256M", "-object", "iommufd,id=iommufd0",
            "-device", "arm-smmuv3,primary-bus=pcie.0,accel=on,id=v0", "-device", "pcie-root-port,id=rp0,chassis=1", "-device", "pcie-root-port,id=rp1,chassis=2",
            "-device", "vfio-pci,host=0009:01:00.0,bus=rp0,id=gpu0,iommufd=iommufd0",
            "-device", "vfio-pci,sysfsdev=/sys/bus/pci/devices/0009:06:00.0,bus=rp1,id=gpu3,iommufd=iommufd0");
        run.ExitCode.ShouldBe(1, run.Stderr);
        JsonElement r = Json(run);
        r.GetProperty("verdict").GetString().ShouldBe("fail");
        r.GetProperty("failed_checks").EnumerateArray().Select(e => e.GetString()).ShouldBe(["gpu3: the VM can make it issue DMA"]);
        run.Stderr.ShouldContain("FAILED: gpu3: the VM can make it issue DMA");
        // The device beside it still ran.
        Devices(r).Single(d => d.GetProperty("name").GetString() == "gpu0").GetProperty("dmas").GetInt64().ShouldBeGreaterThan(0);
    }

    [Fact]
    public void Vfio_given_before_its_emulated_smmu_fails_the_dma_check_saying_why()
    {
        // QEMU accepts this order (the SMMU takes the bus after vfio took system memory); the device's DMA then
        // bypasses the vSMMU the firmware puts it behind, which the run cannot check as it promises.
        var run = CliRunner.Run("run", "--json", "--", "-machine", "virt", "-m", "256M", "-object", "iommufd,id=iommufd0",
            "-device", "vfio-pci,host=0009:01:00.0,id=gpu0,iommufd=iommufd0", "-device", "arm-smmuv3,primary-bus=pcie.0,id=smmu0");
        run.ExitCode.ShouldBe(1, run.Stderr);
        JsonElement check = Json(run).GetProperty("checks").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "gpu0: the VM can make it issue DMA");
        check.GetProperty("passed").GetBoolean().ShouldBeFalse();
        check.GetProperty("detail").GetString().ShouldBe(
            "vfio device realized before its emulated vSMMU smmu0: QEMU maps its DMA untranslated while the firmware puts it behind smmu0");
    }

    /// <summary>The brief's two lines: vfio-pci behind iommu=smmuv3, and behind an arm-smmuv3 without accel=on.</summary>
    public static TheoryData<string, string> EmulatedSmmuLines() => new()
    {
        { "-machine virt,iommu=smmuv3", "Region smmuv3-iommu-memory-region-0-0: device 00.00.0" },
        { "-machine virt -device arm-smmuv3,primary-bus=pcie.0,id=smmu0", "Region smmuv3-iommu-memory-region-0-0: device 00.00.0" },
    };

    [Theory]
    [MemberData(nameof(EmulatedSmmuLines))]
    public void Vfio_behind_an_emulated_smmu_is_refused_by_check_and_run_with_exit_2_and_qemus_message(string machine, string region)
    {
        const string vfio = "-device vfio-pci,host=0009:01:00.0,bus=rp0,iommufd=iommufd0";
        string[] line = [.. $"{machine} -object iommufd,id=iommufd0 -device pcie-root-port,id=rp0,chassis=1 {vfio}".Split(' ')];
        string expected = $"error: {vfio}: vfio 0009:01:00.0: memory listener initialization failed: {region} requires iommu MAP notifier which is not currently supported";
        var check = CliRunner.Run(["check", "--", .. line]);
        check.ExitCode.ShouldBe(2, check.Stderr);
        check.Stderr.Split('\n').Single(l => l.StartsWith("error:", StringComparison.Ordinal)).ShouldBe(expected);
        var run = CliRunner.Run(["run", "--", .. line]);
        run.ExitCode.ShouldBe(2, run.Stderr);
        run.Stderr.Trim().ShouldBe(expected);
        run.Stdout.ShouldNotContain("verdict");
    }

    [Fact]
    public void A_vfio_device_hot_plugged_behind_an_emulated_smmu_is_refused_with_exit_2_naming_the_region_qemu_names()
    {
        // QEMU 11.1.3 refused a device hot-plugged there on this machine naming the same region (the GPEX root,
        // both root ports and the e1000 took the first four); the bus number is the one the guest's firmware gave rp1.
        using JsonDocument v = JsonDocument.Parse(File.ReadAllText(TestVectors.PathOf("qemu-verdicts", "map-notifier", "hotplug-legacy-root-port.json")));
        v.RootElement.GetProperty("qmpError").GetString()!.ShouldContain("Region smmuv3-iommu-memory-region-0-4: device 00.00.0 requires");
        const string gpu0 = "vfio-pci,host=0009:01:00.0,bus=rp1,id=gpu0,iommufd=iommufd0";
        var run = CliRunner.Run("run", "--hotplug", gpu0, "--", "-machine", "virt,iommu=smmuv3", "-m", "256M", "-object", "iommufd,id=iommufd0",
            "-device", "pcie-root-port,id=rp0,chassis=1", "-device", "pcie-root-port,id=rp1,chassis=2", "-device", "e1000");
        run.ExitCode.ShouldBe(2, run.Stderr);
        run.Stderr.Trim().ShouldBe($"error: -device {gpu0}: vfio 0009:01:00.0: memory listener initialization failed: " +
            "Region smmuv3-iommu-memory-region-0-4: device 02.00.0 requires iommu MAP notifier which is not currently supported");
    }

    [Fact]
    public void A_line_qemu_refuses_exits_2_with_qemus_message()
    {
        var run = CliRunner.Run("run", "--", "-machine", "virt", "-device", "arm-smmuv3,accel=on,primary-bus=pcie.0");
        run.ExitCode.ShouldBe(2);
        run.Stderr.Trim().ShouldBe("error: -device arm-smmuv3,accel=on,primary-bus=pcie.0: SMMUv3 accel=on requires KVM with kernel-irqchip=on support");
    }

    [Fact]
    public void A_board_whose_platform_bus_cannot_hold_the_smmus_exits_2_with_qemus_message()
    {
        // 17 SMMUs of 4 SPIs each need 68 of the platform bus's 64 lines.
        var args = new List<string> { "run", "--", "-machine", "virt" };
        for (int i = 1; i <= 17; i++)
            args.AddRange(["-device", $"pxb-pcie,id=pcie.{i},bus_nr={i * 8},bus=pcie.0", "-device", $"arm-smmuv3,primary-bus=pcie.{i},id=smmu{i}"]);
        var run = CliRunner.Run([.. args]);
        run.ExitCode.ShouldBe(2);
        run.Stderr.Split('\n').ShouldContain("error: Platform Bus: Can not fit IRQ line");
    }

    [Fact]
    public void The_default_machine_of_a_host_qemu_cannot_accelerate_is_refused_as_qemu_refuses_it()
    {
        // The 'small' host's first SMMU has a linear stream table; QEMU's accelerated vSMMU needs the 2-level one (smmuv3-accel.c).
        var run = CliRunner.Run("run", "--host", "small");
        run.ExitCode.ShouldBe(2);
        run.Stderr.Trim().Split('\n').ShouldHaveSingleItem().ShouldBe(
            "error: -device vfio-pci,host=0000:01:00.0,bus=rp1,id=gpu0,iommufd=iommufd0: Host SMMUv3 Stream Table format mismatch (host STLEVEL=0, QEMU STLEVEL=1)");

        var unknown = CliRunner.Run("run", "--host", "no-such-profile");
        unknown.ExitCode.ShouldBe(2);
        unknown.Stderr.ShouldContain("neither an embedded profile");

        string bad = CliRunner.TempFile("host.json", """{ "name": "x", "smmus": [] }""");
        var malformed = CliRunner.Run("run", "--host", bad);
        malformed.ExitCode.ShouldBe(2);
        malformed.Stderr.ShouldContain("missing member 'memory'");
    }
}

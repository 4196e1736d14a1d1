using System.Text.Json;
using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.Config;
using NestedSmmu.Vmm.Machine;

namespace NestedSmmu.Vmm.Tests.Config;

/// <summary>
/// A VFIO device behind an emulated SMMUv3 (iommu=smmuv3, or arm-smmuv3 without accel=on) is
/// refused as QEMU 11.1 refuses it: the MAP notifier error from the VFIO memory listener, naming
/// the SMMU's per-device region. QEMU's text is checked against qemu-verdicts/map-notifier (QEMU
/// 11.1.3 observed through vfio-user-pci, which shares vfio-pci's container code; the QEMU root
/// has no host function for vfio-pci itself).
/// </summary>
public sealed class EmulatedSmmuVfioTests
{
    private const string Program = "qemu-system-aarch64: ";
    private const string Gpu0 = "0009:01:00.0";
    private const string Kvm = "-machine virt,accel=kvm -bios fw.fd -object iommufd,id=iommufd0 ";
    private const string MapNotifier = "requires iommu MAP notifier which is not currently supported";

    private static MachineCheck Check(string line, HostView? host) => MachineValidator.Check(QemuCommandLine.SplitShellWords(line), host);

    [Fact]
    public void The_briefs_line_behind_iommu_smmuv3_is_refused_at_the_vfio_device_with_qemus_message()
    {
        const string vfio = "-device vfio-pci,host=0009:01:00.0,bus=rp0,iommufd=iommufd0";
        MachineCheck c = Check("-machine virt,iommu=smmuv3 -object iommufd,id=iommufd0 -device pcie-root-port,id=rp0,chassis=1 " + vfio, TestHosts.Grace);
        c.Accepted.ShouldBeFalse();
        c.Error!.Message.ShouldBe(vfio + ": vfio 0009:01:00.0: memory listener initialization failed: " +
            "Region smmuv3-iommu-memory-region-0-0: device 00.00.0 " + MapNotifier);
    }

    [Fact]
    public void An_arm_smmuv3_without_accel_refuses_it_too_and_so_does_a_check_without_a_host_view()
    {
        const string line = "-object iommufd,id=iommufd0 -device arm-smmuv3,primary-bus=pcie.0,id=v0 -device vfio-pci,host=0009:01:00.0,id=gpu0,iommufd=iommufd0";
        string expected = $"vfio {Gpu0}: memory listener initialization failed: Region smmuv3-iommu-memory-region-8-0: device 00.01.0 {MapNotifier}";
        Check(line, TestHosts.Grace).Error!.QemuMessage.ShouldBe(expected);
        Check(line, null).Error!.QemuMessage.ShouldBe(expected);
    }

    [Fact]
    public void The_legacy_vfio_container_adds_the_iommu_group_it_failed_to_set_up()
    {
        // hw/vfio/container-legacy.c vfio_group_get: "failed to setup container for group %d: ".
        string group = TestHosts.Grace.FindDevice(Gpu0)!.IommuGroup;
        Check("-machine virt,iommu=smmuv3 -device vfio-pci,host=0009:01:00.0", TestHosts.Grace).Error!.QemuMessage
            .ShouldBe($"vfio {Gpu0}: failed to setup container for group {group}: memory listener initialization failed: " +
                      $"Region smmuv3-iommu-memory-region-8-0: device 00.01.0 {MapNotifier}");
    }

    [Fact]
    public void A_missing_host_function_is_reported_first_as_qemu_checks_sysfs_before_the_container()
    {
        // Stored QEMU verdicts: qemu-verdicts/vfio-legacy-smmu-host-missing.json and vfio-smmu-host-missing.json.
        QemuVerdictTests.Load("vfio-smmu-host-missing").Stderr.ShouldEndWith("no such host device: No such file or directory");
        Check("-device arm-smmuv3,primary-bus=pcie.0 -device vfio-pci,host=0009:07:00.0", TestHosts.Grace).Error!.QemuMessage
            .ShouldBe("vfio /sys/bus/pci/devices/0009:07:00.0: no such host device: No such file or directory");
    }

    [Fact]
    public void The_device_is_named_as_vfio_names_it()
    {
        const string tail = "memory listener initialization failed: Region smmuv3-iommu-memory-region-8-0: device 00.01.0 " + MapNotifier;
        Check("-machine virt,iommu=smmuv3 -object iommufd,id=iommufd0 -device vfio-pci,sysfsdev=/sys/bus/pci/devices/0009:01:00.0/,iommufd=iommufd0", null)
            .Error!.QemuMessage.ShouldBe($"vfio {Gpu0}: {tail}");
        Check("-machine virt,iommu=smmuv3 -object iommufd,id=iommufd0 -device vfio-pci,fd=23,id=gpu0,iommufd=iommufd0", null)
            .Error!.QemuMessage.ShouldBe($"vfio gpu0: {tail}");
        Check("-machine virt,iommu=smmuv3 -object iommufd,id=iommufd0 -device vfio-pci,fd=23,iommufd=iommufd0", null)
            .Error!.QemuMessage.ShouldBe($"vfio VFIO_FD23: {tail}");
    }

    [Fact]
    public void Behind_an_accel_vsmmu_it_is_accepted_and_behind_a_second_emulated_one_refused_counting_the_accel_devices_region()
    {
        const string accel = Kvm +
            "-device pxb-pcie,id=pcie.1,bus_nr=0x10,bus=pcie.0 -device arm-smmuv3,primary-bus=pcie.1,id=vsmmu0,accel=on " +
            "-device pcie-root-port,id=rp0,bus=pcie.1,chassis=1 -device vfio-pci,host=0009:01:00.0,bus=rp0,id=gpu0,iommufd=iommufd0 ";
        MachineCheck ok = Check(accel, TestHosts.Grace);
        ok.Error.ShouldBeNull();
        ok.Devices.Single(d => d.Name == "gpu0").Vsmmu.ShouldBe("vsmmu0");

        // A non-accel SMMU on another expander: its vfio device is refused, whatever the other SMMU is.
        // The accel device's region (smmuv3-accel.c smmuv3_accel_get_dev) took index 0.
        MachineCheck c = Check(accel +
            "-device pxb-pcie,id=pcie.2,bus_nr=0x20,bus=pcie.0 -device arm-smmuv3,primary-bus=pcie.2,id=vsmmu1 " +
            "-device pcie-root-port,id=rp1,bus=pcie.2,chassis=2 -device vfio-pci,host=0009:06:00.0,bus=rp1,id=gpu3,iommufd=iommufd0", TestHosts.Grace);
        c.Error!.Message.ShouldBe("-device vfio-pci,host=0009:06:00.0,bus=rp1,id=gpu3,iommufd=iommufd0: vfio 0009:06:00.0: " +
            $"memory listener initialization failed: Region smmuv3-iommu-memory-region-0-1: device 00.00.0 {MapNotifier}");
    }

    [Fact]
    public void Without_a_vsmmu_above_it_a_vfio_device_is_accepted()
    {
        // The SMMU translates pcie.1 only; the device sits on pcie.0.
        MachineCheck c = Check("-object iommufd,id=iommufd0 -device pxb-pcie,id=pcie.1,bus_nr=0x10,bus=pcie.0 " +
            "-device arm-smmuv3,primary-bus=pcie.1,id=v0 -device vfio-pci,host=0009:01:00.0,id=gpu0,bus=pcie.0,iommufd=iommufd0", TestHosts.Grace);
        c.Error.ShouldBeNull();
        c.Devices.Single(d => d.Name == "gpu0").Vsmmu.ShouldBeNull();
        Check("-object iommufd,id=iommufd0 -device vfio-pci,host=0009:01:00.0,iommufd=iommufd0", TestHosts.Grace).Error.ShouldBeNull();
    }

    [Fact]
    public void An_smmu_given_after_the_vfio_device_was_not_its_iommu_when_it_realized_so_the_line_is_accepted()
    {
        // hw/pci/pci.c: the SMMU's realize sets the bus's IOMMU (pci_setup_iommu); vfio-pci asked for its
        // address space at its own realize, before, and got system memory: no MAP notifier, no refusal.
        MachineCheck c = Check("-object iommufd,id=iommufd0 -device vfio-pci,host=0009:01:00.0,id=gpu0,iommufd=iommufd0 " +
            "-device arm-smmuv3,primary-bus=pcie.0,id=smmu0", TestHosts.Grace);
        c.Error.ShouldBeNull();
        // The firmware tables still put it behind smmu0 (run reports that it cannot drive it).
        c.Devices.Single(d => d.Name == "gpu0").Vsmmu.ShouldBe("smmu0");
    }

    /// <summary>The cold-plug cases of qemu-verdicts/map-notifier (the last one shows a vfio-user device with no vIOMMU gets past the listener).</summary>
    public static TheoryData<string> ColdPlugVectors() =>
    [
        "legacy-slot1", "legacy-after-emulated", "smmu-root-port", "smmu-pxb-root-port",
        "legacy-pci-bridge", "legacy-pci-bridge-on-root-port", "legacy-pcie-pci-bridge",
    ];

    [Theory]
    [MemberData(nameof(ColdPlugVectors))]
    public void Qemus_region_name_and_device_match_ours_for_vfio_pci_in_the_same_place(string name)
    {
        MapNotifierVector v = MapNotifierVector.Load(name);
        v.Hotplug.ShouldBeNull();
        v.ExitCode.ShouldBe(1);
        // QEMU realizes a JSON -device after every other one: ours goes last as well.
        int json = v.Args.FindIndex(a => a.StartsWith('{'));
        string vfio = "vfio-pci,host=0009:01:00.0,iommufd=iommufd0" + BusAndAddr(v.Args[json]);
        List<string> args = [.. v.Args.Take(json - 1), .. v.Args.Skip(json + 1), "-object", "iommufd,id=iommufd0", "-device", vfio];
        MachineCheck ours = MachineValidator.Check([.. v.Prefix.Skip(1), .. args], TestHosts.Grace);

        string[] qemu = v.Stderr.Split('\n');
        string expected = string.Join("\n", [.. qemu[..^1], $"{Program}-device {vfio}: vfio {Gpu0}: {v.ListenerError}"]);
        QemuVerdictTests.Render(ours).ShouldBe(expected);
    }

    [Fact]
    public void The_vfio_user_device_without_a_vsmmu_gets_past_the_listener()
    {
        MapNotifierVector v = MapNotifierVector.Load("no-viommu");
        v.Stderr.ShouldNotContain("MAP notifier");
        v.Stderr.ShouldEndWith("this isn't a PCI device"); // the stub serves no device: the next step after the container
    }

    /// <summary>Hot-plug cases: the vector's cold part, realized and booted, then device_add of vfio-pci where QEMU hot-plugged vfio-user-pci.</summary>
    public static TheoryData<string, string> HotPlugVectors() => new()
    {
        // QEMU ran no firmware under qtest, so its bridges read bus 0; our guest's firmware numbered them.
        { "hotplug-legacy-root-port", "02" },
        { "hotplug-two-smmus", "11" },
        { "hotplug-legacy-bypassed-pxb", "11" },
    };

    [Theory]
    [MemberData(nameof(HotPlugVectors))]
    public void A_hot_plugged_vfio_device_is_refused_naming_the_region_qemu_names(string name, string enumeratedBus)
    {
        MapNotifierVector v = MapNotifierVector.Load(name);
        JsonElement plug = v.Hotplug.ShouldNotBeNull();
        string qemu = v.QmpError.ShouldNotBeNull()[v.QmpError!.IndexOf("memory listener", StringComparison.Ordinal)..];
        qemu.ShouldContain(" device 00.00.0 ");

        var host = EmulatedHost.FromEmbedded("grace");
        using IIommufd fd = host.Open();
        MachineCheck check = MachineValidator.Check([.. v.Prefix.Skip(1), .. v.Args, "-m", "256M", "-object", "iommufd,id=iommufd0"], TestHosts.Grace);
        check.Error.ShouldBeNull();
        using Vm vm = Vm.Realize(check, TestHosts.Grace, fd);
        vm.Boot();
        string options = $"vfio-pci,host=0009:01:00.0,id=vu0,iommufd=iommufd0{BusAndAddr(plug.GetRawText())}";
        var e = Should.Throw<QemuConfigException>(() => vm.HotPlug(options));
        e.QemuMessage.ShouldBe($"vfio {Gpu0}: " + qemu.Replace(" device 00.00.0 ", $" device {enumeratedBus}.00.0 ", StringComparison.Ordinal));
        vm.Device("vu0").ShouldBeNull();
        // The region stays (QEMU keeps the SMMU's device entry): a second try names the same one.
        Should.Throw<QemuConfigException>(() => vm.HotPlug(options)).QemuMessage.ShouldBe(e.QemuMessage);
    }

    private static string BusAndAddr(string json)
    {
        using JsonDocument d = JsonDocument.Parse(json);
        string s = "";
        if (d.RootElement.TryGetProperty("bus", out JsonElement bus)) s += ",bus=" + bus.GetString();
        if (d.RootElement.TryGetProperty("addr", out JsonElement addr)) s += ",addr=" + addr.GetString();
        return s;
    }

    internal sealed record MapNotifierVector(string Name, string[] Prefix, List<string> Args, JsonElement? Hotplug, int ExitCode, string Stderr, string? QmpError)
    {
        /// <summary>QEMU's error from the VFIO memory listener on: what vfio-pci and vfio-user-pci print alike.</summary>
        public string ListenerError
        {
            get
            {
                string last = Stderr.Split('\n')[^1];
                return last[last.IndexOf("memory listener initialization failed: ", StringComparison.Ordinal)..];
            }
        }

        public static MapNotifierVector Load(string name)
        {
            MapNotifierVector v = JsonSerializer.Deserialize<MapNotifierVector>(
                File.ReadAllText(TestVectors.PathOf("qemu-verdicts", "map-notifier", name + ".json")),
                new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;
            return v.Hotplug is { ValueKind: JsonValueKind.Null } ? v with { Hotplug = null } : v;
        }
    }
}

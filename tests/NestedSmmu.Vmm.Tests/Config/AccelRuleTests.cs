using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Tests.Common;
using NestedSmmu.Vmm.Config;

namespace NestedSmmu.Vmm.Tests.Config;

/// <summary>
/// Rules behind KVM (QEMU 11.1.3 here stops at "SMMUv3 accel=on requires KVM ...", stored as
/// qemu-verdicts/smmu-accel-*.json), host rules QEMU finds at attach time, and the checks that
/// go past QEMU. Messages are QEMU's (hw/arm/smmuv3-accel.c, hw/arm/virt.c) or ours naming the
/// device and both SMMUs.
/// </summary>
public sealed class AccelRuleTests
{
    // KVM and firmware with ACPI: what a real accel=on line has (virt.c: DT boot refuses accel=on).
    private const string Kvm = "-machine virt,accel=kvm -bios fw.fd -object iommufd,id=iommufd0 ";

    private static MachineCheck Check(string line, HostView? host = null) =>
        MachineValidator.Check(QemuCommandLine.SplitShellWords(line), host ?? TestHosts.Grace);

    private static string ErrorOf(string line, HostView? host = null) =>
        Check(line, host).Error.ShouldNotBeNull().QemuMessage;

    [Fact]
    public void Seed_002_is_accepted_on_grace_with_auto_resolved_from_the_host()
    {
        MachineCheck c = MachineValidator.Check(
            QemuCommandLine.SplitShellWords(File.ReadAllText(TestVectors.PathOf("qemu-verdicts", "seed-002.cmdline"))), TestHosts.Grace);
        c.Error.ShouldBeNull();
        VsmmuCheck v = c.Vsmmus.ShouldHaveSingleItem();
        v.Name.ShouldBe("smmuv3.1");
        v.RootBus.ShouldBe("pcie.1");
        ResolvedSmmuProperties r = v.Resolved.ShouldNotBeNull();
        (r.Ats, r.Ril, r.SsidSize, r.OasBits, r.PhysicalSmmu).ShouldBe((true, true, 20, 48, "smmu0"));
        r.Sources["oas"].ShouldBe(PropertySource.Host);
        DeviceCheck dev0 = c.Devices.Single(d => d.Name == "dev0");
        (dev0.StreamId, dev0.Vsmmu, dev0.PhysicalSmmu, dev0.AtsExposed).ShouldBe(((ushort)0x0200, "smmuv3.1", "smmu0", true));
        c.Spec.Unmodelled.Select(u => u.Name).ShouldBe(["nographic", "bios", "drive", "netdev"]);
    }

    [Fact]
    public void Two_expander_buses_two_accel_vsmmus_on_two_physical_smmus_four_vfio_devices()
    {
        MachineCheck c = Check(Kvm +
            "-device pxb-pcie,id=pcie.1,bus_nr=0x10,bus=pcie.0 -device arm-smmuv3,primary-bus=pcie.1,id=vsmmu0,accel=on " +
            "-device pxb-pcie,id=pcie.2,bus_nr=0x20,bus=pcie.0 -device arm-smmuv3,primary-bus=pcie.2,id=vsmmu1,accel=on,ril=off,ssidsize=8 " +
            "-device pcie-root-port,id=rp0,bus=pcie.1,chassis=1 -device pcie-root-port,id=rp1,bus=pcie.1,chassis=2 " +
            "-device pcie-root-port,id=rp2,bus=pcie.2,chassis=3 -device pcie-root-port,id=rp3,bus=pcie.2,chassis=4 " +
            "-device vfio-pci,host=0009:01:00.0,bus=rp0,id=gpu0,iommufd=iommufd0 -device vfio-pci,host=0009:06:00.0,bus=rp1,id=gpu3,iommufd=iommufd0 " +
            "-device vfio-pci,host=0005:01:00.0,bus=rp2,id=nic0,iommufd=iommufd0 -device vfio-pci,host=0005:01:00.1,bus=rp3,id=nic1,iommufd=iommufd0,ats=off");
        c.Error.ShouldBeNull();
        c.Vsmmus.Select(v => (v.Name, v.Resolved!.PhysicalSmmu, v.BusRange.ToString()))
            .ShouldBe([("vsmmu0", "smmu0", "[0x10-0x12]"), ("vsmmu1", "smmu3", "[0x20-0x22]")]);
        ResolvedSmmuProperties r1 = c.Vsmmus[1].Resolved!;
        (r1.Ats, r1.Ril, r1.SsidSize, r1.OasBits, r1.Cmdqv).ShouldBe((true, false, 8, 48, true));
        r1.Sources["ril"].ShouldBe(PropertySource.Given);
        c.Devices.Where(d => d.HostAddress is not null).Select(d => (d.Name, d.StreamId, d.Vsmmu, d.PhysicalSmmu, d.AtsExposed))
            .ShouldBe([("gpu0", (ushort)0x1100, "vsmmu0", "smmu0", true), ("gpu3", (ushort)0x1200, "vsmmu0", "smmu0", true),
                ("nic0", (ushort)0x2100, "vsmmu1", "smmu3", true), ("nic1", (ushort)0x2200, "vsmmu1", "smmu3", false)]);
    }

    [Fact]
    public void Accel_with_stage_2_is_refused()
    {
        // Stored QEMU output for this device stops at KVM: qemu-verdicts/smmu-accel-stage-2.json.
        QemuVerdictTests.Load("smmu-accel-stage-2").Stderr.ShouldEndWith("SMMUv3 accel=on requires KVM with kernel-irqchip=on support");
        ErrorOf(Kvm + "-device arm-smmuv3,primary-bus=pcie.0,accel=on,stage=2").ShouldBe("Only stage1 is supported for SMMUv3 with accel=on");
    }

    [Fact]
    public void Accel_under_a_device_tree_boot_is_refused()
    {
        ErrorOf("-machine virt,accel=kvm -device arm-smmuv3,primary-bus=pcie.0,accel=on").ShouldBe("SMMUv3 with accel=on not supported for DT");
        ErrorOf("-machine virt,accel=kvm,acpi=off -bios fw.fd -device arm-smmuv3,primary-bus=pcie.0,accel=on").ShouldBe("SMMUv3 with accel=on not supported for DT");
    }

    [Fact]
    public void Emulated_endpoints_under_an_accel_vsmmu_are_refused()
    {
        QemuVerdictTests.Load("smmu-accel-emulated-endpoint").Accepted.ShouldBeFalse();
        MachineCheck c = Check(Kvm + "-device arm-smmuv3,primary-bus=pcie.0,accel=on -device e1000");
        c.Error!.Message.ShouldBe("-device e1000: Emulated endpoint devices are not allowed when using arm-smmuv3,accel=on");
        ErrorOf(Kvm + "-device arm-smmuv3,primary-bus=pcie.0,accel=on -device vfio-pci,host=0009:01:00.0")
            .ShouldBe("vfio-pci endpoint devices without an iommufd backend not allowed when using arm-smmuv3,accel=on");
    }

    [Fact]
    public void Auto_and_cmdqv_on_need_a_cold_plugged_vfio_device()
    {
        QemuVerdictTests.Load("smmu-accel-no-vfio").Accepted.ShouldBeFalse();
        ErrorOf(Kvm + "-device arm-smmuv3,primary-bus=pcie.0,accel=on")
            .ShouldBe("arm-smmuv3 accel=on with 'auto' properties requires at least one cold-plugged VFIO device");
        ErrorOf(Kvm + "-device arm-smmuv3,primary-bus=pcie.0,accel=on,ats=off,ril=off,ssidsize=0,oas=44,cmdqv=on")
            .ShouldBe("arm-smmuv3 cmdqv=on requires at least one cold-plugged VFIO device");
        Check(Kvm + "-device arm-smmuv3,primary-bus=pcie.0,accel=on,ats=off,ril=off,ssidsize=0,oas=44").Error.ShouldBeNull();
    }

    [Theory]
    // small smmu0: linear stream table (ST_LEVEL 0); QEMU's vSMMU reports two-level (1).
    [InlineData("0000:01:00.0", "", "Host SMMUv3 Stream Table format mismatch (host STLEVEL=0, QEMU STLEVEL=1)")]
    // small smmu1: 44-bit OAS, no RIL.
    [InlineData("0001:01:00.0", ",oas=48", "Host SMMUv3 supports only 44-bit IPA, but the vSMMU OAS implies 48-bit IPA")]
    [InlineData("0001:01:00.0", ",ril=on", "Host SMMUv3 doesn't support Range Invalidation")]
    public void Host_compatibility_is_checked_with_qemus_messages(string host, string props, string message)
    {
        ErrorOf(Kvm + $"-device arm-smmuv3,primary-bus=pcie.0,accel=on{props} -device vfio-pci,host={host},iommufd=iommufd0", TestHosts.Small)
            .ShouldBe(message);
    }

    [Fact]
    public void Compatibility_checks_follow_qemus_order_over_the_hw_info_words()
    {
        HostSmmuInfo grace = TestHosts.Grace.FindSmmu("smmu0")!;
        var vsmmu = SmmuResolution.ResolveAccelerated(new ArmSmmuV3Device { Text = "", Driver = "arm-smmuv3", Accel = true }, grace);
        SmmuResolution.CheckHostCompatibility(vsmmu, grace).ShouldBeNull();
        SmmuResolution.CheckHostCompatibility(vsmmu, grace with { HwInfo = grace.HwInfo with { Idr0 = grace.HwInfo.Idr0 | (3u << 21) } })
            .ShouldBe("Host SMMUv3 doesn't support Little-endian translation table");
        SmmuResolution.CheckHostCompatibility(vsmmu, grace with { HwInfo = grace.HwInfo with { Idr0 = grace.HwInfo.Idr0 & ~(3u << 2) | (1u << 2) } })
            .ShouldBe("Host SMMUv3 doesn't support AArch64 translation table format");
        SmmuResolution.CheckHostCompatibility(vsmmu, grace with { HwInfo = grace.HwInfo with { Idr1 = grace.HwInfo.Idr1 & ~0x3Fu | 8 } })
            .ShouldBe("Host SMMUv3 SIDSIZE not compatible (host=8, QEMU=16)");
        SmmuResolution.CheckHostCompatibility(vsmmu with { SsidSize = 20 }, grace with { HwInfo = grace.HwInfo with { Idr1 = grace.HwInfo.Idr1 & ~(0x1Fu << 6) | (10u << 6) } })
            .ShouldBe("Host SMMUv3 SSIDSIZE not compatible (host=10, QEMU=20)");
        SmmuResolution.CheckHostCompatibility(vsmmu, grace with { HwInfo = grace.HwInfo with { Idr0 = grace.HwInfo.Idr0 & ~(1u << 10) } })
            .ShouldBe("Host SMMUv3 doesn't support Address Translation Services");
        SmmuResolution.CheckHostCompatibility(vsmmu, grace with { HwInfo = grace.HwInfo with { Idr5 = grace.HwInfo.Idr5 & ~(1u << 4) } })
            .ShouldBe("Host SMMUv3 doesn't support 4K translation granule");
        SmmuResolution.CheckHostCompatibility(vsmmu, grace with { HwInfo = grace.HwInfo with { Idr5 = grace.HwInfo.Idr5 & ~(1u << 5) } })
            .ShouldBe("Host SMMUv3 doesn't support 16K translation granule");
        SmmuResolution.CheckHostCompatibility(vsmmu, grace with { HwInfo = grace.HwInfo with { Idr5 = grace.HwInfo.Idr5 & ~(1u << 6) } })
            .ShouldBe("Host SMMUv3 doesn't support 64K translation granule");
        SmmuResolution.CheckHostCompatibility(vsmmu, grace with { HwInfoType = NestedSmmu.Iommufd.Uapi.HwInfoType.IntelVtd })
            .ShouldBe("Wrong data type (1) for Host SMMUv3 device info");
    }

    [Fact]
    public void Beyond_qemu_a_device_behind_another_physical_smmu_names_both()
    {
        ErrorOf(Kvm + "-device pxb-pcie,id=pcie.1,bus_nr=1 -device arm-smmuv3,primary-bus=pcie.1,id=v0,accel=on " +
                "-device pcie-root-port,id=rp0,bus=pcie.1,chassis=1 -device pcie-root-port,id=rp1,bus=pcie.1,chassis=2 " +
                "-device vfio-pci,host=0009:01:00.0,bus=rp0,id=gpu0,iommufd=iommufd0 -device vfio-pci,host=0008:01:00.0,bus=rp1,id=gpu1,iommufd=iommufd0")
            .ShouldBe("gpu1 (host 0008:01:00.0) is behind physical SMMU smmu1, but vSMMU v0 is bound to physical SMMU smmu0 " +
                "(by gpu0, host 0009:01:00.0): one vSMMU nests devices of one physical SMMU only");
    }

    [Fact]
    public void A_host_function_that_does_not_exist_gets_qemus_vfio_message()
    {
        ErrorOf(Kvm + "-device vfio-pci,host=0009:07:00.0,iommufd=iommufd0")
            .ShouldBe("vfio /sys/bus/pci/devices/0009:07:00.0: no such host device: No such file or directory");
    }

    [Fact]
    public void Beyond_qemu_a_host_function_without_an_iommu_is_named()
    {
        HostView host = TestHosts.Grace with
        {
            Devices = [.. TestHosts.Grace.Devices, new HostDeviceInfo("0003:01:00.0", null, "g9", false, 0, null)],
        };
        ErrorOf(Kvm + "-device arm-smmuv3,primary-bus=pcie.0,accel=on,id=v0 -device vfio-pci,host=0003:01:00.0,id=nvme9,iommufd=iommufd0", host)
            .ShouldBe("nvme9 (host 0003:01:00.0) has no IOMMU on emulated host 'grace', so vSMMU v0 (accel=on) cannot nest it");
    }

    [Fact]
    public void Beyond_qemu_one_iommu_group_split_across_vsmmus_is_refused()
    {
        // nic0 and nic1 (two functions of one card on smmu3) in one group, as without ACS.
        var emulated = EmulatedHost.FromEmbedded("grace");
        using IIommufd fd = emulated.Open();
        HostView host = HostView.Probe(fd, "emulated host 'grace'", emulated.Profile.Devices.Select(d =>
            new HostDeviceLocation(d.Address.ToString(), d.Smmu, d.Smmu == "smmu3" ? "group-nic" : d.Address.ToString())));
        ErrorOf(Kvm + "-device pxb-pcie,id=pcie.1,bus_nr=1 -device arm-smmuv3,primary-bus=pcie.1,id=v0,accel=on " +
                "-device pxb-pcie,id=pcie.2,bus_nr=8,bus=pcie.0 -device arm-smmuv3,primary-bus=pcie.2,id=v1,accel=on " +
                "-device pcie-root-port,id=rp0,bus=pcie.1,chassis=1 -device pcie-root-port,id=rp1,bus=pcie.2,chassis=2 " +
                "-device vfio-pci,host=0005:01:00.0,bus=rp0,id=nic0,iommufd=iommufd0 -device vfio-pci,host=0005:01:00.1,bus=rp1,id=nic1,iommufd=iommufd0", host)
            .ShouldBe("nic1 (host 0005:01:00.1, physical SMMU smmu3) shares IOMMU group group-nic with nic0 behind vSMMU v0, " +
                "but sits behind vSMMU v1: a group's devices must share one vSMMU");
    }

    [Fact]
    public void Beyond_qemu_cmdqv_on_without_a_host_cmdqv_names_the_smmus()
    {
        ErrorOf(Kvm + "-device arm-smmuv3,primary-bus=pcie.0,accel=on,id=v0,cmdqv=on " +
                "-device vfio-pci,host=0001:01:00.0,id=gpu1,iommufd=iommufd0", TestHosts.Small)
            .ShouldBe("CMDQV requested but not supported: vSMMU v0 (cmdqv=on) is bound by gpu1 (host 0001:01:00.0) " +
                "to physical SMMU smmu1, which has no Tegra241 CMDQV");
    }

    [Fact]
    public void Accel_off_auto_means_the_model_defaults()
    {
        MachineCheck c = Check("-device arm-smmuv3,primary-bus=pcie.0,id=s0");
        ResolvedSmmuProperties r = c.Vsmmus.Single().Resolved!;
        (r.Accel, r.Ats, r.Ril, r.SsidSize, r.OasBits, r.Cmdqv).ShouldBe((false, false, true, 0, 44, false));
    }

    [Fact]
    public void The_legacy_machine_wide_smmu_is_listed_with_the_devices_it_translates()
    {
        MachineCheck c = Check("-machine virt,iommu=smmuv3 -device pxb-pcie,id=pcie.1,bus=pcie.0,bus_nr=0x10 " +
            "-device pcie-root-port,id=rp,bus=pcie.1,chassis=1 -device e1000,bus=rp,id=nic");
        c.Error.ShouldBeNull();
        VsmmuCheck legacy = c.Vsmmus.ShouldHaveSingleItem();
        (legacy.Name, legacy.Device, legacy.Accel, legacy.Resolved!.OasBits).ShouldBe(("iommu=smmuv3", (ArmSmmuV3Device?)null, false, 44));
        DeviceCheck nic = c.Devices.Single(d => d.Name == "nic");
        (nic.Vsmmu, nic.StreamId).ShouldBe(("iommu=smmuv3", (ushort)0x1100));
    }

    [Fact]
    public void Resolved_properties_become_the_vsmmus_id_registers()
    {
        MachineCheck c = MachineValidator.Check(
            QemuCommandLine.SplitShellWords(File.ReadAllText(TestVectors.PathOf("qemu-verdicts", "seed-002.cmdline"))), TestHosts.Grace);
        var props = c.Vsmmus.Single().Resolved!.ToVSmmuProperties(c.Vsmmus.Single().Device!.Identifier);
        NestedSmmu.Hardware.Smmu.SmmuFeatures f = props.ToFeatures();
        (f.Ats, f.Ril, f.SsidBits, f.OasBits, props.Cmdqv).ShouldBe((true, true, 20, 48, true));
    }
}

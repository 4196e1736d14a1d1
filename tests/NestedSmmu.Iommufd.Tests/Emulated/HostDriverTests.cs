using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// The host's arm-smmu-v3 driver: how it brings the SMMUs up (through MMIO and the command
/// queue), the stream tables it builds and what hw_info reports (the CMDQV driver: CmdqvKernelTests).
/// </summary>
public sealed class HostDriverTests
{
    [Fact]
    public void Boot_enables_every_SMMU_through_its_registers_and_command_queue()
    {
        using var bed = new TestBed();

        foreach (string name in bed.Diag.SmmuNames)
        {
            SmmuDiagnostics s = bed.Diag.Smmu(name);
            s.Hardware.CommandsExecuted.ShouldBeGreaterThanOrEqualTo(4, "CFGI_ALL, TLBI_NSNH_ALL and their CMD_SYNCs");
            s.Hardware.Syncs.ShouldBeGreaterThanOrEqualTo(2);
            s.CommandsSubmitted.ShouldBe(s.Hardware.CommandsExecuted);
            s.VmidsInUse.ShouldBeEmpty();
        }
        bed.Diag.Smmu("smmu0").TwoLevelStreamTable.ShouldBeFalse();
        bed.Diag.Smmu("smmu1").TwoLevelStreamTable.ShouldBeTrue();
        bed.Diag.Smmu("smmu0").HasCmdqv.ShouldBeTrue();
        bed.Diag.KernelLog.ShouldContain(l => l.Contains("arm-smmu-v3 smmu1: enabled: 2-level stream table", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("gpu0")]
    [InlineData("nic0")]
    [InlineData("gpu1")]
    [InlineData("nic1")]
    public void Every_device_starts_with_an_abort_STE_and_its_DMA_is_blocked(string device)
    {
        using var bed = new TestBed();

        StreamTableEntry ste = bed.Diag.ReadSte(device);
        (ste.W0, ste.W1, ste.W2, ste.W3).ShouldBe((1UL, 0UL, 0UL, 0UL), "arm_smmu_make_abort_ste: the abort STE is word 0 = 0x1");
        var (result, _) = bed.DmaRead(device, 0x1000);
        result.Translation.Status.ShouldBe(TranslationStatus.Abort);
        bed.Diag.Smmu(bed.Diag.SmmuOf(device)).EventsSeen.ShouldBe(0, "an abort STE terminates without an event");
    }

    [Fact]
    public void The_default_host_is_the_Grace_profile_and_boots()
    {
        EmulatedHost host = EmulatedHost.CreateDefault();
        host.Profile.Name.ShouldBe("grace");
        host.Diagnostics.SmmuNames.Count.ShouldBe(5);
        using EmulatedIommufd fd = host.Open();
        fd.Description.ShouldContain("grace");
        DeviceId gpu = fd.BindDevice("gpu0");

        ArmSmmuV3HwInfo info = fd.GetArmSmmuV3HwInfo(gpu);
        info.Features.ShouldBe(host.Profile.Smmus[0].Features, "hw_info's IDRs decode back to the profile's features");
        (info.SidSize, info.SsidSize, info.OasBits, info.Ril, info.StLevel).ShouldBe((32u, 20u, 48, true, 1u));
        info.Iidr.ShouldBe(0x0487043Bu);

        Tegra241CmdqvHwInfo cmdqv = fd.GetTegra241CmdqvHwInfo(gpu);
        cmdqv.ShouldBe(new Tegra241CmdqvHwInfo(0, Version: 1, Log2Vcmdqs: 3, Log2Vsids: 4));
        host.Diagnostics.ReadSte("0009:01:00.0").Config.ShouldBe(SteConfig.Abort);
    }

    [Fact]
    public void hw_info_reports_capabilities_and_the_PASID_width()
    {
        using var bed = new TestBed();
        HwInfo gpu = bed.Fd.GetHwInfo(bed.Fd.BindDevice("gpu0"));
        (gpu.Capabilities, gpu.MaxPasidLog2).ShouldBe((HwCapabilities.None, (byte)0));
        HwInfo nic = bed.Fd.GetHwInfo(bed.Fd.BindDevice("nic1"));
        nic.Capabilities.ShouldBe(HwCapabilities.PciAtsNotSupported, "nic1 has no ATS capability");
        nic.MaxPasidLog2.ShouldBe((byte)16);
    }

    [Fact]
    public void Devices_bind_by_name_or_address_once_across_contexts()
    {
        using var bed = new TestBed();
        using EmulatedIommufd second = bed.Host.Open();

        DeviceId a = bed.Fd.BindDevice("01:00.0");
        // vfio_df_open: the cdev path opens a device once, EINVAL otherwise
        TestBed.ShouldFail(() => second.BindDevice("gpu0"), Errno.EINVAL);
        TestBed.ShouldFail(() => bed.Fd.BindDevice("gpu9"), Errno.ENOENT);
        TestBed.ShouldFail(() => bed.Fd.BindDevice("0003:01:00.0"), Errno.ENOENT);
        second.BindDevice("gpu1").Value.ShouldBe(1u, "each context has its own ID space");
        bed.Fd.UnbindDevice(a);
        second.BindDevice("gpu0").Value.ShouldBe(2u);
        TestBed.ShouldFail(() => bed.Fd.UnbindDevice(a), Errno.ENOENT);
        TestBed.ShouldFail(() => bed.Fd.AttachDevice(new DeviceId(7), new IoasId(1)), Errno.ENOENT);
    }

    [Fact]
    public void The_small_profile_devices_sit_behind_their_SMMUs()
    {
        using var bed = new TestBed();
        bed.Diag.SmmuOf("gpu0").ShouldBe("smmu0");
        bed.Diag.SmmuOf("0001:02:00.0").ShouldBe("smmu1");
        bed.Diag.ReadSte("smmu1", 0x100).ShouldNotBeNull();
        bed.Diag.ReadSte("smmu1", 0x300).ShouldBeNull("no level-2 table covers a StreamID without a device");
        Should.Throw<ArgumentException>(() => bed.Diag.Smmu("smmu9"));
    }

    [Fact]
    public void A_device_is_found_by_name_and_by_its_PCI_address_in_any_accepted_spelling()
    {
        // The canonical spelling (how a VMM got it from the host view) is a dictionary lookup; the
        // others go through the parser, as before that shortcut.
        using var bed = new TestBed();
        foreach (PciDeviceProfile d in bed.Host.Profile.Devices)
        {
            HostPciDevice byName = bed.Host.FindDevice(d.Name).ShouldNotBeNull();
            string canonical = d.Address.ToString();
            bed.Host.FindDevice(canonical).ShouldBeSameAs(byName, canonical);
            bed.Host.FindDevice(canonical.ToUpperInvariant()).ShouldBeSameAs(byName, "upper-case hex");
            if (d.Address.Segment == 0) bed.Host.FindDevice(canonical[5..]).ShouldBeSameAs(byName, "bb:dd.f in segment 0");
        }
        bed.Host.FindDevice("0000:7f:1f.7").ShouldBeNull();
        bed.Host.FindDevice("no-such-device").ShouldBeNull();
    }
}

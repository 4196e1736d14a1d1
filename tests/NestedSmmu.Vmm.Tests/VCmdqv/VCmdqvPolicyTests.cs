using NestedSmmu.Iommufd;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Vmm.VCmdqv;

namespace NestedSmmu.Vmm.Tests.VCmdqv;

/// <summary>The pure parts: IDR1.CMDQS from the RAM backend, backing checks, the host probe, the unplug policy.</summary>
public sealed class VCmdqvPolicyTests
{
    // QEMU's tegra241_cmdqv_init_regs: CMDQS = MIN(log2(page size) - 4, CMDQS); qemu.md §4: 4K gives 8, 1G gives 19.
    [Theory]
    [InlineData(0x1000UL, 8)]
    [InlineData(0x1_0000UL, 12)]
    [InlineData(0x20_0000UL, 17)]
    [InlineData(0x4000_0000UL, 19)]
    public void IDR1_CMDQS_follows_the_smallest_RAM_backend_page(ulong pageSize, int cmdqs)
    {
        CmdqvQueueSizing.ClampCmdqs(19, pageSize).ShouldBe(cmdqs);
    }

    [Fact]
    public void The_smallest_backend_page_of_all_RAM_blocks_wins()
    {
        GuestRamBlock[] ram = [new("ram0", 0x4000_0000, 0x4000_0000, 0x4000_0000), new("ram1", 0x8000_0000, 0x1000_0000, 0x20_0000)];
        CmdqvQueueSizing.ClampCmdqs(19, ram).ShouldBe(17);
        CmdqvQueueSizing.ClampCmdqs(5, ram).ShouldBe(5, "never above what the vSMMU shows anyway");
        Should.Throw<ArgumentOutOfRangeException>(() => CmdqvQueueSizing.ClampCmdqs(19, 0x3000));
        Should.Throw<ArgumentException>(() => CmdqvQueueSizing.ClampCmdqs(19, Array.Empty<GuestRamBlock>()));
    }

    [Fact]
    public void A_queue_within_one_backend_page_can_be_backed_and_others_get_a_clear_message()
    {
        GuestRamBlock[] ram = [new("ram0", 0x4000_0000, 0x100_0000, 0x20_0000)];
        CmdqvQueueSizing.CheckBacking(ram, 0x4000_0000, 0x20_0000).ShouldBeNull();
        CmdqvQueueSizing.CheckBacking(ram, 0x4020_0000, 0x1000).ShouldBeNull();
        string? tooBig = CmdqvQueueSizing.CheckBacking(ram, 0x4000_0000, 0x40_0000);
        tooBig.ShouldNotBeNull();
        tooBig.ShouldContain("2 MiB host page of guest RAM 'ram0'");
        tooBig.ShouldContain("IDR1.CMDQS 17");
        CmdqvQueueSizing.CheckBacking(ram, 0x3000_0000, 0x1000).ShouldNotBeNull().ShouldContain("not inside guest RAM");
        CmdqvQueueSizing.CheckBacking(ram, 0x40FF_F000, 0x2000).ShouldNotBeNull().ShouldContain("not inside guest RAM");
    }

    // QEMU's tegra241_cmdqv_probe messages (qemu.md §4).
    [Theory]
    [InlineData(1, 1, 4, null)]
    [InlineData(2, 1, 4, "Host CMDQV: unsupported version 2 (expected 1)")]
    [InlineData(1, 0, 4, "Host CMDQV: insufficient vCMDQs log2=0 (need >= 1)")]
    [InlineData(1, 3, 3, "Host CMDQV: insufficient SIDs log2=3 (need >= 4)")]
    public void The_host_CMDQV_must_cover_what_the_guest_is_shown(int version, int log2Vcmdqs, int log2Vsids, string? error)
    {
        var info = new Tegra241CmdqvHwInfo(0, (byte)version, (byte)log2Vcmdqs, (byte)log2Vsids);
        Tegra241CmdqvProbe.Validate(HwInfoType.Tegra241Cmdqv, info).ShouldBe(error);
        Tegra241CmdqvProbe.Validate(HwInfoType.ArmSmmuV3, info).ShouldBe("Host CMDQV: unexpected data type 2 (expected 3)");
    }

    [Fact]
    public void Probing_the_emulated_hosts()
    {
        var grace = new EmulatedHost(HostProfile.LoadEmbedded("grace"));
        using (EmulatedIommufd fd = grace.Open())
        {
            CmdqvProbeResult r = Tegra241CmdqvProbe.Probe(fd, fd.BindDevice("gpu0"));
            r.Supported.ShouldBeTrue(r.Error);
            r.Info.ShouldBe(new Tegra241CmdqvHwInfo(0, 1, 3, 4), "8 logical VCMDQs and 16 SIDs per VINTF");
        }
        var small = new EmulatedHost(HostProfile.LoadEmbedded("small"));
        using (EmulatedIommufd fd = small.Open())
        {
            CmdqvProbeResult r = Tegra241CmdqvProbe.Probe(fd, fd.BindDevice("gpu1"));
            r.Supported.ShouldBeFalse("smmu1 of the small host has no CMDQV");
            r.Info.ShouldBeNull();
            r.Error.ShouldNotBeNull().ShouldContain("EOPNOTSUPP");
        }
    }

    [Fact]
    public void Unplug_policy()
    {
        var creator = new CmdqvUnplugRequest("hostdev0", "smmuv3.0", CreatedViommu: true, CmdqvActive: true, DevicesOnViommu: 2, EnabledQueues: []);
        CmdqvUnplugPolicy.Check(creator).ShouldBe(
            "CMDQV is active: removing the device that established the viommu association would break the guest CMDQV");
        CmdqvUnplugPolicy.Check(creator with { CmdqvActive = false }).ShouldBeNull("a plain accel vSMMU has no such rule");

        var last = new CmdqvUnplugRequest("hostdev1", "smmuv3.1", CreatedViommu: false, CmdqvActive: true, DevicesOnViommu: 1, EnabledQueues: [1]);
        CmdqvUnplugPolicy.Check(last).ShouldBe(
            "Cannot unplug 'hostdev1': it is the last device of vIOMMU 'smmuv3.1', whose VINTF has enabled queues (VCMDQ1); " +
            "the vIOMMU would be freed under them. The guest must disable those queues first");
        CmdqvUnplugPolicy.Check(last with { EnabledQueues = [] }).ShouldBeNull();
        CmdqvUnplugPolicy.Check(last with { DevicesOnViommu = 3 }).ShouldBeNull();
    }
}

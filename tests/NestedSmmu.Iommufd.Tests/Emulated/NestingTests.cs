using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// arm-smmu-v3 nesting (arm-smmu-v3-iommufd.c): vSTE validation, the physical STE built on attach, ATS,
/// and invalidation commands rewritten for the physical SMMU and issued in batches.
/// </summary>
public sealed class NestingTests
{
    private const ulong Vsid = 0x42;
    private const ushort Asid = 3;
    private const ulong Va = 0x10_0000;
    private const ulong DataIpa = TestBed.GuestRamBase + 0x8000;

    public static TheoryData<string, ulong, ulong> InvalidVstes => new()
    {
        // name, word 0, word 1 (all with V = 1)
        { "SHCFG set (outside the word-1 mask)", 0x0B, 1UL << 44 },
        { "S2FWB set", 0x0B, 1UL << 25 },
        { "Config = S2 only", 0x0D, 0 },
        { "Config = nested", 0x0F, 0 },
        { "Config reserved 0b001", 0x03, 0 },
        { "EATS = split-stage (2)", 0x0B, 2UL << 28 },
        { "word-0 bit 52 (outside S1ContextPtr)", 0x0B | (1UL << 52), 0 },
    };

    [Theory]
    [MemberData(nameof(InvalidVstes))]
    public void Invalid_vSTEs_are_EIO(string what, ulong word0, ulong word1)
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (dev, _, viommu) = bed.NestedSetup(vm, "gpu0");
        var e = Should.Throw<IommufdException>(() => bed.Fd.AllocNestedHwpt(dev, viommu, new ArmSmmuV3Vste(word0, word1)), what);
        e.Errno.ShouldBe(Errno.EIO);
    }

    [Fact]
    public void A_vSTE_with_V_clear_is_an_abort_STE_whatever_else_it_holds()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (dev, _, viommu) = bed.NestedSetup(vm, "gpu0");
        HwptId nested = bed.Fd.AllocNestedHwpt(dev, viommu, new ArmSmmuV3Vste(0xFFFF_FFFF_FFFF_FFFE, ulong.MaxValue));
        bed.Fd.AttachDevice(dev, nested);
        bed.Diag.ReadSte("gpu0").ShouldBe(new StreamTableEntry(1, 0, 0, 0));
    }

    [Fact]
    public void The_physical_STE_is_the_parent_S2_STE_with_the_guest_stage_1_merged_in()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (dev, parent, viommu) = bed.NestedSetup(vm, "gpu0");
        bed.Fd.AllocVdevice(viommu, dev, Vsid);
        // The plain S2 STE of the parent, for reference: attach another device directly.
        DeviceId nic = bed.Fd.BindDevice("nic0");
        bed.Fd.AttachDevice(nic, parent);
        StreamTableEntry s2 = bed.Diag.ReadSte("nic0");

        ulong cdTable = TestBed.GuestRamBase + 0x4_0000;
        var vste = TestBed.TranslateVste(cdTable);
        vste = vste with { Word0 = vste.Word0 | (4UL << 59) | (1UL << 4), Word1 = vste.Word1 | 1 | (1UL << 27) };
        bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, vste));
        StreamTableEntry ste = bed.Diag.ReadSte("gpu0");

        (ste.V, ste.Config, ste.S1ContextPtr, ste.S1CDMax, ste.S1Fmt).ShouldBe((true, SteConfig.Nested, cdTable, 4u, 1u));
        (ste.S1DSS, ste.S1CIR, ste.S1COR, ste.S1CSH, ste.S1STALLD, ste.MEV).ShouldBe((1u, 1u, 1u, 3u, true, true));
        (ste.W2 & ~Bits.Mask(15, 0)).ShouldBe(s2.W2 & ~Bits.Mask(15, 0), "VTCR and the stage-2 controls come from the parent");
        ste.W3.ShouldBe(s2.W3, "S2TTB of the shared stage-2 table");
        ste.S2VMID.ShouldBe((ushort)1, "the vIOMMU's own VMID");
        s2.S2VMID.ShouldBe((ushort)2, "direct attachments of the parent use the parent's VMID on this SMMU");
        ste.EATS.ShouldBe(0u, "the vSTE did not ask for ATS");
        bed.Diag.AtsEnabled("gpu0").ShouldBeFalse();
    }

    [Fact]
    public void A_bypass_vSTE_is_the_parent_S2_STE_with_the_vIOMMU_VMID()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (dev, _, viommu) = bed.NestedSetup(vm, "gpu0");
        bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.BypassVste));
        StreamTableEntry ste = bed.Diag.ReadSte("gpu0");
        (ste.Config, ste.S2VMID, ste.MEV).ShouldBe((SteConfig.Stage2, (ushort)1, false));
        vm.WriteGuest(DataIpa, 77);
        bed.DmaRead("gpu0", DataIpa).Value.ShouldBe(77UL, "bypassing stage 1, the IOVA is the guest PA");
    }

    [Fact]
    public void EATS_1_enables_ATS_and_a_guest_ATC_INV_reaches_the_device_with_its_physical_SID()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (dev, _, viommu) = bed.NestedSetup(vm, "gpu0");
        bed.Fd.AllocVdevice(viommu, dev, Vsid);
        GuestAddressSpace s1 = vm.CreateAddressSpace(Asid);
        s1.Map(Va, DataIpa);
        bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(vm.WriteCdTable(s1.Cd), ats: true)));

        bed.Diag.ReadSte("gpu0").EATS.ShouldBe(1u);
        bed.Diag.AtsEnabled("gpu0").ShouldBeTrue();
        bed.DmaRead("gpu0", Va).Result.FromAtc.ShouldBeFalse();
        bed.DmaRead("gpu0", Va).Result.FromAtc.ShouldBeTrue("the ATC holds the translation");

        long atcInvs = bed.Diag.Counters("smmu0").AtcInvalidations;
        bed.Invalidate(viommu, Command.AtcInv((uint)Vsid, null, 0, 52)).Succeeded.ShouldBeTrue();

        (bed.Diag.Counters("smmu0").AtcInvalidations - atcInvs).ShouldBe(1);
        bed.DmaRead("gpu0", Va).Result.FromAtc.ShouldBeFalse();
    }

    [Fact]
    public void Nested_HWPTs_stay_on_their_SMMU()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (dev, _, viommu) = bed.NestedSetup(vm, "gpu0");
        DeviceId gpu1 = bed.Fd.BindDevice("gpu1");
        TestBed.ShouldFail(() => bed.Fd.AllocNestedHwpt(gpu1, viommu, TestBed.AbortVste), Errno.EINVAL);
        HwptId nested = bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.AbortVste);
        TestBed.ShouldFail(() => bed.Fd.AttachDevice(gpu1, nested), Errno.EINVAL);
        TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, viommu, HwptAllocFlags.Pasid, HwptDataType.ArmSmmuV3, TestBed.AbortVste.ToBytes()), Errno.EOPNOTSUPP);
        TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, viommu, HwptAllocFlags.None, HwptDataType.VtdS1, new byte[16]), Errno.EINVAL);
    }

    [Fact]
    public void Guest_commands_get_the_VMID_and_the_physical_SID()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (dev, _, viommu) = bed.NestedSetup(vm, "gpu0");
        bed.Fd.AllocVdevice(viommu, dev, Vsid);
        // The driver for the vIOMMU, to look at conversions directly.
        ArmVsmmu driver = (ArmVsmmu)Driver(bed, viommu);
        ushort vmid = driver.Vmid;

        Command Convert(Command c)
        {
            driver.ConvertUserCommand(ref c).ShouldBe(Errno.None, c.ToString());
            return c;
        }

        Convert(Command.TlbiNhAll(0x55)).ShouldBe(Command.TlbiNhAll(vmid));
        Convert(Command.TlbiNhAsid(0x55, Asid)).ShouldBe(Command.TlbiNhAsid(vmid, Asid));
        Convert(Command.TlbiNhVa(0, Asid, Va, leaf: true, tg: 1, ttl: 3)).ShouldBe(Command.TlbiNhVa(vmid, Asid, Va, leaf: true, tg: 1, ttl: 3));
        Convert(Command.TlbiNhVaa(9, Va)).ShouldBe(Command.TlbiNhVaa(vmid, Va));
        Convert(Command.TlbiNsnhAll()).ShouldBe(Command.TlbiNhAll(vmid), "NSNH_ALL is narrowed to the VM");
        Convert(new Command(Command.TlbiNsnhAll().W0, 0xFFFF)).ShouldBe(Command.TlbiNhAll(vmid), "and word 1 is cleared");
        Convert(Command.AtcInv((uint)Vsid, 5, 0x1000, 0)).ShouldBe(Command.AtcInv(0x100, 5, 0x1000, 0));
        Convert(Command.CfgiCd((uint)Vsid, 2)).ShouldBe(Command.CfgiCd(0x100, 2));
        Convert(Command.CfgiCdAll((uint)Vsid)).ShouldBe(Command.CfgiCdAll(0x100));

        foreach (Command refused in new[]
        {
            Command.CfgiSte((uint)Vsid), Command.CfgiAll(), Command.TlbiS12Vmall(1), Command.TlbiS2Ipa(1, 0), Command.TlbiEl2All(),
            Command.Sync(), Command.PrefetchConfig((uint)Vsid), Command.Resume((uint)Vsid, 0, 0), new Command(0xFF, 0),
        })
        {
            Command c = refused;
            driver.ConvertUserCommand(ref c).ShouldBe(Errno.EIO, refused.ToString());
        }
    }

    [Fact]
    public void Invalidations_go_out_in_batches_of_63_each_with_a_CMD_SYNC()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (_, _, viommu) = bed.NestedSetup(vm, "gpu0");
        SmmuDiagnostics before = bed.Diag.Smmu("smmu0");
        long executed = before.Hardware.CommandsExecuted, syncs = before.Hardware.Syncs, batches = before.Batches;

        Command[] commands = Enumerable.Range(0, 100).Select(i => Command.TlbiNhAsid(0, (ushort)i)).ToArray();
        InvalidateResult r = bed.Invalidate(viommu, commands);

        (r.Succeeded, r.EntriesHandled).ShouldBe((true, 100u));
        SmmuDiagnostics after = bed.Diag.Smmu("smmu0");
        (after.Hardware.CommandsExecuted - executed).ShouldBe(102);
        (after.Hardware.Syncs - syncs).ShouldBe(2);
        (after.Batches - batches).ShouldBe(2);
    }

    [Fact]
    public void A_guest_command_the_SMMU_refuses_is_skipped_by_the_host_driver()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (_, _, viommu) = bed.NestedSetup(vm, "gpu0");
        // TLBI_NH_VA with a reserved word-0 bit set: the kernel only rewrites the VMID, the SMMU says CERROR_ILL.
        var bad = new Command(Command.TlbiNhVa(0, Asid, Va).W0 | (1UL << 9), Command.TlbiNhVa(0, Asid, Va).W1);

        InvalidateResult r = bed.Invalidate(viommu, bad, Command.TlbiNhAsid(0, Asid));

        r.Succeeded.ShouldBeTrue("the driver replaces the bad command with a CMD_SYNC and carries on");
        bed.Diag.Smmu("smmu0").CommandsSkipped.ShouldBe(1);
        bed.Diag.KernelLog.ShouldContain(l => l.Contains("illegal command TLBI_NH_VA", StringComparison.Ordinal));
        bed.Invalidate(viommu, Command.TlbiNhAll(0)).Succeeded.ShouldBeTrue("the queue runs on");
    }

    [Fact]
    public void A_vIOMMU_needs_a_nest_parent_of_its_own_SMMU_and_frees_its_VMID()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId gpu1 = bed.Fd.BindDevice("gpu1");
        // arm_vsmmu_init: the S2 domain belongs to the SMMU it was allocated for (smmu1 here)
        HwptId foreign = bed.Fd.AllocPagingHwpt(gpu1, vm.Ioas, HwptAllocFlags.NestParent);
        DeviceId gpu0 = bed.Fd.BindDevice("gpu0");
        Should.Throw<IommufdException>(() => bed.Fd.AllocViommu(gpu0, foreign, ViommuType.ArmSmmuV3)).Errno.ShouldBe(Errno.EINVAL);
        bed.Diag.Smmu("smmu0").VmidsInUse.ShouldBeEmpty("a refused vIOMMU takes no VMID");
        HwptId parent = bed.Fd.AllocPagingHwpt(gpu0, vm.Ioas, HwptAllocFlags.NestParent);
        ViommuId v = bed.Fd.AllocViommu(gpu0, parent, ViommuType.ArmSmmuV3).Id;
        bed.Diag.Smmu("smmu0").VmidsInUse.ShouldBe([(ushort)1]);
        bed.Fd.Destroy(v);
        bed.Diag.Smmu("smmu0").VmidsInUse.ShouldBeEmpty();
    }

    private static ViommuDriver Driver(TestBed bed, ViommuId id) =>
        bed.Fd.LiveObjects.OfType<ViommuObject>().Single(o => o.Id == id.Value).Driver;
}

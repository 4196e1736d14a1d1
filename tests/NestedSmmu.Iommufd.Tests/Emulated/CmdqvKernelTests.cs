using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Cmdqv;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;
using L = NestedSmmu.Hardware.Cmdqv.Tegra241CmdqvLayout;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// The emulated kernel's tegra241-cmdqv driver (drivers/iommu/arm/arm-smmu-v3/tegra241-cmdqv.c) through <see cref="IIommufd"/> and
/// the diagnostics only: the boot-time reset, TEGRA241_CMDQV vIOMMUs with a VINTF each, the VINTF
/// page mmap, SID slots per vDEVICE, VCMDQs per HW queue, and queue errors as vEVENTs. The guest
/// side is played by the test: it writes commands into its queue in guest RAM and drives the
/// queue registers through the mmapped VINTF page, with no kernel call in between.
/// </summary>
public sealed class CmdqvKernelTests
{
    private const ulong VsidA = 0x10, VsidB = 0x20;
    private const ushort Asid = 7;
    private const ulong Va = 0x1000_0000, Va2 = 0x1000_1000, UnmappedVa = 0x2000_0000;
    private const ulong DataIpa = TestBed.GuestRamBase + 0x10_0000;
    private const ulong DataIpa2 = TestBed.GuestRamBase + 0x20_0000;
    /// <summary>Where guests put their VCMDQs: inside guest RAM's lower half, clear of the data pages.</summary>
    private const ulong QueueIpa = TestBed.GuestRamBase + 0x40_0000;
    /// <summary>A 256-entry VCMDQ (4 KiB).</summary>
    private const ulong QueueBytes = 0x1000;
    private const int QueueLog2Entries = 8;
    /// <summary>ATC_INV size 52: the whole address space.</summary>
    private const uint AtcInvAll = 52;
    /// <summary>The small profile's smmu0 CMDQV: 4 VINTFs (VINTF0 the host's), 8 VCMDQs, 16 SID slots.</summary>
    private const int SmallVintfs = 4, SmallVcmdqs = 8, SmallPerVintf = 2, SmallSids = 16;

    // ------------------------------------------------------------------ helpers

    /// <summary>A device with a nest parent on the VM's IOAS and a TEGRA241_CMDQV vIOMMU.</summary>
    private static (DeviceId Dev, HwptId Parent, ViommuId Viommu, Tegra241CmdqvViommuData Page) CmdqvSetup(TestBed bed, Vm vm, string device)
    {
        DeviceId dev = bed.Fd.BindDevice(device);
        HwptId parent = bed.Fd.AllocPagingHwpt(dev, vm.Ioas, HwptAllocFlags.NestParent);
        var (viommu, page) = bed.Fd.AllocTegra241CmdqvViommu(dev, parent);
        return (dev, parent, viommu.Id, page);
    }

    /// <summary>A guest stage 1 with <see cref="Asid"/> mapping <paramref name="mappings"/>, attached through a nested HWPT.</summary>
    private static void AttachTranslating(TestBed bed, Vm vm, DeviceId dev, ViommuId viommu, bool ats, params (ulong Va, ulong Ipa)[] mappings)
    {
        GuestAddressSpace s1 = vm.CreateAddressSpace(Asid);
        foreach (var (va, ipa) in mappings) s1.Map(va, ipa);
        bed.Fd.AttachDevice(dev, bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(vm.WriteCdTable(s1.Cd), ats)));
    }

    private static TestBed SmallWith(Func<CmdqvProfile, CmdqvProfile> change)
    {
        HostProfile small = HostProfile.LoadEmbedded("small");
        SmmuProfile smmu0 = small.Smmus[0];
        return new TestBed(small with { Smmus = [smmu0 with { Cmdqv = change(smmu0.Cmdqv!) }, small.Smmus[1]] });
    }

    private static bool TlbHas(TestBed bed, ushort vmid, ulong va) =>
        bed.Diag.TlbEntries("smmu0").Any(e => e.Vmid == vmid && e.Asid == Asid && e.InputBase == va);

    private static uint CmdqAlloc(TestBed bed, int queue) => bed.Diag.ReadCmdqvRegister("smmu0", L.CmdqAlloc(queue));

    // ------------------------------------------------------------------ boot

    [Fact]
    public void Boot_resets_the_CMDQV_as_Linux_does_with_VINTF0_the_hosts()
    {
        using var bed = new TestBed(selftest: false);

        CmdqvDiagnostics c = bed.Diag.Cmdqv("smmu0")!;
        (c.Enabled, c.Vintfs, c.Vcmdqs, c.LvcmdqsPerVintf, c.SidsPerVintf).ShouldBe((true, SmallVintfs, SmallVcmdqs, SmallPerVintf, SmallSids));
        c.MmioBase.ShouldBe(bed.Host.Profile.Smmus[0].Cmdqv!.MmioBase);
        VintfDiagnostics v0 = c.VintfStates[0];
        (v0.Enabled, v0.HypOwn, v0.ViommuId).ShouldBe((true, true, (uint?)null));
        v0.LogicalQueues.ShouldBe([0, 1], "VINTF0's logical queues are mapped to their preassigned VCMDQs");
        c.VintfStates.Skip(1).ShouldAllBe(v => !v.Enabled && v.LogicalQueues.All(q => q == null) && v.SidSlots.Count == 0);
        for (int q = 0; q < SmallVcmdqs; q++)
        {
            uint alloc = CmdqAlloc(bed, q);
            Tegra241Cmdqv.CMDQV_CMDQ_ALLOC_VINTF.Get(alloc).ShouldBe((ulong)(q / SmallPerVintf), $"VCMDQ{q} is preassigned to VINTF{q / SmallPerVintf}");
            Tegra241Cmdqv.CMDQV_CMDQ_ALLOC_LVCMDQ.Get(alloc).ShouldBe((ulong)(q % SmallPerVintf));
            ((alloc & Tegra241Cmdqv.CMDQV_CMDQ_ALLOCATED) != 0).ShouldBe(q < SmallPerVintf, "only VINTF0's are mapped at boot");
        }
        // VINTF0's queues are set up (BASE in host memory, enabled) and idle.
        ulong base0 = bed.Diag.ReadCmdqvRegister64("smmu0", L.Vcmdq(0, VcmdqPage1Register.BASE));
        Tegra241Cmdqv.VCMDQ_LOG2SIZE.Get(base0).ShouldBe((ulong)QueueLog2Entries);
        bed.Diag.HostMemoryOwner(base0 & Tegra241Cmdqv.VCMDQ_ADDR.Mask).ShouldBe("smmu0 cmdqv vintf0 lvcmdq0");
        bed.Diag.ReadCmdqvRegister("smmu0", L.Vcmdq(1, VcmdqPage0Register.STATUS)).ShouldBe(Tegra241Cmdqv.VCMDQ_ENABLED);
        c.Totals.CommandsExecuted.ShouldBe(0);

        // hw_info follows PARAM.
        uint param = bed.Diag.ReadCmdqvRegister("smmu0", (ulong)CmdqvRegister.PARAM);
        bed.Fd.GetTegra241CmdqvHwInfo(bed.Fd.BindDevice("gpu0")).ShouldBe(new Tegra241CmdqvHwInfo(0,
            (byte)Tegra241Cmdqv.CMDQV_VER.Get(param), Log2Vcmdqs: 1, Log2Vsids: (byte)Tegra241Cmdqv.CMDQV_NUM_SID_PER_VM_LOG2.Get(param)));
        bed.Diag.Cmdqv("smmu1").ShouldBeNull();
        bed.Diag.KernelLog.ShouldContain(l => l.StartsWith("tegra241-cmdqv smmu0: enabled", StringComparison.Ordinal));
    }

    [Fact]
    public void An_illegal_command_in_a_VINTF0_queue_is_skipped_and_acknowledged_by_the_host()
    {
        using var bed = new TestBed(selftest: false);
        // The host issues its own commands through the SMMU's main queue, so nothing of ours fills
        // VINTF0's queues: put an illegal command in logical queue 0 as a stray host write would.
        ulong cmdqvBase = bed.Host.Profile.Smmus[0].Cmdqv!.MmioBase;
        ulong queue = bed.Diag.ReadCmdqvRegister64("smmu0", L.Vcmdq(0, VcmdqPage1Register.BASE)) & Tegra241Cmdqv.VCMDQ_ADDR.Mask;
        bed.Host.Memory.WriteUInt64s(queue, [0xFF, 0]);
        bed.Host.Bus.Write(cmdqvBase + L.Lvcmdq(0, 0, VcmdqPage0Register.PROD), 4, 1);

        // tegra241_vintf0_handle_error: the command became a CMD_SYNC, the error is acknowledged
        // and the queue went on past it.
        bed.Diag.Cmdqv("smmu0")!.HostErrorsHandled.ShouldBe(1);
        bed.Host.Memory.ReadUInt64(queue).ShouldBe(Command.Sync().W0);
        uint gerror = bed.Diag.ReadCmdqvRegister("smmu0", L.Vcmdq(0, VcmdqPage0Register.GERROR));
        bed.Diag.ReadCmdqvRegister("smmu0", L.Vcmdq(0, VcmdqPage0Register.GERRORN)).ShouldBe(gerror);
        bed.Diag.KernelLog.ShouldContain(l => l.Contains("illegal command at CONS 0x0, skipped", StringComparison.Ordinal));
        bed.Diag.Cmdqv("smmu0")!.Interrupts.ShouldBe(1);
    }

    // ------------------------------------------------------------------ the acceptance scenario

    [Fact]
    public void Two_VMs_invalidate_through_their_own_VCMDQs_and_a_bad_command_becomes_a_vEVENT()
    {
        using var bed = new TestBed(selftest: false);
        IIommufd fd = bed.Fd;

        // VM B (nic0) and VM A (gpu0): one TEGRA241_CMDQV vIOMMU each on smmu0, the same ASID and VA.
        Vm vmB = bed.CreateVm("ram-b");
        var (nic0, _, vB, _) = CmdqvSetup(bed, vmB, "nic0");
        fd.AllocVdevice(vB, nic0, VsidB);
        AttachTranslating(bed, vmB, nic0, vB, ats: false, (Va, DataIpa));
        Vm vmA = bed.CreateVm("ram-a");
        var (gpu0, _, vA, pageA) = CmdqvSetup(bed, vmA, "gpu0");
        fd.AllocVdevice(vA, gpu0, VsidA);
        AttachTranslating(bed, vmA, gpu0, vA, ats: false, (Va, DataIpa), (Va2, DataIpa2));

        ushort vmidA = bed.Diag.ReadSte("gpu0").S2VMID, vmidB = bed.Diag.ReadSte("nic0").S2VMID;
        vmidA.ShouldNotBe(vmidB);
        VintfDiagnostics vintfA = bed.Diag.CmdqvVintfOf(bed.Fd, vA)!, vintfB = bed.Diag.CmdqvVintfOf(bed.Fd, vB)!;
        vintfA.Index.ShouldNotBe(vintfB.Index);
        (vintfA.Enabled, vintfA.HypOwn, vintfA.Vmid, vintfA.ViommuId, vintfA.MmapOffset).ShouldBe((true, false, vmidA, vA.Value, pageA.VintfMmapOffset));
        vintfB.Vmid.ShouldBe(vmidB);
        vintfA.SidSlots.ShouldBe([new CmdqvSidSlot(0, (uint)VsidA, 0x100)]);
        pageA.VintfMmapLength.ShouldBe(L.PageSize);

        bed.DmaRead("gpu0", Va).Result.IsSuccess.ShouldBeTrue();
        bed.DmaRead("gpu0", Va2).Result.IsSuccess.ShouldBeTrue();
        bed.DmaRead("nic0", Va).Result.IsSuccess.ShouldBeTrue();
        (TlbHas(bed, vmidA, Va), TlbHas(bed, vmidA, Va2), TlbHas(bed, vmidB, Va)).ShouldBe((true, true, true));

        // VM A: a VCMDQ in its RAM, its error events, and its VINTF page mapped.
        using IVeventQueue events = fd.AllocVeventq(vA, VeventqType.Tegra241Cmdqv, depth: 4);
        fd.AllocHwQueue(vA, HwQueueType.Tegra241Cmdqv, 0, QueueIpa, QueueBytes);
        using IMmioMapping page = fd.MapVintfPage(pageA);
        var guest = new GuestVcmdq(vmA, page, 0, QueueIpa, QueueLog2Entries);
        int global = bed.Diag.CmdqvVintfOf(bed.Fd, vA)!.LogicalQueues[0]!.Value;
        global.ShouldBe(vintfA.Index * SmallPerVintf);
        bed.Diag.ReadCmdqvRegister64("smmu0", L.Vcmdq(global, VcmdqPage1Register.BASE))
            .ShouldBe(Tegra241Cmdqv.EncodeVcmdqBase(vmA.HostPa(QueueIpa), QueueLog2Entries), "the kernel wrote BASE with the pinned host PA");
        guest.Enabled.ShouldBeFalse("the guest enables its queue itself");
        guest.Enable();
        guest.Enabled.ShouldBeTrue();

        // The guest's TLBI_NH_VA names VM B's VMID: the VINTF puts VM A's in its place.
        guest.Submit(Command.TlbiNhVa(vmidB, Asid, Va, leaf: true));

        guest.ConsIndex.ShouldBe(1u);
        guest.ConsErr.ShouldBe(0u);
        TlbHas(bed, vmidA, Va).ShouldBeFalse("VM A's entry went");
        TlbHas(bed, vmidA, Va2).ShouldBeTrue("another VA of VM A stays");
        TlbHas(bed, vmidB, Va).ShouldBeTrue("VM B's entry for the same ASID and VA stays");
        CmdqvCounters countersA = bed.Diag.CmdqvVintfOf(bed.Fd, vA)!.Counters;
        (countersA.CommandsExecuted, countersA.VmidSubstitutions, countersA.ProdWrites).ShouldBe((1L, 1L, 1L));
        bed.Diag.CmdqvQueueCounters("smmu0", global).CommandsExecuted.ShouldBe(1);

        // An illegal command for a guest VINTF stops the queue and reaches the vEVENTQ.
        guest.Submit(Command.CfgiSte(0x100));

        guest.ConsIndex.ShouldBe(1u, "CONS stays at the failing command");
        guest.ConsErr.ShouldBe((uint)CommandError.CERROR_ILL);
        guest.Gerror.ShouldNotBe(guest.Gerrorn);
        IReadOnlyList<Vevent> read = events.ReadAll();
        read.Count.ShouldBe(1);
        read[0].AsTegra241Cmdqv().ShouldBe(new Tegra241CmdqvVevent(1UL << 0, 0), "LVCMDQ_ERR_MAP bit 0: logical queue 0");
        read[0].Sequence.ShouldBe(0u);
        bed.Diag.CmdqvVintfOf(bed.Fd, vA)!.ErrorEventsReported.ShouldBe(1);
        bed.Diag.CmdqvVintfOf(bed.Fd, vB)!.ErrorEventsReported.ShouldBe(0);

        // The guest replaces the command and acknowledges: the queue runs on.
        guest.Replace(1, Command.TlbiNhVa(0, Asid, Va2, leaf: true));
        guest.Acknowledge();

        guest.ConsErr.ShouldBe(0u);
        guest.ConsIndex.ShouldBe(2u);
        guest.Gerror.ShouldBe(guest.Gerrorn);
        TlbHas(bed, vmidA, Va2).ShouldBeFalse();
        TlbHas(bed, vmidB, Va).ShouldBeTrue();
        events.HasEvents.ShouldBeFalse();
        // TLBI_NH_ALL is refused too (a guest VINTF takes only NH_ASID, NH_VA, ATC_INV and CMD_SYNC).
        guest.Submit(Command.TlbiNhAll(vmidA));
        guest.ConsErr.ShouldBe((uint)CommandError.CERROR_ILL);
        events.ReadAll().Single().AsTegra241Cmdqv().LvcmdqErrMap0.ShouldBe(1UL);
        TlbHas(bed, vmidB, Va).ShouldBeTrue();
    }

    [Fact]
    public void A_CMDQV_vIOMMU_is_still_an_SMMUv3_vIOMMU()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        var (gpu0, _, viommu, _) = CmdqvSetup(bed, vm, "gpu0");
        bed.Fd.AllocVdevice(viommu, gpu0, VsidA);
        using IVeventQueue smmuEvents = bed.Fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, 4);
        using IVeventQueue cmdqvEvents = bed.Fd.AllocVeventq(viommu, VeventqType.Tegra241Cmdqv, 4);
        TestBed.ShouldFail(() => bed.Fd.AllocVeventq(viommu, VeventqType.Tegra241Cmdqv, 4), Errno.EEXIST);
        AttachTranslating(bed, vm, gpu0, viommu, ats: false, (Va, DataIpa));
        ushort vmid = bed.Diag.ReadSte("gpu0").S2VMID;
        bed.Diag.ReadSte("gpu0").Config.ShouldBe(SteConfig.Nested);

        bed.DmaRead("gpu0", Va).Result.IsSuccess.ShouldBeTrue();
        TlbHas(bed, vmid, Va).ShouldBeTrue();
        InvalidateResult r = bed.Invalidate(viommu, Command.TlbiNhVa(0, Asid, Va, leaf: true), Command.CfgiCdAll((uint)VsidA));
        (r.Succeeded, r.EntriesHandled).ShouldBe((true, 2u), "commands a VCMDQ may not take still go through HWPT_INVALIDATE");
        TlbHas(bed, vmid, Va).ShouldBeFalse();

        bed.DmaRead("gpu0", UnmappedVa).Result.IsSuccess.ShouldBeFalse();
        ArmSmmuV3Vevent e = smmuEvents.ReadAll().Single().AsArmSmmuV3();
        (e.EventId, e.Sid).ShouldBe(((byte)EventType.F_TRANSLATION, (uint)VsidA));
        cmdqvEvents.HasEvents.ShouldBeFalse();
    }

    // ------------------------------------------------------------------ IOMMU_VIOMMU_ALLOC

    [Fact]
    public void VIOMMU_ALLOC_needs_the_16_byte_driver_data_and_leaks_nothing_when_it_fails()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        DeviceId gpu0 = bed.Fd.BindDevice("gpu0");
        HwptId parent = bed.Fd.AllocPagingHwpt(gpu0, vm.Ioas, HwptAllocFlags.NestParent);

        TestBed.ShouldFail(() => bed.Fd.AllocViommu(gpu0, parent, ViommuType.Tegra241Cmdqv), Errno.EINVAL);
        TestBed.ShouldFail(() => bed.Fd.AllocViommu(gpu0, parent, ViommuType.Tegra241Cmdqv, new byte[8]), Errno.EINVAL);
        TestBed.ShouldFail(() => bed.Fd.AllocViommu(gpu0, parent, ViommuType.Tegra241Cmdqv, new byte[24]), Errno.EINVAL);
        var raw = IommufdMarshal.ViommuAlloc(gpu0, parent, ViommuType.Tegra241Cmdqv, 0, Tegra241CmdqvViommuData.Size, 0);
        bed.Fd.Ioctl((uint)IommufdIoctl.ViommuAlloc, IommufdMarshal.AsBytes(ref raw)).ShouldBe(-(int)Errno.EFAULT, "a NULL data pointer");

        bed.Diag.Smmu("smmu0").VmidsInUse.ShouldBeEmpty();
        bed.Diag.Cmdqv("smmu0")!.VintfStates.Skip(1).ShouldAllBe(v => !v.Enabled && v.ViommuId == null);

        // The data's input fields are outputs only: whatever the caller put there is overwritten.
        var (viommu, page) = bed.Fd.AllocTegra241CmdqvViommu(gpu0, parent);
        page.VintfMmapOffset.ShouldBeGreaterThan(0UL);
        (page.VintfMmapOffset % TestBed.Page).ShouldBe(0UL);
        bed.Diag.CmdqvVintfOf(bed.Fd, viommu.Id)!.Index.ShouldBe(1, "the lowest free VINTF: VINTF0 is the host's");
        bed.Diag.CmdqvVintfOf(bed.Fd, new ViommuId(99)).ShouldBeNull();
    }

    [Fact]
    public void VINTFs_run_out_with_ENOSPC_and_a_destroyed_vIOMMU_gives_its_VINTF_back()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        DeviceId gpu0 = bed.Fd.BindDevice("gpu0");
        HwptId parent = bed.Fd.AllocPagingHwpt(gpu0, vm.Ioas, HwptAllocFlags.NestParent);
        var viommus = new List<ViommuId>();
        for (int i = 1; i < SmallVintfs; i++) viommus.Add(bed.Fd.AllocTegra241CmdqvViommu(gpu0, parent).Viommu.Id);
        viommus.Select(v => bed.Diag.CmdqvVintfOf(bed.Fd, v)!.Index).ShouldBe([1, 2, 3]);

        TestBed.ShouldFail(() => bed.Fd.AllocTegra241CmdqvViommu(gpu0, parent), Errno.ENOSPC);
        bed.Diag.Smmu("smmu0").VmidsInUse.Count.ShouldBe(SmallVintfs - 1, "the failed vIOMMU's VMID went back");
        bed.Fd.AllocViommu(gpu0, parent, ViommuType.ArmSmmuV3).ShouldNotBeNull("plain SMMUv3 vIOMMUs need no VINTF");

        bed.Fd.Destroy(viommus[1]);
        VintfDiagnostics freed = bed.Diag.Cmdqv("smmu0")!.VintfStates[2];
        (freed.Enabled, freed.ViommuId, freed.Vmid).ShouldBe((false, (uint?)null, (ushort)0));
        ViommuId again = bed.Fd.AllocTegra241CmdqvViommu(gpu0, parent).Viommu.Id;
        bed.Diag.CmdqvVintfOf(bed.Fd, again)!.Index.ShouldBe(2);
    }

    [Fact]
    public void A_small_CMDQV_has_one_guest_VINTF()
    {
        using TestBed bed = SmallWith(c => c with { NumVintfLog2 = 1, NumVcmdqLog2 = 1 });
        Vm vm = bed.CreateVm();
        DeviceId gpu0 = bed.Fd.BindDevice("gpu0");
        HwptId parent = bed.Fd.AllocPagingHwpt(gpu0, vm.Ioas, HwptAllocFlags.NestParent);
        bed.Fd.GetTegra241CmdqvHwInfo(gpu0).Log2Vcmdqs.ShouldBe((byte)0);

        bed.Fd.AllocTegra241CmdqvViommu(gpu0, parent);
        TestBed.ShouldFail(() => bed.Fd.AllocTegra241CmdqvViommu(gpu0, parent), Errno.ENOSPC);
    }

    // ------------------------------------------------------------------ mmap and destroy

    [Fact]
    public void The_VINTF_page_reaches_the_hardware_and_keeps_the_vIOMMU_busy_while_mapped()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        var (gpu0, _, viommu, page) = CmdqvSetup(bed, vm, "gpu0");
        int vintf = bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!.Index;

        TestBed.ShouldFail(() => bed.Fd.Mmap(page.VintfMmapOffset, TestBed.Page), Errno.ENXIO);
        TestBed.ShouldFail(() => bed.Fd.Mmap(page.VintfMmapOffset + TestBed.Page, page.VintfMmapLength), Errno.ENXIO);
        IMmioMapping mapping = bed.Fd.MapVintfPage(page);
        mapping.Size.ShouldBe(L.PageSize);
        TestBed.ShouldFail(() => bed.Fd.Destroy(viommu), Errno.EBUSY);

        // Writes through the page land in the VINTF's logical page 0 (here: a queue's PROD).
        HwQueueId queue = bed.Fd.AllocHwQueue(viommu, HwQueueType.Tegra241Cmdqv, 0, QueueIpa, QueueBytes);
        mapping.Write32((ulong)VcmdqPage0Register.PROD, 0);
        mapping.Read32((ulong)VcmdqPage0Register.STATUS).ShouldBe(0u);
        bed.Diag.CmdqvQueueCounters("smmu0", vintf * SmallPerVintf).ProdWrites.ShouldBe(1);
        mapping.Read32(L.VcmdqStride + (ulong)VcmdqPage0Register.PROD).ShouldBe(0u, "logical queue 1 is not mapped: reads as zero");
        mapping.Read32(L.PageSize).ShouldBe(0u, "outside the page");

        mapping.Dispose();
        TestBed.ShouldFail(() => bed.Fd.Destroy(viommu), Errno.EBUSY); // the HW queue holds it
        VdeviceId vdev = bed.Fd.AllocVdevice(viommu, gpu0, VsidA);
        bed.Fd.Destroy(queue);
        TestBed.ShouldFail(() => bed.Fd.Destroy(viommu), Errno.EBUSY); // the vDEVICE holds it
        bed.Fd.Destroy(vdev);

        bed.Fd.Destroy(viommu);
        VintfDiagnostics after = bed.Diag.Cmdqv("smmu0")!.VintfStates[vintf];
        (after.Enabled, after.ViommuId, after.MmapOffset, after.SidSlots.Count).ShouldBe((false, (uint?)null, (ulong?)null, 0));
        TestBed.ShouldFail(() => bed.Fd.Mmap(page.VintfMmapOffset, page.VintfMmapLength), Errno.ENXIO);
        mapping.Read32((ulong)VcmdqPage0Register.CONS).ShouldBe(0u, "an unmapped page reads zero");
    }

    // ------------------------------------------------------------------ vDEVICEs

    [Fact]
    public void vDEVICEs_take_SID_slots_that_destroy_clears()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        var (gpu0, _, viommu, _) = CmdqvSetup(bed, vm, "gpu0");
        int vintf = bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!.Index;
        DeviceId nic0 = bed.Fd.BindDevice("nic0");

        TestBed.ShouldFail(() => bed.Fd.AllocVdevice(viommu, gpu0, 1UL << 32), Errno.EINVAL);
        VdeviceId a = bed.Fd.AllocVdevice(viommu, gpu0, uint.MaxValue);
        VdeviceId b = bed.Fd.AllocVdevice(viommu, nic0, VsidB);
        bed.Diag.ReadCmdqvRegister("smmu0", L.SidMatch(vintf, 0))
            .ShouldBe((uint)(Tegra241Cmdqv.SID_MATCH_VIRT_SID.Mask | Tegra241Cmdqv.SID_MATCH_ENABLE), "a 32-bit vSID is accepted; the register keeps VIRT_SID [20:1]");
        bed.Diag.ReadCmdqvRegister("smmu0", L.SidReplace(vintf, 0)).ShouldBe(0x100u);
        bed.Diag.ReadCmdqvRegister("smmu0", L.SidMatch(vintf, 1)).ShouldBe(((uint)VsidB << 1) | 1);
        bed.Diag.ReadCmdqvRegister("smmu0", L.SidReplace(vintf, 1)).ShouldBe(0x200u);

        bed.Fd.Destroy(a);
        (bed.Diag.ReadCmdqvRegister("smmu0", L.SidMatch(vintf, 0)), bed.Diag.ReadCmdqvRegister("smmu0", L.SidReplace(vintf, 0))).ShouldBe((0u, 0u));
        bed.Fd.AllocVdevice(viommu, gpu0, VsidA);
        bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!.SidSlots.ShouldBe([new CmdqvSidSlot(0, (uint)VsidA, 0x100), new CmdqvSidSlot(1, (uint)VsidB, 0x200)]);

        // Unbinding a device forces its vDEVICE down: the slot goes with it.
        bed.Fd.UnbindDevice(nic0);
        bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!.SidSlots.ShouldBe([new CmdqvSidSlot(0, (uint)VsidA, 0x100)]);
        TestBed.ShouldFail(() => bed.Fd.Destroy(b), Errno.ENOENT);
    }

    [Fact]
    public void SID_slots_run_out_with_ENOSPC()
    {
        using TestBed bed = SmallWith(c => c with { NumSidPerVmLog2 = 0 });
        Vm vm = bed.CreateVm();
        var (gpu0, _, viommu, _) = CmdqvSetup(bed, vm, "gpu0");
        bed.Fd.GetTegra241CmdqvHwInfo(gpu0).Log2Vsids.ShouldBe((byte)0);
        DeviceId nic0 = bed.Fd.BindDevice("nic0");

        VdeviceId a = bed.Fd.AllocVdevice(viommu, gpu0, VsidA);
        TestBed.ShouldFail(() => bed.Fd.AllocVdevice(viommu, nic0, VsidB), Errno.ENOSPC);
        bed.Fd.Destroy(a);
        bed.Fd.AllocVdevice(viommu, nic0, VsidB);
        bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!.SidSlots.ShouldBe([new CmdqvSidSlot(0, (uint)VsidB, 0x200)]);
    }

    // ------------------------------------------------------------------ IOMMU_HW_QUEUE_ALLOC

    [Fact]
    public void HW_QUEUE_ALLOC_checks_index_order_length_and_alignment()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        var (_, _, viommu, _) = CmdqvSetup(bed, vm, "gpu0");
        int vintf = bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!.Index;
        const HwQueueType type = HwQueueType.Tegra241Cmdqv;
        void Fails(uint index, ulong iova, ulong length, Errno errno) =>
            TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, type, index, iova, length), errno);

        Fails(SmallPerVintf, QueueIpa, QueueBytes, Errno.EINVAL);
        Fails(1, QueueIpa, QueueBytes, Errno.EIO);
        Fails(0, QueueIpa, 0x1800, Errno.EINVAL);
        Fails(0, QueueIpa, 16, Errno.EINVAL);
        Fails(0, TestBed.GuestRamBase, TestBed.GuestRamSize, Errno.EINVAL); // 2^24 bytes > 2^(IDR1.CMDQS 19 + 4)
        Fails(0, QueueIpa + 0x100, QueueBytes, Errno.EINVAL);
        ulong misaligned = vm.HostPa(QueueIpa) % (2 * QueueBytes) == 0 ? QueueIpa + QueueBytes : QueueIpa;
        Fails(0, misaligned, 2 * QueueBytes, Errno.EINVAL);
        Fails(0, TestBed.GuestRamBase + TestBed.GuestRamSize, QueueBytes, Errno.ENOENT);

        HwQueueId q0 = bed.Fd.AllocHwQueue(viommu, type, 0, QueueIpa, QueueBytes);
        Fails(0, QueueIpa + 2 * QueueBytes, QueueBytes, Errno.EEXIST);
        Fails(1, QueueIpa + QueueBytes, 16, Errno.EINVAL);
        HwQueueId q1 = bed.Fd.AllocHwQueue(viommu, type, 1, QueueIpa + QueueBytes, 32);
        VintfDiagnostics v = bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!;
        v.LogicalQueues.ShouldBe([vintf * SmallPerVintf, vintf * SmallPerVintf + 1]);
        bed.Diag.ReadCmdqvRegister64("smmu0", L.Lvcmdq(vintf, 1, VcmdqPage1Register.BASE))
            .ShouldBe(Tegra241Cmdqv.EncodeVcmdqBase(vm.HostPa(QueueIpa + QueueBytes), 1), "32 bytes: two entries");
        Fails(2, QueueIpa + 2 * QueueBytes, QueueBytes, Errno.EINVAL);

        // The pinned guest RAM cannot be unmapped; queues go in descending order.
        bed.Fd.TryUnmapIoas(vm.Ioas, TestBed.GuestRamBase, TestBed.GuestRamSize, out _, out Errno unmap).ShouldBeFalse();
        unmap.ShouldBe(Errno.EBUSY);
        TestBed.ShouldFail(() => bed.Fd.Destroy(q0), Errno.EBUSY);
        bed.Fd.Destroy(q1);
        bed.Fd.Destroy(q0);
        bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!.LogicalQueues.ShouldAllBe(q => q == null);
        for (int q = 0; q < SmallPerVintf; q++)
        {
            int global = vintf * SmallPerVintf + q;
            (CmdqAlloc(bed, global) & Tegra241Cmdqv.CMDQV_CMDQ_ALLOCATED).ShouldBe(0u);
            bed.Diag.ReadCmdqvRegister64("smmu0", L.Vcmdq(global, VcmdqPage1Register.BASE)).ShouldBe(0UL);
        }
        bed.Fd.AllocHwQueue(viommu, type, 0, QueueIpa, QueueBytes);
    }

    [Fact]
    public void HW_queues_need_physically_contiguous_guest_RAM()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        var (_, _, viommu, _) = CmdqvSetup(bed, vm, "gpu0");
        // Two separate host runs mapped back to back past guest RAM, with a gap between them in host memory.
        HostMemoryRegion first = bed.Fd.AllocateHostMemory(TestBed.Page, "first");
        HostMemoryRegion spacer = bed.Fd.AllocateHostMemory(TestBed.Page, "spacer");
        HostMemoryRegion second = bed.Fd.AllocateHostMemory(TestBed.Page, "second");
        ulong iova = TestBed.GuestRamBase + TestBed.GuestRamSize;
        bed.Fd.MapIoas(vm.Ioas, first, 0, TestBed.Page, iova);
        bed.Fd.MapIoas(vm.Ioas, second, 0, TestBed.Page, iova + TestBed.Page);

        TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, HwQueueType.Tegra241Cmdqv, 0, iova, 2 * TestBed.Page), Errno.EFAULT);
        spacer.Dispose();
    }

    [Fact]
    public void Destroying_a_queue_in_error_disables_it_and_acknowledges_the_error()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        var (_, _, viommu, page) = CmdqvSetup(bed, vm, "gpu0");
        int vintf = bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!.Index;
        int global = vintf * SmallPerVintf;
        HwQueueId queue = bed.Fd.AllocHwQueue(viommu, HwQueueType.Tegra241Cmdqv, 0, QueueIpa, QueueBytes);
        using IMmioMapping mapping = bed.Fd.MapVintfPage(page);
        var guest = new GuestVcmdq(vm, mapping, 0, QueueIpa, QueueLog2Entries);
        guest.Enable();

        // No TEGRA241_CMDQV vEVENTQ: the error map is dropped, the queue still stops.
        guest.Submit(Command.TlbiNhAll(0));
        guest.ConsErr.ShouldBe((uint)CommandError.CERROR_ILL);
        VintfDiagnostics v = bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!;
        (v.ErrorEventsReported, v.ErrorEventsDropped, v.Counters.CommandsRejected).ShouldBe((0L, 1L, 1L));
        bed.Diag.Cmdqv("smmu0")!.Interrupts.ShouldBe(1);
        bed.Diag.ReadCmdqvRegister("smmu0", (ulong)CmdqvRegister.VINTF_ERR_MAP).ShouldBe(1u << vintf);

        bed.Fd.Destroy(queue);

        uint Reg(VcmdqPage0Register r) => bed.Diag.ReadCmdqvRegister("smmu0", L.Vcmdq(global, r));
        (Reg(VcmdqPage0Register.CONFIG), Reg(VcmdqPage0Register.PROD), Reg(VcmdqPage0Register.CONS)).ShouldBe((0u, 0u, 0u));
        Reg(VcmdqPage0Register.GERRORN).ShouldBe(Reg(VcmdqPage0Register.GERROR), "the kernel acknowledged the leftover error");
        bed.Diag.ReadCmdqvRegister("smmu0", (ulong)CmdqvRegister.VINTF_ERR_MAP).ShouldBe(0u);
        (CmdqAlloc(bed, global) & Tegra241Cmdqv.CMDQV_CMDQ_ALLOCATED).ShouldBe(0u);
        bed.Diag.KernelLog.ShouldContain(l => l.Contains("uncleared error detected, resetting", StringComparison.Ordinal));
        guest.Enabled.ShouldBeFalse();
    }

    [Fact]
    public void Every_VINTF_in_error_is_reported_when_the_interrupt_fires_as_in_Linux()
    {
        using var bed = new TestBed(selftest: false);
        Vm vmA = bed.CreateVm("ram-a"), vmB = bed.CreateVm("ram-b");
        var (_, _, vA, pageA) = CmdqvSetup(bed, vmA, "gpu0");
        var (_, _, vB, pageB) = CmdqvSetup(bed, vmB, "nic0");
        using IVeventQueue eventsA = bed.Fd.AllocVeventq(vA, VeventqType.Tegra241Cmdqv, 4);
        using IVeventQueue eventsB = bed.Fd.AllocVeventq(vB, VeventqType.Tegra241Cmdqv, 4);
        bed.Fd.AllocHwQueue(vA, HwQueueType.Tegra241Cmdqv, 0, QueueIpa, QueueBytes);
        bed.Fd.AllocHwQueue(vB, HwQueueType.Tegra241Cmdqv, 0, QueueIpa, QueueBytes);
        bed.Fd.AllocHwQueue(vB, HwQueueType.Tegra241Cmdqv, 1, QueueIpa + QueueBytes, QueueBytes);
        using IMmioMapping mapA = bed.Fd.MapVintfPage(pageA), mapB = bed.Fd.MapVintfPage(pageB);
        var guestA = new GuestVcmdq(vmA, mapA, 0, QueueIpa, QueueLog2Entries);
        var guestB1 = new GuestVcmdq(vmB, mapB, 1, QueueIpa + QueueBytes, QueueLog2Entries);
        guestA.Enable();
        guestB1.Enable();

        guestA.Submit(Command.CfgiAll());
        eventsA.ReadAll().Single().AsTegra241Cmdqv().ShouldBe(new Tegra241CmdqvVevent(1, 0));
        guestB1.Submit(Command.CfgiAll());

        eventsB.ReadAll().Single().AsTegra241Cmdqv().ShouldBe(new Tegra241CmdqvVevent(1UL << 1, 0), "VM B's logical queue 1");
        eventsA.ReadAll().Single().AsTegra241Cmdqv().ShouldBe(new Tegra241CmdqvVevent(1, 0),
            "VM A has not acknowledged yet: tegra241_cmdqv_isr reports every VINTF in VINTF_ERR_MAP");
        guestA.Acknowledge();
        guestA.ConsErr.ShouldBe((uint)CommandError.CERROR_ILL, "acknowledged, but the bad command is still at CONS: it fails again");
        guestA.Gerror.ShouldNotBe(guestA.Gerrorn);
        eventsA.ReadAll().Count.ShouldBe(1);
        eventsB.HasEvents.ShouldBeTrue("VM B is still in error, so the new interrupt reports it again");
    }

    // ------------------------------------------------------------------ ATC_INV

    [Fact]
    public void ATC_INV_through_the_VCMDQ_reaches_the_ATC_of_the_device_behind_the_vSID()
    {
        using var bed = new TestBed(selftest: false);
        Vm vm = bed.CreateVm();
        var (gpu0, _, viommu, page) = CmdqvSetup(bed, vm, "gpu0");
        bed.Fd.AllocVdevice(viommu, gpu0, VsidA);
        AttachTranslating(bed, vm, gpu0, viommu, ats: true, (Va, DataIpa));
        bed.Diag.AtsEnabled("gpu0").ShouldBeTrue();
        using IVeventQueue events = bed.Fd.AllocVeventq(viommu, VeventqType.Tegra241Cmdqv, 4);
        bed.Fd.AllocHwQueue(viommu, HwQueueType.Tegra241Cmdqv, 0, QueueIpa, QueueBytes);
        using IMmioMapping mapping = bed.Fd.MapVintfPage(page);
        var guest = new GuestVcmdq(vm, mapping, 0, QueueIpa, QueueLog2Entries);
        guest.Enable();

        bed.DmaRead("gpu0", Va).Result.IsSuccess.ShouldBeTrue();
        bed.DmaRead("gpu0", Va).Result.FromAtc.ShouldBeTrue("the second access hits the ATC");
        bed.Diag.AtcEntries("gpu0").ShouldBe(1);
        long before = bed.Diag.AtcInvalidations("gpu0");

        guest.Submit(Command.AtcInv((uint)VsidA, null, 0, AtcInvAll, global: true), Command.Sync());

        guest.ConsErr.ShouldBe(0u);
        guest.ConsIndex.ShouldBe(2u);
        bed.Diag.AtcEntries("gpu0").ShouldBe(0, "the vSID was replaced by gpu0's pSID 0x100");
        bed.Diag.AtcInvalidations("gpu0").ShouldBe(before + 1);
        bed.DmaRead("gpu0", Va).Result.FromAtc.ShouldBeFalse();
        CmdqvCounters counters = bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!.Counters;
        (counters.SidSubstitutions, counters.CommandsExecuted).ShouldBe((1L, 2L));

        // A vSID without a SID slot is refused by the VINTF: the guest hears about it.
        guest.Submit(Command.AtcInv((uint)VsidB, null, 0, AtcInvAll, global: true));
        guest.ConsErr.ShouldBe((uint)CommandError.CERROR_ILL);
        bed.Diag.CmdqvVintfOf(bed.Fd, viommu)!.Counters.UnmatchedSids.ShouldBe(1);
        events.ReadAll().Single().AsTegra241Cmdqv().LvcmdqErrMap0.ShouldBe(1UL);
        bed.Diag.AtcEntries("gpu0").ShouldBe(1);
    }

    // ------------------------------------------------------------------ close

    [Fact]
    public void Closing_the_fd_frees_every_VINTF_queue_and_SID_slot()
    {
        var bed = new TestBed(selftest: false);
        ulong baseline = bed.Diag.HostMemoryAllocated;
        Vm vm = bed.CreateVm();
        var (gpu0, _, viommu, page) = CmdqvSetup(bed, vm, "gpu0");
        bed.Fd.AllocVdevice(viommu, gpu0, VsidA);
        bed.Fd.AllocHwQueue(viommu, HwQueueType.Tegra241Cmdqv, 0, QueueIpa, QueueBytes);
        bed.Fd.AllocHwQueue(viommu, HwQueueType.Tegra241Cmdqv, 1, QueueIpa + QueueBytes, QueueBytes);
        IVeventQueue events = bed.Fd.AllocVeventq(viommu, VeventqType.Tegra241Cmdqv, 2);
        IMmioMapping mapping = bed.Fd.MapVintfPage(page);
        new GuestVcmdq(vm, mapping, 0, QueueIpa, QueueLog2Entries).Enable();

        bed.Fd.Dispose();

        CmdqvDiagnostics c = bed.Diag.Cmdqv("smmu0")!;
        c.VintfStates.Skip(1).ShouldAllBe(v => !v.Enabled && v.ViommuId == null && v.SidSlots.Count == 0 && v.LogicalQueues.All(q => q == null));
        c.VintfStates[0].Enabled.ShouldBeTrue("VINTF0 stays the host's");
        for (int q = SmallPerVintf; q < SmallVcmdqs; q++) (CmdqAlloc(bed, q) & Tegra241Cmdqv.CMDQV_CMDQ_ALLOCATED).ShouldBe(0u);
        mapping.Read32((ulong)VcmdqPage0Register.STATUS).ShouldBe(0u, "the mapping was revoked");
        Should.Throw<ObjectDisposedException>(() => events.Read());
        vm.Ram.Dispose();
        bed.Diag.HostMemoryAllocated.ShouldBe(baseline);
        bed.Diag.Smmu("smmu0").VmidsInUse.ShouldBeEmpty();
    }
}

/// <summary>
/// The guest's view of one of its VCMDQs: the buffer in guest RAM and the queue's registers in
/// the mmapped VINTF page 0 (logical queue <c>lidx</c> at 0x80 lidx). Nothing here calls the kernel.
/// </summary>
internal sealed class GuestVcmdq(Vm vm, IMmioMapping page, int lidx, ulong bufferIpa, int log2Entries)
{
    private ulong Reg(VcmdqPage0Register r) => L.VcmdqStride * (ulong)lidx + (ulong)r;
    private uint IndexMask => (1u << log2Entries) - 1;
    /// <summary>Index plus the wrap bit.</summary>
    private uint PointerMask => (2u << log2Entries) - 1;

    public uint Prod => page.Read32(Reg(VcmdqPage0Register.PROD));
    public uint Cons => page.Read32(Reg(VcmdqPage0Register.CONS));
    public uint ConsIndex => (uint)Tegra241Cmdqv.VCMDQ_CONS_RD.Get(Cons) & PointerMask;
    public uint ConsErr => (uint)Tegra241Cmdqv.VCMDQ_CONS_ERR.Get(Cons);
    public uint Gerror => page.Read32(Reg(VcmdqPage0Register.GERROR));
    public uint Gerrorn => page.Read32(Reg(VcmdqPage0Register.GERRORN));
    public bool Enabled => (page.Read32(Reg(VcmdqPage0Register.STATUS)) & Tegra241Cmdqv.VCMDQ_ENABLED) != 0;

    public void Enable() => page.Write32(Reg(VcmdqPage0Register.CONFIG), Tegra241Cmdqv.VCMDQ_EN);

    /// <summary>Writes the commands at PROD in guest RAM, then publishes them with one PROD write.</summary>
    public void Submit(params Command[] commands)
    {
        uint prod = Prod & PointerMask;
        foreach (Command c in commands)
        {
            Write(prod & IndexMask, c);
            prod = (prod + 1) & PointerMask;
        }
        page.Write32(Reg(VcmdqPage0Register.PROD), prod);
    }

    /// <summary>Overwrites entry <paramref name="index"/> (the guest fixing a bad command).</summary>
    public void Replace(uint index, Command command) => Write(index & IndexMask, command);

    /// <summary>GERRORN = GERROR, as the guest's error handler does.</summary>
    public void Acknowledge() => page.Write32(Reg(VcmdqPage0Register.GERRORN), Gerror);

    private void Write(uint index, Command c)
    {
        ulong ipa = bufferIpa + (ulong)index * Command.Size;
        vm.WriteGuest(ipa, c.W0);
        vm.WriteGuest(ipa + sizeof(ulong), c.W1);
    }
}

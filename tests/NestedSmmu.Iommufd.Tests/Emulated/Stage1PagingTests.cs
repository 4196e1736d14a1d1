using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// Stage-1 paging domains as arm-smmu-v3 makes them (arm_smmu_domain_alloc_paging_flags,
/// arm_smmu_domain_finalise, arm_smmu_attach_dev): which stage each flag combination gets on
/// SMMUs with stage 1, stage 2 or both; the host-wide ASID space; the CD table and STE; DMA
/// through the hardware model's stage-1 walk; invalidation when an IOAS mapping goes away.
/// </summary>
public sealed class Stage1PagingTests
{
    private const ulong Iova = TestBed.GuestRamBase;
    private const ulong Stage1Last = (1UL << 48) - 1;
    /// <summary>smmu1 of the "small" profile has a 44-bit OAS, so its stage-2 domains take 44-bit IPAs.</summary>
    private const ulong Smmu1Stage2Last = (1UL << 44) - 1;

    /// <summary>The "small" profile with every SMMU's features changed.</summary>
    private static HostProfile Small(Func<SmmuFeatures, SmmuFeatures> change)
    {
        HostProfile p = HostProfile.LoadEmbedded("small");
        return p with { Smmus = [.. p.Smmus.Select(s => s with { Features = change(s.Features) })] };
    }

    [Theory]
    [InlineData(true, true, HwptAllocFlags.None, SteConfig.Stage1, Errno.None)]
    [InlineData(true, true, HwptAllocFlags.Pasid, SteConfig.Stage1, Errno.None)]
    [InlineData(true, true, HwptAllocFlags.NestParent, SteConfig.Stage2, Errno.None)]
    [InlineData(true, true, HwptAllocFlags.NestParent | HwptAllocFlags.Pasid, SteConfig.Abort, Errno.EOPNOTSUPP)]
    [InlineData(true, true, HwptAllocFlags.DirtyTracking, SteConfig.Abort, Errno.EOPNOTSUPP)]
    [InlineData(true, false, HwptAllocFlags.None, SteConfig.Stage1, Errno.None)]
    [InlineData(true, false, HwptAllocFlags.Pasid, SteConfig.Stage1, Errno.None)]
    [InlineData(true, false, HwptAllocFlags.NestParent, SteConfig.Abort, Errno.EOPNOTSUPP)]
    [InlineData(false, true, HwptAllocFlags.None, SteConfig.Stage2, Errno.None)]
    [InlineData(false, true, HwptAllocFlags.Pasid, SteConfig.Abort, Errno.EOPNOTSUPP)]
    [InlineData(false, true, HwptAllocFlags.NestParent, SteConfig.Abort, Errno.EOPNOTSUPP)]
    public void The_stage_follows_the_flags_and_the_SMMU(bool stage1, bool stage2, HwptAllocFlags flags, SteConfig expected, Errno errno)
    {
        using var bed = new TestBed(Small(f => f with { Stage1 = stage1, Stage2 = stage2 }));
        Vm vm = bed.CreateVm();
        DeviceId gpu = bed.Fd.BindDevice("gpu1");
        if (errno != Errno.None)
        {
            TestBed.ShouldFail(() => bed.Fd.AllocPagingHwpt(gpu, vm.Ioas, flags), errno);
            bed.Diag.AsidsInUse.ShouldBeEmpty();
            return;
        }
        HwptId hwpt = bed.Fd.AllocPagingHwpt(gpu, vm.Ioas, flags);
        bed.Fd.GetIovaRanges(vm.Ioas).Ranges[^1].Last.ShouldBe(expected == SteConfig.Stage1 ? Stage1Last : Smmu1Stage2Last);
        bed.Diag.AsidsInUse.Count.ShouldBe(expected == SteConfig.Stage1 ? 1 : 0);
        bed.Fd.AttachDevice(gpu, hwpt);
        bed.Diag.ReadSte("gpu1").Config.ShouldBe(expected);
        vm.WriteGuest(Iova + 0x5000, 0xFEED);
        var (r, value) = bed.DmaRead("gpu1", Iova + 0x5000);
        (r.IsSuccess, value, r.Translation.PhysicalAddress).ShouldBe((true, 0xFEEDUL, vm.HostPa(Iova + 0x5000)));

        if (flags != HwptAllocFlags.None) return;
        // The automatic domain of an IOAS attachment is asked for without flags: the same stage.
        DeviceId nic = bed.Fd.BindDevice("nic1");
        bed.Fd.AttachDevice(nic, vm.Ioas);
        bed.Diag.ReadSte("nic1").Config.ShouldBe(expected);
        bed.DmaRead("nic1", Iova + 0x5000).Value.ShouldBe(0xFEEDUL);
    }

    [Fact]
    public void ASIDs_are_one_host_wide_space_lowest_free_first_bounded_by_the_SMMU()
    {
        using var bed = new TestBed(Small(f => f with { Asid16 = false }));
        Vm vm = bed.CreateVm();
        DeviceId gpu0 = bed.Fd.BindDevice("gpu0");
        DeviceId gpu1 = bed.Fd.BindDevice("gpu1");
        bed.Fd.AllocPagingHwpt(gpu0, vm.Ioas);
        HwptId second = bed.Fd.AllocPagingHwpt(gpu1, vm.Ioas);
        bed.Fd.AllocPagingHwpt(gpu0, vm.Ioas);
        bed.Diag.AsidsInUse.ShouldBe([(ushort)1, (ushort)2, (ushort)3], "arm_smmu_asid_xa spans every SMMU");
        bed.Fd.Destroy(second);
        bed.Diag.AsidsInUse.ShouldBe([(ushort)1, (ushort)3]);
        bed.Fd.AllocPagingHwpt(gpu1, vm.Ioas);
        bed.Diag.AsidsInUse.ShouldBe([(ushort)1, (ushort)2, (ushort)3], "the lowest free ASID is reused");
        bed.Fd.AllocPagingHwpt(gpu0, vm.Ioas, HwptAllocFlags.NestParent);
        bed.Diag.AsidsInUse.Count.ShouldBe(3, "a nest parent is stage 2: a VMID, no ASID");

        // 8-bit ASIDs: 1..255, then xa_alloc's EBUSY.
        var more = new List<HwptId>();
        IommufdException? full = null;
        while (full is null && more.Count < 300)
        {
            try
            {
                more.Add(bed.Fd.AllocPagingHwpt(gpu1, vm.Ioas));
            }
            catch (IommufdException e)
            {
                full = e;
            }
        }
        full.ShouldNotBeNull().Errno.ShouldBe(Errno.EBUSY);
        more.Count.ShouldBe(252);
        bed.Diag.AsidsInUse.Count.ShouldBe(255);
        bed.Diag.AsidsInUse[^1].ShouldBe((ushort)255);
        foreach (HwptId h in more) bed.Fd.Destroy(h);
        bed.Diag.AsidsInUse.ShouldBe([(ushort)1, (ushort)2, (ushort)3]);
    }

    [Fact]
    public void DMA_lands_where_the_IOAS_maps_and_an_unmap_invalidates_by_ASID_so_later_DMA_faults_at_stage_1()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        ulong extraIova = vm.MapExtraPage(out HostMemoryRegion extra);
        DeviceId nic = bed.Fd.BindDevice("nic0");
        HwptId hwpt = bed.Fd.AllocPagingHwpt(nic, vm.Ioas);
        bed.Fd.AttachDevice(nic, hwpt);
        ushort asid = bed.Diag.ReadHostCd("nic0")!.Value.ASID;

        vm.WriteGuest(Iova + 0x3008, 0x1234_5678);
        var (r, value) = bed.DmaRead("nic0", Iova + 0x3008);
        (r.Translation.PhysicalAddress, value).ShouldBe((vm.HostPa(Iova + 0x3008), 0x1234_5678UL));
        byte[] written = [1, 2, 3, 4, 5, 6, 7, 8];
        bed.Diag.Dma("nic0", extraIova + 0x10, AccessKind.Write, written).IsSuccess.ShouldBeTrue();
        var back = new byte[8];
        extra.Read(0x10, back);
        back.ShouldBe(written);
        bed.Diag.TlbEntries("smmu0").ShouldContain(e => e.InputBase == extraIova && e.Regime == TlbRegime.NonHyp && e.Asid == asid && e.Vmid == 0 && !e.Global);

        long before = bed.Diag.Counters("smmu0").CommandsExecuted;
        bed.Fd.UnmapIoas(vm.Ioas, extraIova, TestBed.Page);

        (bed.Diag.Counters("smmu0").CommandsExecuted - before).ShouldBe(2, "TLBI_NH_VA + CMD_SYNC");
        Command tlbi = bed.Host.FindSmmu("smmu0")!.LastCommands(2)[0];
        (tlbi.Opcode, tlbi.ASID, tlbi.VMID, tlbi.Address).ShouldBe((CommandOpcode.TLBI_NH_VA, asid, (ushort)0, extraIova));
        bed.Diag.TlbEntries("smmu0").ShouldNotContain(e => e.InputBase == extraIova);
        bed.Diag.TlbEntries("smmu0").ShouldContain(e => e.InputBase <= Iova + 0x3008 && Iova + 0x3008 - e.InputBase < e.Size, "only the unmapped range is invalidated");
        var (fault, _) = bed.DmaRead("nic0", extraIova);
        (fault.Translation.FaultType, fault.Translation.Stage).ShouldBe((EventType.F_TRANSLATION, 1));
    }

    [Fact]
    public void Large_unmaps_without_range_invalidation_flush_the_whole_ASID()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId nic = bed.Fd.BindDevice("nic1"); // smmu1: no RIL
        bed.Fd.AttachDevice(nic, vm.Ioas);
        ushort asid = bed.Diag.ReadHostCd("nic1")!.Value.ASID;
        long before = bed.Diag.Counters("smmu1").CommandsExecuted;
        bed.Fd.UnmapIoas(vm.Ioas, Iova, TestBed.GuestRamSize);
        (bed.Diag.Counters("smmu1").CommandsExecuted - before).ShouldBe(2, "TLBI_NH_ASID + CMD_SYNC instead of 4096 TLBI_NH_VA");
        Command flush = bed.Host.FindSmmu("smmu1")!.LastCommands(2)[0];
        (flush.Opcode, flush.ASID).ShouldBe((CommandOpcode.TLBI_NH_ASID, asid));
    }

    [Theory]
    [InlineData(511, 511 + 9)]
    [InlineData(512, 2)]
    public void Without_range_invalidation_512_pages_make_the_whole_ASID_go(int pages, int commands)
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        ulong bytes = (ulong)pages * TestBed.Page;
        HostMemoryRegion extra = bed.Fd.AllocateHostMemory(bytes, "extra");
        const ulong extraIova = 0x1_0000_0000;
        bed.Fd.MapIoas(vm.Ioas, extra, 0, bytes, extraIova);
        DeviceId nic = bed.Fd.BindDevice("nic1"); // smmu1: no RIL
        bed.Fd.AttachDevice(nic, vm.Ioas);
        long before = bed.Diag.Counters("smmu1").CommandsExecuted;
        bed.Fd.UnmapIoas(vm.Ioas, extraIova, bytes);
        // arm_smmu_inv_size_too_big: 1 << (12 - 3) page operations at most; batches of 63 and a CMD_SYNC
        (bed.Diag.Counters("smmu1").CommandsExecuted - before).ShouldBe(commands);
    }

    [Fact]
    public void The_CD_is_written_before_the_STE_words_before_V_each_step_synced()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId nic = bed.Fd.BindDevice("nic0");
        bed.Fd.AttachDevice(nic, vm.Ioas);
        // arm_smmu_write_entry for the CD (invalid to valid: words 1-7, then word 0), then for the
        // STE (the abort STE is live: V cleared first, then the new STE)
        bed.Host.FindSmmu("smmu0")!.LastCommands(8).Select(c => c.Opcode).ShouldBe([
            CommandOpcode.CFGI_CD, CommandOpcode.CMD_SYNC, CommandOpcode.CFGI_CD, CommandOpcode.CMD_SYNC,
            CommandOpcode.CFGI_STE, CommandOpcode.CMD_SYNC, CommandOpcode.CFGI_STE, CommandOpcode.CMD_SYNC]);
        bed.Fd.DetachDevice(nic);
        // arm_smmu_attach_dev_ste: the abort STE, the ASID flushed (its last master left), then CD 0
        // cleared (V first, then the other words)
        bed.Host.FindSmmu("smmu0")!.LastCommands(10).Select(c => c.Opcode).ShouldBe([
            CommandOpcode.CFGI_STE, CommandOpcode.CMD_SYNC, CommandOpcode.CFGI_STE, CommandOpcode.CMD_SYNC,
            CommandOpcode.TLBI_NH_ASID, CommandOpcode.CMD_SYNC,
            CommandOpcode.CFGI_CD, CommandOpcode.CMD_SYNC, CommandOpcode.CFGI_CD, CommandOpcode.CMD_SYNC]);
    }

    [Fact]
    public void A_master_with_PASIDs_gets_a_two_level_CD_table_and_CD_0()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId nic = bed.Fd.BindDevice("nic1"); // 16 PASID bits, smmu1 has 20 SSID bits and 2-level CD tables
        bed.Fd.AttachDevice(nic, vm.Ioas);
        StreamTableEntry ste = bed.Diag.ReadSte("nic1");
        (ste.Config, ste.S1Fmt, ste.S1CDMax, ste.S1DSS).ShouldBe((SteConfig.Stage1, ArmSmmuCdTable.S1Fmt64KL2, 16u, 2u));
        // 2^16 CDs: 64 level-1 descriptors (one page) and the 64 KiB leaf of substream 0
        bed.Diag.CdTableBytes.ShouldBe(TestBed.Page + 0x10000);
        vm.WriteGuest(Iova + 0x1_0000, 0xABCD);
        bed.DmaRead("nic1", Iova + 0x1_0000).Value.ShouldBe(0xABCDUL);
    }

    [Fact]
    public void The_last_master_leaving_flushes_the_ASID_and_clears_CD_0()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId nic = bed.Fd.BindDevice("nic0");
        HwptId hwpt = bed.Fd.AllocPagingHwpt(nic, vm.Ioas);
        bed.Fd.AttachDevice(nic, hwpt);
        ushort asid = bed.Diag.ReadHostCd("nic0")!.Value.ASID;
        bed.DmaRead("nic0", Iova).Result.IsSuccess.ShouldBeTrue();
        bed.Diag.TlbEntries("smmu0").ShouldContain(e => e.Asid == asid);

        bed.Fd.DetachDevice(nic);

        bed.Diag.TlbEntries("smmu0").ShouldNotContain(e => e.Asid == asid && e.Regime == TlbRegime.NonHyp);
        bed.Diag.ReadHostCd("nic0")!.Value.ShouldBe(default(ContextDescriptor));
        bed.Diag.AsidsInUse.ShouldBe([asid], "the HWPT still exists");
        // Unmapping while nobody is attached invalidates nothing (the ASID is clean already) ...
        long before = bed.Diag.Counters("smmu0").CommandsExecuted;
        bed.Fd.UnmapIoas(vm.Ioas, Iova, TestBed.GuestRamSize);
        bed.Diag.Counters("smmu0").CommandsExecuted.ShouldBe(before);
        // ... and a re-attached device sees the unmap.
        bed.Fd.AttachDevice(nic, hwpt);
        bed.DmaRead("nic0", Iova).Result.Translation.FaultType.ShouldBe(EventType.F_TRANSLATION);
    }

    [Fact]
    public void A_stage_1_domain_belongs_to_its_SMMU_and_cannot_be_a_vIOMMU_parent()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId gpu0 = bed.Fd.BindDevice("gpu0");
        DeviceId gpu1 = bed.Fd.BindDevice("gpu1");
        HwptId onSmmu0 = bed.Fd.AllocPagingHwpt(gpu0, vm.Ioas);
        TestBed.ShouldFail(() => bed.Fd.AttachDevice(gpu1, onSmmu0), Errno.EINVAL);
        TestBed.ShouldFail(() => bed.Fd.AllocViommu(gpu0, onSmmu0, ViommuType.ArmSmmuV3), Errno.EINVAL);
        // Attaching gpu1 to the IOAS makes it a domain of its own SMMU.
        ObjectId auto = bed.Fd.AttachDevice(gpu1, vm.Ioas);
        auto.ShouldNotBe((ObjectId)onSmmu0);
        bed.Diag.AsidsInUse.Count.ShouldBe(2);
    }

    [Fact]
    public void With_a_VHE_kernel_stage_1_domains_live_in_the_EL2_StreamWorld()
    {
        using var bed = new TestBed(Small(f => f with { Hyp = true }), new EmulatedHostOptions { KernelAtEl2WithVhe = true });
        Vm vm = bed.CreateVm();
        ulong extraIova = vm.MapExtraPage(out _);
        DeviceId nic = bed.Fd.BindDevice("nic0");
        bed.Fd.AttachDevice(nic, vm.Ioas);
        StreamTableEntry ste = bed.Diag.ReadSte("nic0");
        (ste.Config, ste.STRW).ShouldBe((SteConfig.Stage1, 2u), "STRW = EL2 (arm_smmu_make_cdtable_ste with ARM_SMMU_FEAT_E2H)");
        ushort asid = bed.Diag.ReadHostCd("nic0")!.Value.ASID;
        bed.DmaRead("nic0", extraIova).Result.IsSuccess.ShouldBeTrue();
        bed.Diag.TlbEntries("smmu0").ShouldContain(e => e.Regime == TlbRegime.El2 && e.Asid == asid);

        bed.Fd.UnmapIoas(vm.Ioas, extraIova, TestBed.Page);

        Command tlbi = bed.Host.FindSmmu("smmu0")!.LastCommands(2)[0];
        (tlbi.Opcode, tlbi.ASID, tlbi.Address).ShouldBe((CommandOpcode.TLBI_EL2_VA, asid, extraIova));
        bed.DmaRead("nic0", extraIova).Result.Translation.FaultType.ShouldBe(EventType.F_TRANSLATION);
        bed.Fd.DetachDevice(nic);
        Command flush = bed.Host.FindSmmu("smmu0")!.LastCommands(6)[0]; // then CD 0 is cleared
        (flush.Opcode, flush.ASID).ShouldBe((CommandOpcode.TLBI_EL2_ASID, asid));
    }
}

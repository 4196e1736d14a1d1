using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// IOAS mappings, paging HWPTs as real tables (stage 1 unless a nest parent, as arm-smmu-v3
/// chooses), attach/detach and their invalidation.
/// </summary>
public sealed class IoasAndPagingTests
{
    private const ulong Iova = TestBed.GuestRamBase;

    [Fact]
    public void IOAS_map_and_unmap_follow_the_kernel_errno()
    {
        using var bed = new TestBed();
        IIommufd fd = bed.Fd;
        HostMemoryRegion ram = fd.AllocateHostMemory(4 * TestBed.Page, "ram");
        IoasId ioas = fd.AllocIoas();

        TestBed.ShouldFail(() => fd.MapIoas(ioas, ram, 0, TestBed.Page, Iova, (IoasMapFlags)(1u << 8)), Errno.EOPNOTSUPP);
        TestBed.ShouldFail(() => fd.MapIoas(ioas, ram, 0, TestBed.Page, Iova, IoasMapFlags.None), Errno.EINVAL);
        TestBed.ShouldFail(() => fd.MapIoas(ioas, ram, 0, TestBed.Page, ulong.MaxValue), Errno.EOVERFLOW);
        TestBed.ShouldFail(() => fd.MapIoas(ioas, ram, 0, TestBed.Page, ulong.MaxValue - TestBed.Page + 2), Errno.EOVERFLOW);
        // Without a domain the IOAS has no alignment (iopt_init_table), as on the real kernel
        // (tests/vectors/real-kernel); the first domain would refuse the odd mapping.
        fd.MapIoas(ioas, ram, 0, TestBed.Page, Iova + 1).ShouldBe(Iova + 1);
        fd.UnmapIoas(ioas, Iova + 1, TestBed.Page).ShouldBe(TestBed.Page);
        TestBed.ShouldFail(() => fd.MapIoas(ioas, ram, 0, 0, Iova), Errno.EINVAL);
        TestBed.ShouldFail(() => fd.MapIoas(new IoasId(99), ram, 0, TestBed.Page, Iova), Errno.ENOENT);
        TestBed.ShouldFail(() => fd.MapIoas(ioas, ram, 0, 5 * TestBed.Page, Iova), Errno.EFAULT);

        fd.MapIoas(ioas, ram, 0, 2 * TestBed.Page, Iova).ShouldBe(Iova);
        TestBed.ShouldFail(() => fd.MapIoas(ioas, ram, 0, TestBed.Page, Iova + TestBed.Page), Errno.EEXIST);
        TestBed.ShouldFail(() => fd.UnmapIoas(ioas, Iova, TestBed.Page), Errno.ENOENT); // a split of a mapping
        TestBed.ShouldFail(() => fd.UnmapIoas(ioas, Iova + 16 * TestBed.Page, TestBed.Page), Errno.ENOENT);
        TestBed.ShouldFail(() => fd.UnmapIoas(ioas, Iova, 0), Errno.EINVAL);
        fd.UnmapIoas(ioas, 0, ulong.MaxValue).ShouldBe(2 * TestBed.Page);
        fd.UnmapIoas(ioas, 0, ulong.MaxValue).ShouldBe(0UL, "unmap-all of an empty IOAS succeeds");
        fd.Destroy(ioas);
        TestBed.ShouldFail(() => fd.Destroy(ioas), Errno.ENOENT);
    }

    [Fact]
    public void An_unmap_that_cuts_an_area_fails_after_removing_the_whole_areas_before_it()
    {
        // iopt_unmap_iova_range walks the areas in IOVA order and stops at the first one the
        // range only partly covers (ENOENT); the ones before it are already gone.
        using var bed = new TestBed();
        IIommufd fd = bed.Fd;
        HostMemoryRegion ram = fd.AllocateHostMemory(8 * TestBed.Page, "ram");
        IoasId ioas = fd.AllocIoas();
        fd.MapIoas(ioas, ram, 0, TestBed.Page, Iova);
        fd.MapIoas(ioas, ram, TestBed.Page, 2 * TestBed.Page, Iova + TestBed.Page);
        fd.MapIoas(ioas, ram, 4 * TestBed.Page, TestBed.Page, Iova + 4 * TestBed.Page);
        TestBed.ShouldFail(() => fd.UnmapIoas(ioas, Iova, 2 * TestBed.Page), Errno.ENOENT);
        TestBed.ShouldFail(() => fd.UnmapIoas(ioas, Iova, TestBed.Page), Errno.ENOENT); // the first area went with the failed call
        fd.UnmapIoas(ioas, Iova, 5 * TestBed.Page).ShouldBe(3 * TestBed.Page);
        fd.UnmapIoas(ioas, 0, ulong.MaxValue).ShouldBe(0UL);
    }

    [Fact]
    public void A_region_of_another_backend_is_EFAULT()
    {
        using var bed = new TestBed();
        using var other = new TestBed();
        HostMemoryRegion foreign = other.Fd.AllocateHostMemory(TestBed.Page, "foreign");
        TestBed.ShouldFail(() => bed.Fd.MapIoas(bed.Fd.AllocIoas(), foreign, 0, TestBed.Page, Iova), Errno.EFAULT);
    }

    [Fact]
    public void The_kernel_picks_naturally_aligned_IOVAs()
    {
        using var bed = new TestBed();
        HostMemoryRegion ram = bed.Fd.AllocateHostMemory(16 * TestBed.Page, "ram");
        IoasId ioas = bed.Fd.AllocIoas();
        ulong a = bed.Fd.MapIoas(ioas, ram, 0, TestBed.Page, null);
        ulong b = bed.Fd.MapIoas(ioas, ram, 4 * TestBed.Page, 4 * TestBed.Page, null);
        ulong c = bed.Fd.MapIoas(ioas, ram, TestBed.Page, TestBed.Page, null);
        (a, b, c).ShouldBe((0UL, 4 * TestBed.Page, TestBed.Page));
        IovaRanges ranges = bed.Fd.GetIovaRanges(ioas);
        ranges.Ranges.ShouldBe([new IovaRange(0, ulong.MaxValue)]);
        ranges.Alignment.ShouldBe(1UL, "no domain yet: no alignment (iopt_init_table)");
    }

    [Fact]
    public void A_paging_HWPT_narrows_the_IOVA_ranges_to_its_input_size()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId dev = bed.Fd.BindDevice("gpu1");
        bed.Fd.AllocPagingHwpt(dev, vm.Ioas);
        bed.Fd.GetIovaRanges(vm.Ioas).Ranges.ShouldBe([new IovaRange(0, (1UL << 48) - 1)],
            "a stage-1 domain takes min(48, VA_BITS) bits of input whatever the SMMU's 44-bit OAS");
        TestBed.ShouldFail(() => bed.Fd.MapIoas(vm.Ioas, vm.Ram, 0, TestBed.Page, 1UL << 48), Errno.EINVAL);
        bed.Fd.MapIoas(vm.Ioas, vm.Ram, 0, TestBed.Page, 1UL << 44).ShouldBe(1UL << 44);
        bed.Fd.UnmapIoas(vm.Ioas, 1UL << 44, TestBed.Page);
        bed.Fd.AllocPagingHwpt(dev, vm.Ioas, HwptAllocFlags.NestParent);
        bed.Fd.GetIovaRanges(vm.Ioas).Ranges.ShouldBe([new IovaRange(0, (1UL << 44) - 1)], "the stage-2 nest parent: smmu1 has a 44-bit IAS");
        // beyond the aperture is a reserved range: iopt_check_iova says EINVAL
        TestBed.ShouldFail(() => bed.Fd.MapIoas(vm.Ioas, vm.Ram, 0, TestBed.Page, 1UL << 44), Errno.EINVAL);
    }

    [Fact]
    public void Attaching_to_the_IOAS_makes_an_automatic_stage_1_domain_and_DMA_lands_in_guest_RAM()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId nic = bed.Fd.BindDevice("nic0");
        vm.WriteGuest(Iova + 0x2000, 0xC0FFEE);

        ObjectId hwpt = bed.Fd.AttachDevice(nic, vm.Ioas);

        hwpt.ShouldNotBe((ObjectId)vm.Ioas);
        // arm_smmu_make_cdtable_ste: S1 translate through a one-CD linear table (nic0 has no PASID), S1DSS = SSID0
        StreamTableEntry ste = bed.Diag.ReadSte("nic0");
        (ste.Config, ste.S1Fmt, ste.S1CDMax, ste.S1DSS, ste.S2VMID, ste.EATS, ste.STRW).ShouldBe((SteConfig.Stage1, 0u, 0u, 2u, (ushort)0, 0u, 0u));
        // arm_smmu_make_s1_cd: the kernel's ASID, 48-bit input, 48-bit IPS (smmu0's OAS), coherent walks, io-pgtable's MAIR
        ContextDescriptor cd = bed.Diag.ReadHostCd("nic0")!.Value;
        ste.S1ContextPtr.ShouldBe(bed.Host.FindDevice("nic0")!.Master.CdTable!.BaseAddress);
        (cd.V, cd.ASID, cd.T0SZ, cd.TG0, cd.IPS, cd.IR0, cd.OR0, cd.SH0, cd.EPD1, cd.AA64, cd.ASET, cd.R, cd.A)
            .ShouldBe((true, (ushort)1, 16u, 0u, 5u, 1u, 1u, 3u, true, true, true, true, true));
        cd.W3.ShouldBe(0xF404FF44UL, "MAIR: NC, WBRWA, Device-nGnRE, INC_OWBRWA (io-pgtable-arm)");
        (cd.TTB0 & (TestBed.Page - 1)).ShouldBe(0UL);
        bed.Diag.AsidsInUse.ShouldBe([(ushort)1]);
        bed.Diag.Smmu("smmu0").VmidsInUse.ShouldBeEmpty("a stage-1 domain needs no VMID");
        var (r, value) = bed.DmaRead("nic0", Iova + 0x2000);
        r.Translation.PhysicalAddress.ShouldBe(vm.HostPa(Iova + 0x2000));
        value.ShouldBe(0xC0FFEEUL);
        TestBed.ShouldFail(() => bed.Fd.Destroy(vm.Ioas), Errno.EBUSY);
        TestBed.ShouldFail(() => bed.Fd.Destroy(hwpt), Errno.EBUSY);

        // A second device on the same SMMU shares the automatic domain.
        DeviceId gpu = bed.Fd.BindDevice("gpu0");
        bed.Fd.AttachDevice(gpu, vm.Ioas).ShouldBe(hwpt);
        bed.Diag.ReadSte("gpu0").EATS.ShouldBe(ArmSmmuDeviceEatsTrans, "gpu0 is ATS capable");
        bed.Diag.AtsEnabled("gpu0").ShouldBeTrue();

        // Detaching the last device destroys the automatic HWPT (its ID is free again).
        bed.Fd.DetachDevice(nic);
        bed.Fd.DetachDevice(gpu);
        bed.Fd.DetachDevice(nic);
        bed.Diag.ReadSte("nic0").Config.ShouldBe(SteConfig.Abort);
        bed.Diag.ReadHostCd("nic0")!.Value.V.ShouldBeFalse("arm_smmu_attach_dev_ste clears CD 0");
        bed.Diag.AsidsInUse.ShouldBeEmpty();
        bed.Fd.AllocIoas().Value.ShouldBe(hwpt.Value);
    }

    private const uint ArmSmmuDeviceEatsTrans = 1;

    [Fact]
    public void Unmapping_invalidates_the_stage_2_TLB_and_later_DMA_faults_at_stage_2()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        ulong extraIova = vm.MapExtraPage(out _);
        DeviceId nic = bed.Fd.BindDevice("nic0");
        // a nest parent is the stage-2 paging domain a device can be attached to directly
        bed.Fd.AttachDevice(nic, bed.Fd.AllocPagingHwpt(nic, vm.Ioas, HwptAllocFlags.NestParent));
        bed.DmaRead("nic0", extraIova).Result.IsSuccess.ShouldBeTrue();
        bed.DmaRead("nic0", Iova).Result.IsSuccess.ShouldBeTrue();
        bed.Diag.TlbEntries("smmu0").Count(e => e.Regime == TlbRegime.Stage2).ShouldBe(2);
        long s2ipa = bed.Diag.Counters("smmu0").CommandsExecuted;

        bed.Fd.UnmapIoas(vm.Ioas, extraIova, TestBed.Page);

        bed.Diag.TlbEntries("smmu0").ShouldNotContain(e => e.InputBase == extraIova);
        bed.Diag.TlbEntries("smmu0").ShouldContain(e => e.InputBase == Iova, "only the unmapped range is invalidated");
        (bed.Diag.Counters("smmu0").CommandsExecuted - s2ipa).ShouldBe(3, "TLBI_S2_IPA, TLBI_NH_ALL (nest parent) + CMD_SYNC");
        var (r, _) = bed.DmaRead("nic0", extraIova);
        (r.Translation.FaultType, r.Translation.Stage, r.Translation.Event.S2).ShouldBe((EventType.F_TRANSLATION, 2, true));
    }

    [Fact]
    public void Large_unmaps_without_range_invalidation_flush_the_whole_VMID()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId nic = bed.Fd.BindDevice("nic1"); // smmu1: no RIL
        bed.Fd.AttachDevice(nic, bed.Fd.AllocPagingHwpt(nic, vm.Ioas, HwptAllocFlags.NestParent));
        long before = bed.Diag.Counters("smmu1").CommandsExecuted;
        bed.Fd.UnmapIoas(vm.Ioas, Iova, TestBed.GuestRamSize);
        (bed.Diag.Counters("smmu1").CommandsExecuted - before).ShouldBe(3, "TLBI_S12_VMALL, TLBI_NH_ALL + CMD_SYNC instead of 4096 TLBI_S2_IPA");
    }

    [Fact]
    public void A_paging_HWPT_mirrors_existing_and_later_mappings()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId gpu = bed.Fd.BindDevice("gpu1");
        HwptId hwpt = bed.Fd.AllocPagingHwpt(gpu, vm.Ioas);
        HostMemoryRegion later = bed.Fd.AllocateHostMemory(TestBed.Page, "later");
        later.Write(8, [0x5A]);
        bed.Fd.MapIoas(vm.Ioas, later, 0, TestBed.Page, 0x1_0000_0000, IoasMapFlags.Readable);
        bed.Fd.AttachDevice(gpu, hwpt).ShouldBe((ObjectId)hwpt);

        var (r, value) = bed.DmaRead("gpu1", 0x1_0000_0008);
        (r.IsSuccess, value & 0xFF).ShouldBe((true, 0x5AUL));
        Span<byte> b = stackalloc byte[8];
        Hardware.Pci.DmaResult w = bed.Diag.Dma("gpu1", 0x1_0000_0008, AccessKind.Write, b);
        (w.Translation.FaultType, w.Translation.Stage).ShouldBe((EventType.F_PERMISSION, 1), "mapped read-only (AP[2] of a stage-1 page)");
    }

    [Fact]
    public void Paging_flag_checks()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        DeviceId gpu = bed.Fd.BindDevice("gpu0");
        TestBed.ShouldFail(() => bed.Fd.AllocPagingHwpt(gpu, vm.Ioas, HwptAllocFlags.DirtyTracking), Errno.EOPNOTSUPP);
        TestBed.ShouldFail(() => bed.Fd.AllocPagingHwpt(gpu, vm.Ioas, (HwptAllocFlags)(1u << 9)), Errno.EOPNOTSUPP);
        TestBed.ShouldFail(() => bed.Fd.AllocHwpt(gpu, vm.Ioas, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, new byte[16]), Errno.EOPNOTSUPP);
        TestBed.ShouldFail(() => bed.Fd.AllocHwpt(gpu, vm.Ioas, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, []), Errno.EINVAL);
        TestBed.ShouldFail(() => bed.Fd.AllocHwpt(gpu, new ObjectId(99), HwptAllocFlags.None, HwptDataType.None, []), Errno.EINVAL);
        bed.Fd.AllocPagingHwpt(gpu, vm.Ioas, HwptAllocFlags.Pasid);
    }

    [Fact]
    public void Stage_2_tables_use_blocks_when_aligned_and_free_their_pages()
    {
        var memory = new SparseMemory();
        var allocator = new HostMemoryAllocator(memory, 0x8000_0000, 0x4000_0000);
        LpaePageTable table = LpaePageTable.TryCreate(allocator, memory, LpaeFormat.Stage2, 48, 48, "test")!;
        (table.StartLevel, table.ConcatLog2, table.T0sz, table.Sl0).ShouldBe((0, 0, 16u, 2u));
        ulong baseline = allocator.BytesAllocated;

        const ulong twoMiB = 0x20_0000;
        table.Map(0x4000_0000, 0x9000_0000, twoMiB + 0x1000, read: true, write: true).ShouldBe(Errno.None);
        table.LeafCount.ShouldBe(2, "one 2 MiB block and one 4 KiB page");
        table.Lookup(0x4012_3456).ShouldBe(0x9012_3456UL);
        table.Lookup(0x4020_0FFF).ShouldBe(0x9020_0FFFUL);
        table.Lookup(0x4020_1000).ShouldBeNull();

        table.Unmap(0x4000_0000, twoMiB + 0x1000);
        table.LeafCount.ShouldBe(0);
        table.TablePages.ShouldBe(0);
        allocator.BytesAllocated.ShouldBe(baseline);
        table.Map(0x1000, 0x1000, 0x1000, true, true).ShouldBe(Errno.None, "outside the host window is still a valid PA");
        table.Map(1UL << 48, 0x9000_0000, 0x1000, true, true).ShouldBe(Errno.EINVAL);
        table.Destroy();
        allocator.BytesAllocated.ShouldBe(0UL);
    }

    [Theory]
    [InlineData(48, 0, 0)]
    [InlineData(44, 0, 0)]
    [InlineData(43, 1, 4)]
    [InlineData(40, 1, 1)]
    [InlineData(39, 1, 0)]
    [InlineData(32, 2, 2)]
    public void Stage_2_start_level_concatenates_up_to_16_tables(int ias, int start, int concatLog2)
    {
        var memory = new SparseMemory();
        var allocator = new HostMemoryAllocator(memory, 0, 0x100_0000);
        LpaePageTable table = LpaePageTable.TryCreate(allocator, memory, LpaeFormat.Stage2, ias, 48, "test")!;
        (table.StartLevel, table.ConcatLog2).ShouldBe((start, concatLog2));
        table.Map(0x1000, 0x2000, 0x1000, true, false).ShouldBe(Errno.None);
        table.Lookup(0x1010).ShouldBe(0x2010UL);
    }

    [Fact]
    public void Raw_IOVA_ranges_report_EMSGSIZE_with_the_count_when_the_array_is_short()
    {
        using var bed = new TestBed();
        IoasId ioas = bed.Fd.AllocIoas();
        var a = IommufdMarshal.IoasIovaRanges(ioas, 0, 0);
        bed.Fd.Ioctl((uint)IommufdIoctl.IoasIovaRanges, IommufdMarshal.AsBytes(ref a)).ShouldBe(-(int)Errno.EMSGSIZE);
        (a.NumIovas, a.OutIovaAlignment).ShouldBe((1u, 1UL), "no domain yet: no alignment (iopt_init_table)");
    }
}

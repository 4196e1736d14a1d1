using System.Buffers.Binary;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// The kernel selftest scenarios (tools/testing/selftests/iommu/iommufd.c,
/// iommufd_viommu fixture and friends), ported to the emulated kernel with the SMMUv3 types and
/// the same errno. The selftest runs them against its mock driver; where the mock's behaviour is
/// its own (entry flags, cache IDs) the port says so and checks what arm-smmu-v3 does instead.
/// Scenarios needing the mock's vIOMMU features (driver data echo, an mmap page, HW queues) use
/// the kernel-internal selftest type (<see cref="SelftestTypes"/>); the few needing a NULL user
/// pointer go through the raw <see cref="EmulatedIommufd.Ioctl"/>.
/// </summary>
public sealed class SelftestScenarioTests
{
    private const ulong VirtId = 0x99;
    private const ushort Asid = 7;
    private const ulong Va = 0x1000_0000;
    private const ulong UnmappedVa = 0x3000_0000;
    private const ulong DataIpa = TestBed.GuestRamBase + 0x1_0000;

    /// <summary>The viommu fixture: gpu0 bound, a nest parent on the IOAS, an SMMUv3 vIOMMU (or the selftest type).</summary>
    private static (TestBed Bed, Vm Vm, DeviceId Dev, HwptId Parent, ViommuId Viommu) Fixture(ViommuType type = ViommuType.ArmSmmuV3)
    {
        var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (dev, parent, viommu) = bed.NestedSetup(vm, "gpu0", type);
        return (bed, vm, dev, parent, viommu);
    }

    private static readonly ViommuType SelftestViommu = (ViommuType)SelftestTypes.ViommuTypeSelftest;
    private static readonly HwQueueType SelftestQueue = (HwQueueType)SelftestTypes.HwQueueTypeSelftest;

    /// <summary>A guest that translates <see cref="Va"/>, attached to a nested HWPT; DMA elsewhere faults.</summary>
    private static HwptId AttachTranslating(TestBed bed, Vm vm, DeviceId dev, ViommuId viommu)
    {
        GuestAddressSpace s1 = vm.CreateAddressSpace(Asid);
        s1.Map(Va, DataIpa);
        HwptId nested = bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(vm.WriteCdTable(s1.Cd)));
        bed.Fd.AttachDevice(dev, nested);
        return nested;
    }

    [Fact]
    public void S01_closing_the_fd_with_every_object_alive_tears_down_cleanly()
    {
        var bed = new TestBed();
        ulong baseline = bed.Diag.HostMemoryAllocated;
        Vm vm = bed.CreateVm();
        var (dev, _, viommu) = bed.NestedSetup(vm, "gpu0", SelftestViommu);
        bed.Fd.AllocVdevice(viommu, dev, VirtId);
        AttachTranslating(bed, vm, dev, viommu);
        IVeventQueue reader = bed.Fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, 2);
        bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, TestBed.GuestRamBase, TestBed.Page);
        DeviceId nic = bed.Fd.BindDevice("nic0");
        bed.Fd.AttachDevice(nic, vm.Ioas);
        bed.Diag.Smmu("smmu0").VmidsInUse.Count.ShouldBe(1, "the vIOMMU's; nic0's automatic domain is stage 1");
        bed.Diag.AsidsInUse.ShouldBe([(ushort)1]);

        bed.Fd.Dispose();

        bed.Diag.ReadSte("gpu0").Config.ShouldBe(SteConfig.Abort);
        bed.Diag.ReadSte("nic0").Config.ShouldBe(SteConfig.Abort);
        bed.Diag.Smmu("smmu0").VmidsInUse.ShouldBeEmpty();
        bed.Diag.AsidsInUse.ShouldBeEmpty();
        Should.Throw<ObjectDisposedException>(() => reader.Read());
        vm.Ram.Dispose();
        bed.Diag.CdTableBytes.ShouldBe(TestBed.Page, "nic0's one-CD table stays for the device's life");
        bed.Diag.HostMemoryHeldForContexts.ShouldBe(baseline, "every other kernel table and the guest RAM went back");
        // The devices are free for another context.
        using EmulatedIommufd again = bed.Host.Open();
        again.BindDevice("gpu0").Value.ShouldBe(1u);
    }

    [Fact]
    public void S02_vIOMMU_on_hwpt_id_0_is_ENOENT()
    {
        var (bed, _, dev, _, _) = Fixture();
        using (bed) TestBed.ShouldFail(() => bed.Fd.AllocViommu(dev, new HwptId(0), ViommuType.ArmSmmuV3), Errno.ENOENT);
    }

    [Fact]
    public void S03_vIOMMU_on_a_parent_that_is_not_a_nest_parent_is_EINVAL()
    {
        var (bed, vm, dev, _, _) = Fixture();
        using (bed)
        {
            HwptId plain = bed.Fd.AllocPagingHwpt(dev, vm.Ioas);
            TestBed.ShouldFail(() => bed.Fd.AllocViommu(dev, plain, ViommuType.ArmSmmuV3), Errno.EINVAL);
        }
    }

    [Fact]
    public void S04_an_unknown_vIOMMU_type_is_EOPNOTSUPP()
    {
        var (bed, _, dev, parent, _) = Fixture();
        using (bed)
        {
            TestBed.ShouldFail(() => bed.Fd.AllocViommu(dev, parent, (ViommuType)0xdead), Errno.EOPNOTSUPP);
            // TEGRA241_CMDQV needs a CMDQV beside the device's SMMU: smmu1 has none.
            DeviceId gpu1 = bed.Fd.BindDevice("gpu1");
            HwptId parent1 = bed.Fd.AllocPagingHwpt(gpu1, bed.Fd.AllocIoas(), HwptAllocFlags.NestParent);
            TestBed.ShouldFail(() => bed.Fd.AllocViommu(gpu1, parent1, ViommuType.Tegra241Cmdqv, new byte[16]), Errno.EOPNOTSUPP);
            // DEFAULT is refused before anything else.
            TestBed.ShouldFail(() => bed.Fd.AllocViommu(new DeviceId(0), parent, ViommuType.Default), Errno.EOPNOTSUPP);
        }
        using var plainKernel = new TestBed(selftest: false);
        Vm vm2 = plainKernel.CreateVm();
        DeviceId d = plainKernel.Fd.BindDevice("gpu0");
        HwptId p = plainKernel.Fd.AllocPagingHwpt(d, vm2.Ioas, HwptAllocFlags.NestParent);
        TestBed.ShouldFail(() => plainKernel.Fd.AllocViommu(d, p, SelftestViommu), Errno.EOPNOTSUPP);
    }

    [Fact]
    public void S05_the_parent_and_a_vIOMMU_with_a_nested_HWPT_cannot_be_destroyed()
    {
        var (bed, _, dev, parent, viommu) = Fixture();
        using (bed)
        {
            HwptId nested = bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.AbortVste);
            TestBed.ShouldFail(() => bed.Fd.Destroy(parent), Errno.EBUSY);
            TestBed.ShouldFail(() => bed.Fd.Destroy(viommu), Errno.EBUSY);
            bed.Fd.Destroy(nested);
            bed.Fd.Destroy(viommu);
            bed.Fd.Destroy(parent);
        }
    }

    [Fact]
    public void S06_vIOMMU_without_a_device_is_ENOENT()
    {
        var (bed, _, _, parent, _) = Fixture();
        using (bed) TestBed.ShouldFail(() => bed.Fd.AllocViommu(new DeviceId(0), parent, ViommuType.ArmSmmuV3), Errno.ENOENT);
    }

    [Fact]
    public void S07_nested_HWPT_with_a_missing_fault_queue_is_ENOENT_and_an_unknown_flag_EOPNOTSUPP()
    {
        var (bed, _, dev, _, viommu) = Fixture();
        using (bed)
        {
            byte[] vste = TestBed.AbortVste.ToBytes();
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, viommu, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, vste, faultId: uint.MaxValue), Errno.ENOENT);
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, viommu, (HwptAllocFlags)(1u << 31), HwptDataType.ArmSmmuV3, vste, faultId: uint.MaxValue), Errno.EOPNOTSUPP);
            // The aborted HWPT's ID went back: the next object gets it.
            HwptId next = bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.AbortVste);
            next.Value.ShouldBe(viommu.Value + 1);
        }
    }

    [Fact]
    public void S08_attaching_a_translating_nested_HWPT_needs_a_vDEVICE_first_and_then_the_HWPT_is_busy()
    {
        var (bed, vm, dev, _, viommu) = Fixture();
        using (bed)
        {
            GuestAddressSpace s1 = vm.CreateAddressSpace(Asid);
            HwptId nested = bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.TranslateVste(vm.WriteCdTable(s1.Cd)));
            TestBed.ShouldFail(() => bed.Fd.AttachDevice(dev, nested), Errno.ENOENT);
            bed.Diag.ReadSte("gpu0").Config.ShouldBe(SteConfig.Abort);

            bed.Fd.AllocVdevice(viommu, dev, VirtId);
            bed.Fd.AttachDevice(dev, nested).ShouldBe((ObjectId)nested);
            bed.Diag.ReadSte("gpu0").Config.ShouldBe(SteConfig.Nested);
            TestBed.ShouldFail(() => bed.Fd.Destroy(nested), Errno.EBUSY);

            // Abort and bypass vSTEs attach without a vDEVICE (the GBPA case).
            DeviceId nic = bed.Fd.BindDevice("nic0");
            bed.Fd.AttachDevice(nic, bed.Fd.AllocNestedHwpt(nic, viommu, TestBed.BypassVste));
            bed.Diag.ReadSte("nic0").Config.ShouldBe(SteConfig.Stage2);
        }
    }

    [Fact]
    public void S09_vIOMMU_driver_data_is_echoed_back()
    {
        var (bed, _, dev, parent, _) = Fixture();
        using (bed)
        {
            ViommuAllocation a = bed.Fd.AllocViommu(dev, parent, SelftestViommu, SelftestTypes.ViommuData(0xbeef));
            var (outData, offset, length) = SelftestTypes.ParseViommuData(a.Data.Span);
            outData.ShouldBe(0xbeefu);
            offset.ShouldBeGreaterThanOrEqualTo(EmulatedIommufd.PageSize, "mmap offsets start at one page");
            length.ShouldBe(SelftestTypes.ViommuMmapPages * EmulatedIommufd.PageSize);
        }
    }

    [Fact]
    public void S10_mmap_at_a_wrong_offset_or_length_is_ENXIO()
    {
        var (bed, _, dev, parent, _) = Fixture();
        using (bed)
        {
            var (_, offset, length) = SelftestTypes.ParseViommuData(bed.Fd.AllocViommu(dev, parent, SelftestViommu, SelftestTypes.ViommuData(0xbeef)).Data.Span);
            TestBed.ShouldFail(() => bed.Fd.Mmap(offset + EmulatedIommufd.PageSize, length), Errno.ENXIO);
            TestBed.ShouldFail(() => bed.Fd.Mmap(offset + 2 * EmulatedIommufd.PageSize, length), Errno.ENXIO);
            TestBed.ShouldFail(() => bed.Fd.Mmap(offset, length / 2), Errno.ENXIO);
            TestBed.ShouldFail(() => bed.Fd.Mmap(offset, length * 2), Errno.ENXIO);
            TestBed.ShouldFail(() => bed.Fd.Mmap(offset + 100, length), Errno.EINVAL);
            TestBed.ShouldFail(() => bed.Fd.Mmap(offset, 0), Errno.EINVAL);
            // mmap(2) rounds the length up to whole pages before iommufd sees it.
            TestBed.ShouldFail(() => bed.Fd.Mmap(offset, 100), Errno.ENXIO);
            bed.Fd.Mmap(offset, length - 100).Dispose();

            using IMmioMapping page = bed.Fd.Mmap(offset, length);
            page.Read32(0).ShouldBe(0xbeefu, "the loopback page holds in_data");
        }
    }

    [Fact]
    public void S11_a_vIOMMU_whose_page_is_mapped_cannot_be_destroyed()
    {
        var (bed, _, dev, parent, _) = Fixture();
        using (bed)
        {
            ViommuAllocation a = bed.Fd.AllocViommu(dev, parent, SelftestViommu, SelftestTypes.ViommuData(0xbeef));
            var (_, offset, length) = SelftestTypes.ParseViommuData(a.Data.Span);
            IMmioMapping page = bed.Fd.Mmap(offset, length);
            TestBed.ShouldFail(() => bed.Fd.Destroy(a.Id), Errno.EBUSY);
            page.Dispose();
            bed.Fd.Destroy(a.Id);
            TestBed.ShouldFail(() => bed.Fd.Mmap(offset, length), Errno.ENXIO);
        }
    }

    [Fact]
    public void S12_a_second_vEVENTQ_of_the_same_type_is_EEXIST()
    {
        var (bed, _, _, _, viommu) = Fixture();
        using (bed)
        {
            using IVeventQueue q = bed.Fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, 2);
            TestBed.ShouldFail(() => bed.Fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, 2), Errno.EEXIST);
            // Another type is a different queue (the core accepts any non-zero type).
            using IVeventQueue other = bed.Fd.AllocVeventq(viommu, VeventqType.Tegra241Cmdqv, 2);
            TestBed.ShouldFail(() => bed.Fd.AllocVeventq(viommu, VeventqType.Default, 2), Errno.EOPNOTSUPP);
            TestBed.ShouldFail(() => bed.Fd.AllocVeventq(viommu, (VeventqType)7, 0), Errno.EINVAL);
            TestBed.ShouldFail(() => bed.Fd.AllocVeventq(new ViommuId(99), (VeventqType)7, 2), Errno.ENOENT);
            TestBed.ShouldFail(() => bed.Fd.Destroy(q.Id), Errno.EBUSY);
        }
    }

    [Fact]
    public void S13_one_event_reads_back_with_the_virtual_id_and_sequence_0()
    {
        var (bed, vm, dev, _, viommu) = Fixture();
        using (bed)
        {
            bed.Fd.AllocVdevice(viommu, dev, VirtId);
            using IVeventQueue q = bed.Fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, 2);
            AttachTranslating(bed, vm, dev, viommu);

            bed.DmaRead("gpu0", UnmappedVa).Result.IsSuccess.ShouldBeFalse();

            IReadOnlyList<Vevent> events = q.Read();
            events.Count.ShouldBe(1);
            events[0].LostEvents.ShouldBeFalse();
            events[0].Sequence.ShouldBe(0u);
            events[0].AsArmSmmuV3().Sid.ShouldBe((uint)VirtId);
            q.HasEvents.ShouldBeFalse();
        }
    }

    [Fact]
    public void S14_a_second_vDEVICE_for_the_same_device_is_EEXIST()
    {
        var (bed, _, dev, _, viommu) = Fixture();
        using (bed)
        {
            VdeviceId v = bed.Fd.AllocVdevice(viommu, dev, VirtId);
            TestBed.ShouldFail(() => bed.Fd.AllocVdevice(viommu, dev, VirtId + 1), Errno.EEXIST);
            DeviceId nic = bed.Fd.BindDevice("nic0");
            TestBed.ShouldFail(() => bed.Fd.AllocVdevice(viommu, nic, VirtId), Errno.EEXIST);
            DeviceId otherSmmu = bed.Fd.BindDevice("gpu1");
            TestBed.ShouldFail(() => bed.Fd.AllocVdevice(viommu, otherSmmu, 0x42), Errno.EINVAL);
            TestBed.ShouldFail(() => bed.Fd.AllocVdevice(new ViommuId(999), nic, 0x42), Errno.ENOENT);
            bed.Fd.Destroy(v);
            bed.Fd.AllocVdevice(viommu, dev, VirtId);
        }
    }

    [Fact]
    public void S15_a_full_queue_reports_a_lost_events_header_then_continues_the_sequence()
    {
        var (bed, vm, dev, _, viommu) = Fixture();
        using (bed)
        {
            bed.Fd.AllocVdevice(viommu, dev, VirtId);
            using IVeventQueue q = bed.Fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, depth: 2);
            AttachTranslating(bed, vm, dev, viommu);
            void Fault(int n)
            {
                for (int i = 0; i < n; i++) bed.DmaRead("gpu0", UnmappedVa + (ulong)i * TestBed.Page);
            }

            Fault(1);
            q.Read().Single().Sequence.ShouldBe(0u);

            Fault(3);
            IReadOnlyList<Vevent> events = q.ReadAll();
            events.Select(e => (e.Sequence, e.LostEvents)).ShouldBe([(1u, false), (2u, false), (3u, true)]);
            events[2].Data.Length.ShouldBe(0);

            Fault(1);
            Vevent last = q.Read().Single();
            (last.Sequence, last.LostEvents).ShouldBe((4u, false));
            last.AsArmSmmuV3().Sid.ShouldBe((uint)VirtId);
        }
    }

    [Fact]
    public void S15b_a_normal_event_behind_the_lost_header_removes_it_leaving_a_sequence_gap()
    {
        var (bed, vm, dev, _, viommu) = Fixture();
        using (bed)
        {
            bed.Fd.AllocVdevice(viommu, dev, VirtId);
            using IVeventQueue q = bed.Fd.AllocVeventq(viommu, VeventqType.ArmSmmuV3, depth: 1);
            AttachTranslating(bed, vm, dev, viommu);
            bed.DmaRead("gpu0", UnmappedVa);
            bed.DmaRead("gpu0", UnmappedVa + TestBed.Page); // lost: header at seq 1
            // Reading one 40-byte record leaves the header; the next event then replaces it.
            q.Read(maxBytes: 40).Single().Sequence.ShouldBe(0u);
            bed.DmaRead("gpu0", UnmappedVa + 2 * TestBed.Page);
            q.ReadAll().Select(e => (e.Sequence, e.LostEvents)).ShouldBe([(2u, false)]);
        }
    }

    [Fact]
    public void S16_invalidating_with_zero_entries()
    {
        // The mock driver accepts an empty array (0, entry_num 0). arm-smmu-v3 copies the whole
        // array with iommu_copy_struct_from_full_user_array, which refuses entry_num 0: EINVAL,
        // entry_num still 0.
        var (bed, _, _, _, viommu) = Fixture();
        using (bed)
        {
            InvalidateResult r = bed.Fd.Invalidate(viommu, HwptInvalidateDataType.ArmSmmuV3, Command.Size, 0, []);
            (r.Error, r.EntriesHandled).ShouldBe((Errno.EINVAL, 0u));
        }
    }

    [Fact]
    public void S17_a_bad_data_type_or_entry_length_handles_nothing()
    {
        var (bed, _, _, _, viommu) = Fixture();
        using (bed)
        {
            byte[] one = TestBed.Commands(Command.TlbiNhAll(0));
            InvalidateResult badType = bed.Fd.Invalidate(viommu, HwptInvalidateDataType.VtdS1, Command.Size, 1, one);
            (badType.Error, badType.EntriesHandled).ShouldBe((Errno.EINVAL, 0u));

            // entry_len = size + 1: copy_struct_from_user accepts a longer entry whose extra byte
            // is zero and refuses (E2BIG) one whose extra byte is not; the mock's EINVAL came from
            // its zeroed entry naming no vDEVICE.
            byte[] longer = new byte[Command.Size + 1];
            one.CopyTo(longer, 0);
            longer[Command.Size] = 0xFF;
            InvalidateResult tooLong = bed.Fd.Invalidate(viommu, HwptInvalidateDataType.ArmSmmuV3, Command.Size + 1, 1, longer);
            (tooLong.Error, tooLong.EntriesHandled).ShouldBe((Errno.E2BIG, 0u));
            longer[Command.Size] = 0;
            bed.Fd.Invalidate(viommu, HwptInvalidateDataType.ArmSmmuV3, Command.Size + 1, 1, longer).Succeeded.ShouldBeTrue();

            // entry_len = 1: the entry is zero-extended; the selftest's zeroed entry is opcode 0,
            // which arm-smmu-v3 refuses with EIO.
            InvalidateResult tiny = bed.Fd.Invalidate(viommu, HwptInvalidateDataType.ArmSmmuV3, 1, 1, [0]);
            (tiny.Error, tiny.EntriesHandled).ShouldBe((Errno.EIO, 0u));
        }
    }

    [Fact]
    public void S18_bad_entry_flags_a_null_pointer_and_entry_len_0()
    {
        var (bed, _, _, _, viommu) = Fixture();
        using (bed)
        {
            // The mock's entries carry flags (0xffffffff: EOPNOTSUPP). An SMMUv3 entry is a
            // command; the driver's refusal of an entry is EIO (here CFGI_STE, not a guest command).
            InvalidateResult refused = bed.Invalidate(viommu, Command.CfgiSte(0x99));
            (refused.Error, refused.EntriesHandled).ShouldBe((Errno.EIO, 0u));

            // data_uptr NULL with entries: EINVAL in the core (raw ioctl: IIommufd has no NULL span).
            var a = IommufdMarshal.HwptInvalidate(viommu, HwptInvalidateDataType.ArmSmmuV3, Command.Size, 1, dataUptr: 0);
            bed.Fd.Ioctl((uint)IommufdIoctl.HwptInvalidate, IommufdMarshal.AsBytes(ref a)).ShouldBe(-(int)Errno.EINVAL);
            a.EntryNum.ShouldBe(0u);

            InvalidateResult zeroLength = bed.Fd.Invalidate(viommu, HwptInvalidateDataType.ArmSmmuV3, 0, 1, new byte[Command.Size]);
            (zeroLength.Error, zeroLength.EntriesHandled).ShouldBe((Errno.EINVAL, 0u));
        }
    }

    [Fact]
    public void S19_an_unknown_vSID_is_an_error()
    {
        var (bed, _, dev, _, viommu) = Fixture();
        using (bed)
        {
            bed.Fd.AllocVdevice(viommu, dev, VirtId);
            InvalidateResult atc = bed.Invalidate(viommu, Command.AtcInv(0x9, null, 0, 52));
            (atc.Error, atc.EntriesHandled).ShouldBe((Errno.EIO, 0u));
            InvalidateResult cfgi = bed.Invalidate(viommu, Command.CfgiCd(0x9, 0));
            (cfgi.Error, cfgi.EntriesHandled).ShouldBe((Errno.EIO, 0u));
            bed.Invalidate(viommu, Command.CfgiCd((uint)VirtId, 0)).Succeeded.ShouldBeTrue();
        }
    }

    [Fact]
    public void S20_two_entries_with_the_second_bad_apply_only_the_first()
    {
        var (bed, vm, dev, _, viommu) = Fixture();
        using (bed)
        {
            bed.Fd.AllocVdevice(viommu, dev, VirtId);
            AttachTranslating(bed, vm, dev, viommu);
            bed.DmaRead("gpu0", Va).Result.IsSuccess.ShouldBeTrue();
            bed.Diag.TlbEntries("smmu0").ShouldContain(e => e.Asid == Asid);
            long executed = bed.Diag.Counters("smmu0").CommandsExecuted;

            InvalidateResult r = bed.Invalidate(viommu, Command.TlbiNhAsid(0, Asid), Command.AtcInv(0x9, null, 0, 52));

            (r.Error, r.EntriesHandled).ShouldBe((Errno.EIO, 1u));
            bed.Diag.TlbEntries("smmu0").ShouldNotContain(e => e.Asid == Asid, "the first command ran");
            (bed.Diag.Counters("smmu0").CommandsExecuted - executed).ShouldBe(2, "TLBI_NH_ASID and its CMD_SYNC, nothing else");
        }
    }

    [Fact]
    public void S21_HW_queue_argument_checks()
    {
        var (bed, _, _, _, viommu) = Fixture(SelftestViommu);
        using (bed)
        {
            ulong unmapped = TestBed.GuestRamBase + TestBed.GuestRamSize;
            TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, HwQueueType.Default, 0, TestBed.GuestRamBase, TestBed.Page), Errno.EOPNOTSUPP);
            TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, TestBed.GuestRamBase, 0), Errno.EINVAL);
            TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, ulong.MaxValue, TestBed.Page), Errno.EOVERFLOW);
            TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, unmapped, TestBed.Page), Errno.ENOENT);
            // A type the vIOMMU does not support (TEGRA241_CMDQV on a non-CMDQV vIOMMU).
            TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, HwQueueType.Tegra241Cmdqv, 0, TestBed.GuestRamBase, TestBed.Page), Errno.EOPNOTSUPP);
        }
        var (plain, _, _, _, armViommu) = Fixture();
        using (plain)
            TestBed.ShouldFail(() => plain.Fd.AllocHwQueue(armViommu, SelftestQueue, 0, TestBed.GuestRamBase, TestBed.Page), Errno.EOPNOTSUPP);
    }

    [Fact]
    public void S22_HW_queue_indexes_go_up_from_0_below_the_maximum()
    {
        var (bed, _, _, _, viommu) = Fixture(SelftestViommu);
        using (bed)
        {
            TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, SelftestQueue, 1, TestBed.GuestRamBase, TestBed.Page), Errno.EIO);
            TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, SelftestQueue, SelftestTypes.HwQueueMax, TestBed.GuestRamBase, TestBed.Page), Errno.EINVAL);
            bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, TestBed.GuestRamBase, TestBed.Page);
            TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, TestBed.GuestRamBase, TestBed.Page), Errno.EEXIST);
        }
    }

    [Fact]
    public void S23_a_page_pinned_by_a_HW_queue_cannot_be_unmapped()
    {
        using var bed = new TestBed();
        HostMemoryRegion ram = bed.Fd.AllocateHostMemory(2 * TestBed.Page, "queues");
        IoasId ioas = bed.Fd.AllocIoas();
        ulong iova = bed.Fd.MapIoas(ioas, ram, 0, TestBed.Page, null);
        ulong iova2 = bed.Fd.MapIoas(ioas, ram, TestBed.Page, TestBed.Page, null);
        DeviceId dev = bed.Fd.BindDevice("gpu0");
        ViommuId viommu = bed.Fd.AllocViommu(dev, bed.Fd.AllocPagingHwpt(dev, ioas, HwptAllocFlags.NestParent), SelftestViommu).Id;

        bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, iova, TestBed.Page);

        TestBed.ShouldFail(() => bed.Fd.UnmapIoas(ioas, iova, TestBed.Page), Errno.EBUSY);
        bed.Fd.UnmapIoas(ioas, iova2, TestBed.Page).ShouldBe(TestBed.Page, "the second page is not pinned");
    }

    [Fact]
    public void S24_queues_are_destroyed_in_descending_index_order()
    {
        using var bed = new TestBed();
        HostMemoryRegion ram = bed.Fd.AllocateHostMemory(TestBed.Page, "queues");
        IoasId ioas = bed.Fd.AllocIoas();
        ulong iova = bed.Fd.MapIoas(ioas, ram, 0, TestBed.Page, null);
        DeviceId dev = bed.Fd.BindDevice("gpu0");
        ViommuId viommu = bed.Fd.AllocViommu(dev, bed.Fd.AllocPagingHwpt(dev, ioas, HwptAllocFlags.NestParent), SelftestViommu).Id;
        HwQueueId q0 = bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, iova, TestBed.Page);
        // Index 1 in the second half of the same page: an unaligned queue pins the page it spans.
        HwQueueId q1 = bed.Fd.AllocHwQueue(viommu, SelftestQueue, 1, iova + TestBed.Page / 2, TestBed.Page / 2);

        TestBed.ShouldFail(() => bed.Fd.Destroy(q0), Errno.EBUSY);
        TestBed.ShouldFail(() => bed.Fd.Destroy(viommu), Errno.EBUSY);
        bed.Fd.Destroy(q1);
        bed.Fd.Destroy(q0);
        bed.Fd.UnmapIoas(ioas, iova, TestBed.Page).ShouldBe(TestBed.Page);
    }

    [Fact]
    public void S25_a_vDEVICE_forced_down_by_unbinding_its_device_is_a_tombstone()
    {
        var (bed, _, dev, _, viommu) = Fixture();
        using (bed)
        {
            VdeviceId vdev = bed.Fd.AllocVdevice(viommu, dev, VirtId);
            bed.Fd.UnbindDevice(dev);
            TestBed.ShouldFail(() => bed.Fd.Destroy(vdev), Errno.ENOENT);
            TestBed.ShouldFail(() => bed.Fd.Destroy(dev), Errno.ENOENT);
            // The tombstoned ID is not handed out again; the device's ID is.
            IoasId next = bed.Fd.AllocIoas();
            next.Value.ShouldBe(dev.Value);
            bed.Fd.AllocIoas().Value.ShouldBe(vdev.Value + 1);
            // The vIOMMU is free again.
            bed.Fd.Destroy(viommu);
        }
    }

    [Fact]
    public void S26_nested_HWPT_allocation_errors()
    {
        var (bed, vm, dev, parent, viommu) = Fixture();
        using (bed)
        {
            byte[] vste = TestBed.AbortVste.ToBytes();
            // dev_id names an IOAS: ENOENT. pt_id names a device: EINVAL.
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(new DeviceId(vm.Ioas.Value), viommu, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, vste), Errno.ENOENT);
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, dev, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, vste), Errno.EINVAL);
            // NEST_PARENT with FAULT_ID_VALID: EOPNOTSUPP.
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, vm.Ioas, HwptAllocFlags.NestParent, HwptDataType.None, [], faultId: 0), Errno.EOPNOTSUPP);
            // DATA_NONE with data; ARM_SMMUV3 data of 15 bytes: EINVAL.
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, viommu, HwptAllocFlags.None, HwptDataType.None, vste), Errno.EINVAL);
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, viommu, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, vste.AsSpan(0, 15)), Errno.EINVAL);
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, viommu, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, new byte[17]), Errno.EINVAL);
            // A NULL data pointer with data_len 16: EFAULT (raw ioctl).
            var raw = IommufdMarshal.HwptAlloc(dev, viommu, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, 16, dataUptr: 0, faultId: null);
            bed.Fd.Ioctl((uint)IommufdIoctl.HwptAlloc, IommufdMarshal.AsBytes(ref raw)).ShouldBe(-(int)Errno.EFAULT);
            // Parent not a nest parent. The mock allocates nested domains on a paging parent and
            // answers EINVAL; arm-smmu-v3 has no domain_alloc_nested (nesting goes through a
            // vIOMMU), so the core answers EOPNOTSUPP for any paging parent, and the vIOMMU path
            // refuses the non-nest parent with EINVAL (S03).
            HwptId plain = bed.Fd.AllocPagingHwpt(dev, vm.Ioas);
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, plain, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, vste), Errno.EOPNOTSUPP);
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, parent, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, vste), Errno.EOPNOTSUPP);
            // Nested on nested: EINVAL.
            HwptId nested = bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.AbortVste);
            TestBed.ShouldFail(() => bed.Fd.AllocHwpt(dev, nested, HwptAllocFlags.None, HwptDataType.ArmSmmuV3, vste), Errno.EINVAL);
            // Invalidating the parent: EINVAL; a nested SMMUv3 HWPT has no invalidation op: EOPNOTSUPP.
            bed.Invalidate(parent, Command.TlbiNhAll(0)).Error.ShouldBe(Errno.EINVAL);
            bed.Invalidate(nested, Command.TlbiNhAll(0)).Error.ShouldBe(Errno.EOPNOTSUPP);
            bed.Invalidate(new ObjectId(999), Command.TlbiNhAll(0)).Error.ShouldBe(Errno.ENOENT);
            // Destroying an attached nested HWPT: EBUSY.
            bed.Fd.AttachDevice(dev, nested);
            TestBed.ShouldFail(() => bed.Fd.Destroy(nested), Errno.EBUSY);
        }
    }

    [Fact]
    public void S27_GET_HW_INFO_types_and_buffer_lengths()
    {
        var (bed, _, dev, _, _) = Fixture();
        using (bed)
        {
            TestBed.ShouldFail(() => bed.Fd.GetHwInfo(dev, HwInfoType.IntelVtd), Errno.EOPNOTSUPP);
            // smmu1 has no CMDQV: the CMDQV type is not reported for its devices.
            DeviceId gpu1 = bed.Fd.BindDevice("gpu1");
            TestBed.ShouldFail(() => bed.Fd.GetHwInfo(gpu1, HwInfoType.Tegra241Cmdqv), Errno.EOPNOTSUPP);

            HwInfo zero = bed.Fd.GetHwInfo(dev, null, Span<byte>.Empty);
            (zero.Type, zero.DataLength, zero.Data.Length).ShouldBe((HwInfoType.ArmSmmuV3, (uint)ArmSmmuV3HwInfo.Size, 0));

            byte[] exact = new byte[ArmSmmuV3HwInfo.Size];
            HwInfo e = bed.Fd.GetHwInfo(dev, HwInfoType.ArmSmmuV3, exact);
            ArmSmmuV3HwInfo info = ArmSmmuV3HwInfo.Parse(exact);
            info.ShouldBe(e.AsArmSmmuV3());
            (info.S1p, info.S2p, info.SidSize, info.SsidSize).ShouldBe((true, true, 10u, 20u));

            byte[] larger = new byte[ArmSmmuV3HwInfo.Size + sizeof(ulong)];
            Array.Fill(larger, (byte)0xAA);
            bed.Fd.GetHwInfo(dev, null, larger).DataLength.ShouldBe((uint)ArmSmmuV3HwInfo.Size);
            larger.AsSpan(0, ArmSmmuV3HwInfo.Size).ToArray().ShouldBe(exact);
            larger.AsSpan(ArmSmmuV3HwInfo.Size).ToArray().ShouldAllBe(b => b == 0, "the kernel zeroes the trailing bytes");

            byte[] smaller = new byte[sizeof(uint)];
            Array.Fill(smaller, (byte)0xAA);
            bed.Fd.GetHwInfo(dev, null, smaller).DataLength.ShouldBe((uint)ArmSmmuV3HwInfo.Size);
            BinaryPrimitives.ReadUInt32LittleEndian(smaller).ShouldBe(0u, "flags, the only field that fits, is updated");

            TestBed.ShouldFail(() => bed.Fd.GetHwInfo(new DeviceId(0), null), Errno.ENOENT);
        }
    }
}

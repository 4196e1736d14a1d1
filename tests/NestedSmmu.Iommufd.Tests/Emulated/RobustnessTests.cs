using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>Absurd or hostile arguments end in an errno quickly, never in a hang or a crash.</summary>
public sealed class RobustnessTests
{
    private static readonly ViommuType SelftestViommu = (ViommuType)SelftestTypes.ViommuTypeSelftest;
    private static readonly HwQueueType SelftestQueue = (HwQueueType)SelftestTypes.HwQueueTypeSelftest;

    [Fact]
    public void A_HW_queue_must_be_physically_contiguous()
    {
        using var bed = new TestBed();
        HostMemoryRegion a = bed.Fd.AllocateHostMemory(TestBed.Page, "a");
        HostMemoryRegion spacer = bed.Fd.AllocateHostMemory(TestBed.Page, "spacer");
        HostMemoryRegion bc = bed.Fd.AllocateHostMemory(2 * TestBed.Page, "bc");
        IoasId ioas = bed.Fd.AllocIoas();
        const ulong iova = 0x10_0000;
        bed.Fd.MapIoas(ioas, a, 0, TestBed.Page, iova);
        bed.Fd.MapIoas(ioas, bc, 0, TestBed.Page, iova + TestBed.Page);
        bed.Fd.MapIoas(ioas, bc, TestBed.Page, TestBed.Page, iova + 2 * TestBed.Page);
        DeviceId dev = bed.Fd.BindDevice("gpu0");
        ViommuId viommu = bed.Fd.AllocViommu(dev, bed.Fd.AllocPagingHwpt(dev, ioas, HwptAllocFlags.NestParent), SelftestViommu).Id;

        TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, iova, 2 * TestBed.Page), Errno.EFAULT);
        // Two mappings of one region: separate areas, but contiguous in host memory, so fine.
        bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, iova + TestBed.Page, 2 * TestBed.Page);
        bed.Fd.UnmapIoas(ioas, iova, TestBed.Page).ShouldBe(TestBed.Page, "the failed queue left no pin behind");
        _ = spacer;
    }

    [Fact]
    public void A_huge_HW_queue_is_refused_at_once()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (_, _, viommu) = bed.NestedSetup(vm, "gpu0", SelftestViommu);
        TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, TestBed.GuestRamBase, 1UL << 60), Errno.ENOENT);
        // iova + length - 1 fits, but the page-aligned span (offset + length) does not: ERANGE.
        TestBed.ShouldFail(() => bed.Fd.AllocHwQueue(viommu, SelftestQueue, 0, 1, ulong.MaxValue), Errno.ERANGE);
    }

    [Fact]
    public void A_huge_invalidation_array_is_ENOMEM_as_kcalloc_would_say()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (_, _, viommu) = bed.NestedSetup(vm, "gpu0");
        var a = IommufdMarshal.HwptInvalidate(viommu, HwptInvalidateDataType.ArmSmmuV3, 16, 1u << 20, dataUptr: 0x1000);
        bed.Fd.Ioctl((uint)IommufdIoctl.HwptInvalidate, IommufdMarshal.AsBytes(ref a)).ShouldBe(-(int)Errno.ENOMEM);
        a.EntryNum.ShouldBe(0u);
    }

    [Fact]
    public void Huge_user_lengths_fault_without_allocating_them()
    {
        using var bed = new TestBed();
        DeviceId dev = bed.Fd.BindDevice("gpu0");
        ulong uptr = bed.Host.UserMemory.Map(new byte[64]);
        var info = IommufdMarshal.HwInfo(dev, null, uint.MaxValue, uptr);
        bed.Fd.Ioctl((uint)IommufdIoctl.GetHwInfo, IommufdMarshal.AsBytes(ref info)).ShouldBe(-(int)Errno.EFAULT);
        var hwpt = IommufdMarshal.HwptAlloc(dev, new ObjectId(1), HwptAllocFlags.None, HwptDataType.ArmSmmuV3, uint.MaxValue, uptr, null);
        bed.Fd.Ioctl((uint)IommufdIoctl.HwptAlloc, IommufdMarshal.AsBytes(ref hwpt)).ShouldBe(-(int)Errno.EINVAL, "pt_id 1 is the device itself");
    }

    [Fact]
    public void Range_invalidation_takes_five_bits_of_the_page_count_per_command()
        => RangeInvalidationCommands();

    /// <summary>A lone page would be NUM = SCALE = TTL = 0 with TG set, which is reserved: it is widened to two pages.</summary>
    [Fact]
    public void A_single_page_range_invalidation_avoids_the_reserved_encoding()
    {
        using var bed = new TestBed();
        HostMemoryRegion ram = bed.Fd.AllocateHostMemory(TestBed.Page, "ram");
        IoasId ioas = bed.Fd.AllocIoas();
        bed.Fd.MapIoas(ioas, ram, 0, TestBed.Page, TestBed.GuestRamBase);
        bed.Fd.AttachDevice(bed.Fd.BindDevice("nic0"), ioas);
        long before = bed.Diag.Counters("smmu0").CommandsExecuted;
        bed.Fd.UnmapIoas(ioas, TestBed.GuestRamBase, TestBed.Page);
        (bed.Diag.Counters("smmu0").CommandsExecuted - before).ShouldBe(2);
        bed.Diag.Counters("smmu0").CommandErrors.ShouldBe(0);
    }

    private static void RangeInvalidationCommands()
    {
        using var bed = new TestBed();
        HostMemoryRegion ram = bed.Fd.AllocateHostMemory(66 * TestBed.Page, "ram");
        IoasId ioas = bed.Fd.AllocIoas();
        bed.Fd.MapIoas(ioas, ram, 0, 66 * TestBed.Page, TestBed.GuestRamBase);
        bed.Fd.AttachDevice(bed.Fd.BindDevice("nic0"), ioas);
        long before = bed.Diag.Counters("smmu0").CommandsExecuted;
        bed.Fd.UnmapIoas(ioas, TestBed.GuestRamBase, 66 * TestBed.Page);
        // 66 pages = 2 + 64: two TLBI_S2_IPA (NUM 0 SCALE 1, NUM 0 SCALE 6) and a CMD_SYNC.
        (bed.Diag.Counters("smmu0").CommandsExecuted - before).ShouldBe(3);
        bed.Diag.Counters("smmu0").CommandErrors.ShouldBe(0);
    }
}

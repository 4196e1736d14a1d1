using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// Reserved IOVA ranges and the IOAS alignment as the real kernel keeps them
/// (drivers/iommu/iommufd/io_pagetable.c and device.c; checked against Linux 7.2.6 in
/// tests/vectors/real-kernel): an attached arm-smmu-v3 master's software MSI window is reserved
/// in the IOAS, and the first domain wants every mapping page aligned.
/// </summary>
public sealed class ReservedRangeTests
{
    private const ulong MsiFirst = 0x8000000, MsiLast = 0x80FFFFF;

    /// <summary>A one-page host region, an empty IOAS and gpu0 bound (not attached).</summary>
    private static (HostMemoryRegion Ram, IoasId Ioas, DeviceId Dev) PageIoasAndDevice(TestBed bed) =>
        (bed.Fd.AllocateHostMemory(TestBed.Page, "ram"), bed.Fd.AllocIoas(), bed.Fd.BindDevice("gpu0"));

    [Fact]
    public void Attaching_reserves_the_msi_window_and_detaching_gives_it_back()
    {
        using var bed = new TestBed();
        var (ram, ioas, dev) = PageIoasAndDevice(bed);

        bed.Fd.AttachDevice(dev, ioas);
        IovaRanges attached = bed.Fd.GetIovaRanges(ioas);
        attached.Ranges[0].ShouldBe(new IovaRange(0, MsiFirst - 1));
        attached.Ranges[1].Start.ShouldBe(MsiLast + 1);
        attached.Alignment.ShouldBe(TestBed.Page);
        TestBed.ShouldFail(() => bed.Fd.MapIoas(ioas, ram, 0, TestBed.Page, MsiFirst), Errno.EINVAL);

        bed.Fd.DetachDevice(dev);
        bed.Fd.GetIovaRanges(ioas).Ranges.ShouldBe([new IovaRange(0, ulong.MaxValue)]);
        bed.Fd.MapIoas(ioas, ram, 0, TestBed.Page, MsiFirst).ShouldBe(MsiFirst);
    }

    [Fact]
    public void A_mapping_in_the_msi_window_makes_the_attach_fail_with_EADDRINUSE_and_leaves_nothing_behind()
    {
        using var bed = new TestBed();
        var (ram, ioas, dev) = PageIoasAndDevice(bed);
        bed.Fd.MapIoas(ioas, ram, 0, TestBed.Page, MsiFirst);

        TestBed.ShouldFail(() => bed.Fd.AttachDevice(dev, ioas), Errno.EADDRINUSE);
        bed.Fd.GetIovaRanges(ioas).Ranges.ShouldBe([new IovaRange(0, ulong.MaxValue)]);
        bed.Fd.UnmapIoas(ioas, MsiFirst, TestBed.Page);
        bed.Fd.AttachDevice(dev, ioas);
    }

    [Fact]
    public void The_window_stays_while_the_device_moves_between_hwpts_of_the_same_ioas_nested_included()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        (DeviceId dev, HwptId parent, ViommuId viommu) = bed.NestedSetup(vm, "gpu0");
        HwptId bypass = bed.Fd.AllocNestedHwpt(dev, viommu, TestBed.BypassVste);
        bed.Fd.AttachDevice(dev, bypass);
        bed.Fd.GetIovaRanges(vm.Ioas).Ranges.Count.ShouldBe(2, "a nested HWPT reserves in its parent's IOAS (find_hwpt_paging)");
        bed.Fd.AttachDevice(dev, parent);
        bed.Fd.GetIovaRanges(vm.Ioas).Ranges.Count.ShouldBe(2);
        bed.Fd.DetachDevice(dev);
        bed.Fd.GetIovaRanges(vm.Ioas).Ranges.Count.ShouldBe(1);
    }

    [Fact]
    public void An_unaligned_mapping_made_without_a_domain_blocks_the_first_domain()
    {
        using var bed = new TestBed();
        var (ram, ioas, dev) = PageIoasAndDevice(bed);
        bed.Fd.GetIovaRanges(ioas).Alignment.ShouldBe(1UL);
        bed.Fd.MapIoas(ioas, ram, 0, TestBed.Page, 0x10001).ShouldBe(0x10001UL);

        TestBed.ShouldFail(() => bed.Fd.AllocPagingHwpt(dev, ioas), Errno.EADDRINUSE);
        TestBed.ShouldFail(() => bed.Fd.AttachDevice(dev, ioas), Errno.EADDRINUSE);
        bed.Fd.UnmapIoas(ioas, 0x10001, TestBed.Page);
        bed.Fd.AttachDevice(dev, ioas);
        bed.Fd.GetIovaRanges(ioas).Alignment.ShouldBe(TestBed.Page);
    }
}

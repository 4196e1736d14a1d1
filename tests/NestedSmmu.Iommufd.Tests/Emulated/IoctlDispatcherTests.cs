using System.Buffers.Binary;
using NestedSmmu.Iommufd.Emulated;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Emulated;

/// <summary>
/// The raw ioctl level of the emulated kernel (drivers/iommu/iommufd/main.c's dispatcher): request
/// numbers, the size rules, output copy-back, reserved fields, and user pointers.
/// </summary>
public sealed class IoctlDispatcherTests
{
    private static int Raw<T>(EmulatedIommufd fd, IommufdIoctl ioctl, ref T arg) where T : unmanaged =>
        fd.Ioctl((uint)ioctl, IommufdMarshal.AsBytes(ref arg));

    [Theory]
    [InlineData(0x3B7Fu)] // IOMMUFD_CMD_BASE - 1: VFIO compat range, nothing here
    [InlineData(0x3BA0u)] // past the table
    [InlineData(0x4280u)] // another ioctl type byte
    public void Unknown_requests_are_ENOTTY(uint request)
    {
        using var bed = new TestBed();
        var a = IommufdMarshal.IoasAlloc();
        bed.Fd.Ioctl(request, IommufdMarshal.AsBytes(ref a)).ShouldBe(-(int)Errno.ENOTTY);
    }

    [Fact]
    public void Commands_the_model_does_not_implement_are_EOPNOTSUPP()
    {
        using var bed = new TestBed();
        var option = new IommuOption { Size = IommufdMarshal.SizeOf<IommuOption>() };
        Raw(bed.Fd, IommufdIoctl.Option, ref option).ShouldBe(-(int)Errno.EOPNOTSUPP);
    }

    [Fact]
    public void The_size_field_follows_min_size_and_the_zero_tail_rule()
    {
        using var bed = new TestBed();
        // struct iommu_ioas_alloc is 12 bytes; pass 16 with a tail.
        byte[] arg = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(arg, 11);
        bed.Fd.Ioctl((uint)IommufdIoctl.IoasAlloc, arg).ShouldBe(-(int)Errno.EINVAL, "below min_size");

        BinaryPrimitives.WriteUInt32LittleEndian(arg, 16);
        arg[15] = 1;
        bed.Fd.Ioctl((uint)IommufdIoctl.IoasAlloc, arg).ShouldBe(-(int)Errno.E2BIG, "non-zero bytes past the kernel's struct");

        arg[15] = 0;
        bed.Fd.Ioctl((uint)IommufdIoctl.IoasAlloc, arg).ShouldBe(0);
        BinaryPrimitives.ReadUInt32LittleEndian(arg.AsSpan(8)).ShouldBe(1u, "out_ioas_id");

        BinaryPrimitives.WriteUInt32LittleEndian(arg, 32);
        bed.Fd.Ioctl((uint)IommufdIoctl.IoasAlloc, arg).ShouldBe(-(int)Errno.EFAULT, "size runs past the user's buffer");
        bed.Fd.Ioctl((uint)IommufdIoctl.IoasAlloc, arg.AsSpan(0, 2)).ShouldBe(-(int)Errno.EFAULT);

        var destroy = IommufdMarshal.Destroy(ObjectId.Invalid);
        Raw(bed.Fd, IommufdIoctl.Destroy, ref destroy).ShouldBe(-(int)Errno.ENOENT, "object id 0 names nothing");
    }

    [Fact]
    public void Reserved_fields_and_unknown_flags_are_EOPNOTSUPP()
    {
        using var bed = new TestBed();
        DeviceId dev = bed.Fd.BindDevice("gpu0");
        IoasId ioas = bed.Fd.AllocIoas();

        var alloc = new IommuIoasAlloc { Size = IommufdMarshal.SizeOf<IommuIoasAlloc>(), Flags = 1 };
        Raw(bed.Fd, IommufdIoctl.IoasAlloc, ref alloc).ShouldBe(-(int)Errno.EOPNOTSUPP);

        var info = IommufdMarshal.HwInfo(dev, null, 0, 0);
        info.Flags = 2;
        Raw(bed.Fd, IommufdIoctl.GetHwInfo, ref info).ShouldBe(-(int)Errno.EOPNOTSUPP);
        info = IommufdMarshal.HwInfo(dev, null, 0, 0);
        unsafe { info.Reserved[1] = 1; }
        Raw(bed.Fd, IommufdIoctl.GetHwInfo, ref info).ShouldBe(-(int)Errno.EOPNOTSUPP);

        var hwpt = IommufdMarshal.HwptAlloc(dev, ioas, HwptAllocFlags.None, HwptDataType.None, 0, 0, null);
        hwpt.Reserved = 1;
        Raw(bed.Fd, IommufdIoctl.HwptAlloc, ref hwpt).ShouldBe(-(int)Errno.EOPNOTSUPP);

        var map = IommufdMarshal.IoasMap(ioas, IoasMapFlags.Readable, 0x1000, 0x1000, 0);
        map.Reserved = 1;
        Raw(bed.Fd, IommufdIoctl.IoasMap, ref map).ShouldBe(-(int)Errno.EOPNOTSUPP);

        var inv = IommufdMarshal.HwptInvalidate(ioas, HwptInvalidateDataType.ArmSmmuV3, 16, 5, 0x1000);
        inv.Reserved = 1;
        Raw(bed.Fd, IommufdIoctl.HwptInvalidate, ref inv).ShouldBe(-(int)Errno.EOPNOTSUPP);
        inv.EntryNum.ShouldBe(0u, "entry_num is written back even on failure");

        var ranges = IommufdMarshal.IoasIovaRanges(ioas, 0, 0);
        ranges.Reserved = 1;
        Raw(bed.Fd, IommufdIoctl.IoasIovaRanges, ref ranges).ShouldBe(-(int)Errno.EOPNOTSUPP);

        var queue = IommufdMarshal.VeventqAlloc(new ViommuId(1), VeventqType.ArmSmmuV3, 1, 0);
        queue.Reserved = 1;
        Raw(bed.Fd, IommufdIoctl.VeventqAlloc, ref queue).ShouldBe(-(int)Errno.EOPNOTSUPP);
    }

    [Fact]
    public void User_pointers_name_the_VMM_address_space()
    {
        using var bed = new TestBed();
        DeviceId dev = bed.Fd.BindDevice("gpu0");
        byte[] buffer = new byte[ArmSmmuV3HwInfo.Size];
        ulong uptr = bed.Host.UserMemory.Map(buffer);

        var info = IommufdMarshal.HwInfo(dev, HwInfoType.ArmSmmuV3, (uint)buffer.Length, uptr);
        Raw(bed.Fd, IommufdIoctl.GetHwInfo, ref info).ShouldBe(0);
        ArmSmmuV3HwInfo.Parse(buffer).S2p.ShouldBeTrue();

        info = IommufdMarshal.HwInfo(dev, HwInfoType.ArmSmmuV3, (uint)buffer.Length + 1, uptr);
        Raw(bed.Fd, IommufdIoctl.GetHwInfo, ref info).ShouldBe(-(int)Errno.EFAULT, "one byte past the mapping");
        bed.Host.UserMemory.Unmap(uptr).ShouldBeTrue();
        info = IommufdMarshal.HwInfo(dev, HwInfoType.ArmSmmuV3, (uint)buffer.Length, uptr);
        Raw(bed.Fd, IommufdIoctl.GetHwInfo, ref info).ShouldBe(-(int)Errno.EFAULT, "unmapped");
        info = IommufdMarshal.HwInfo(dev, HwInfoType.ArmSmmuV3, 8, 0);
        Raw(bed.Fd, IommufdIoctl.GetHwInfo, ref info).ShouldBe(-(int)Errno.EFAULT, "NULL");
    }

    [Fact]
    public void A_raw_vEVENTQ_fd_is_taken_once()
    {
        using var bed = new TestBed();
        Vm vm = bed.CreateVm();
        var (_, _, viommu) = bed.NestedSetup(vm, "gpu0");
        var a = IommufdMarshal.VeventqAlloc(viommu, VeventqType.ArmSmmuV3, 2, 0);
        Raw(bed.Fd, IommufdIoctl.VeventqAlloc, ref a).ShouldBe(0);
        a.OutVeventqFd.ShouldBeGreaterThanOrEqualTo(100);
        using EmulatedVeventQueue reader = bed.Fd.TakeVeventqFd(a.OutVeventqFd);
        reader.Id.Value.ShouldBe(a.OutVeventqId);
        TestBed.ShouldFail(() => bed.Fd.TakeVeventqFd(a.OutVeventqFd), Errno.EBADF);
    }

    [Fact]
    public void A_closed_context_answers_EBADF()
    {
        var bed = new TestBed();
        bed.Fd.Dispose();
        var a = IommufdMarshal.IoasAlloc();
        Raw(bed.Fd, IommufdIoctl.IoasAlloc, ref a).ShouldBe(-(int)Errno.EBADF);
        Should.Throw<IommufdException>(() => bed.Fd.AllocIoas()).Errno.ShouldBe(Errno.EBADF);
        Should.Throw<ObjectDisposedException>(() => bed.Fd.BindDevice("gpu0"));
        bed.Fd.IsClosed.ShouldBeTrue();
        bed.Fd.Dispose();
    }

    [Fact]
    public void Host_memory_runs_out_with_ENOMEM()
    {
        using var bed = new TestBed();
        TestBed.ShouldFail(() => bed.Fd.AllocateHostMemory(bed.Host.Profile.Memory.Size, "too-big"), Errno.ENOMEM);
        HostMemoryRegion r = bed.Fd.AllocateHostMemory(1, "tiny");
        r.Length.ShouldBe(TestBed.Page, "rounded up to a page");
        bed.Diag.HostMemoryOwner(((EmulatedHostMemoryRegion)r).HostPhysicalAddress).ShouldBe("tiny");
    }
}

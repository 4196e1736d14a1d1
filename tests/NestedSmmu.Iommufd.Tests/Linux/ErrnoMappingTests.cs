using NestedSmmu.Hardware.Memory;
using NestedSmmu.Iommufd.Linux;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Linux;

/// <summary>
/// How kernel errors become <see cref="IommufdException"/>s: the errno survives unchanged, the
/// message names the ioctl and its arguments and says what to check. Opening a missing or
/// forbidden /dev/iommu is a clear error, never a crash.
/// </summary>
public sealed class ErrnoMappingTests : IDisposable
{
    private readonly RecordingSyscalls _sys = new();

    public void Dispose() => _sys.Dispose();

    [Theory]
    [InlineData(Errno.EPERM, 1)]
    [InlineData(Errno.ENOENT, 2)]
    [InlineData(Errno.EIO, 5)]
    [InlineData(Errno.ENXIO, 6)]
    [InlineData(Errno.E2BIG, 7)]
    [InlineData(Errno.EBADF, 9)]
    [InlineData(Errno.ENOMEM, 12)]
    [InlineData(Errno.EACCES, 13)]
    [InlineData(Errno.EFAULT, 14)]
    [InlineData(Errno.EBUSY, 16)]
    [InlineData(Errno.EEXIST, 17)]
    [InlineData(Errno.ENODEV, 19)]
    [InlineData(Errno.EINVAL, 22)]
    [InlineData(Errno.ENOTTY, 25)]
    [InlineData(Errno.ENOSPC, 28)]
    [InlineData(Errno.ESPIPE, 29)]
    [InlineData(Errno.ERANGE, 34)]
    [InlineData(Errno.EOVERFLOW, 75)]
    [InlineData(Errno.EMSGSIZE, 90)]
    [InlineData(Errno.EOPNOTSUPP, 95)]
    [InlineData(Errno.EADDRINUSE, 98)]
    public void Errno_values_are_the_Linux_numbers(Errno errno, int value)
    {
        ((int)errno).ShouldBe(value);
        errno.Describe().ShouldNotStartWith("errno ");
    }

    public static TheoryData<IommufdIoctl, Errno> IoctlFailures => new()
    {
        { IommufdIoctl.HwptAlloc, Errno.EINVAL },
        { IommufdIoctl.HwptAlloc, Errno.EOPNOTSUPP },
        { IommufdIoctl.HwptAlloc, Errno.EIO },
        { IommufdIoctl.ViommuAlloc, Errno.ENOENT },
        { IommufdIoctl.VdeviceAlloc, Errno.EEXIST },
        { IommufdIoctl.VeventqAlloc, Errno.EEXIST },
        { IommufdIoctl.HwQueueAlloc, Errno.EOVERFLOW },
        { IommufdIoctl.IoasMap, Errno.ENOMEM },
        { IommufdIoctl.IoasUnmap, Errno.EBUSY },
        { IommufdIoctl.GetHwInfo, Errno.EOPNOTSUPP },
        { IommufdIoctl.Destroy, Errno.EBUSY },
        { IommufdIoctl.IoasAlloc, Errno.ENOTTY },
        { IommufdIoctl.IoasAlloc, Errno.ENOSPC },
    };

    [Theory]
    [MemberData(nameof(IoctlFailures))]
    public void A_failing_ioctl_throws_with_its_errno_and_name(IommufdIoctl ioctl, Errno errno)
    {
        using var iommufd = LinuxIommufd.Open(_sys);
        using var ram = new NativeHostMemoryRegion(0x10000, 0x10000, "ram0");
        _sys.OnIoctl = (call, _) => call.Request == (uint)ioctl ? -(int)errno : 0;

        Action act = ioctl switch
        {
            IommufdIoctl.HwptAlloc => () => iommufd.AllocPagingHwpt(new DeviceId(1), new IoasId(2)),
            IommufdIoctl.ViommuAlloc => () => iommufd.AllocViommu(new DeviceId(1), new HwptId(3), ViommuType.ArmSmmuV3),
            IommufdIoctl.VdeviceAlloc => () => iommufd.AllocVdevice(new ViommuId(4), new DeviceId(1), 0x99),
            IommufdIoctl.VeventqAlloc => () => iommufd.AllocVeventq(new ViommuId(4), VeventqType.ArmSmmuV3, 8),
            IommufdIoctl.HwQueueAlloc => () => iommufd.AllocHwQueue(new ViommuId(4), HwQueueType.Tegra241Cmdqv, 0, ulong.MaxValue, 0x1000),
            IommufdIoctl.IoasMap => () => iommufd.MapIoas(new IoasId(2), ram, 0, 0x10000, 0),
            IommufdIoctl.IoasUnmap => () => iommufd.UnmapIoas(new IoasId(2), 0, 0x1000),
            IommufdIoctl.GetHwInfo => () => iommufd.GetHwInfo(new DeviceId(1), HwInfoType.Tegra241Cmdqv),
            IommufdIoctl.Destroy => () => iommufd.Destroy(new HwptId(3)),
            IommufdIoctl.IoasAlloc => () => iommufd.AllocIoas(),
            _ => throw new ArgumentOutOfRangeException(nameof(ioctl)),
        };

        var e = Should.Throw<IommufdException>(act);

        e.Errno.ShouldBe(errno);
        e.Operation.ShouldBe(ioctl.CName());
        e.Message.ShouldStartWith($"{ioctl.CName()} failed: {errno} ({(int)errno}, {errno.Describe()})");
        string? hint = IommufdErrnoHints.For(ioctl, errno);
        if (hint is not null) e.Message.ShouldContain(hint);
    }

    [Fact]
    public void Messages_carry_the_arguments()
    {
        using var iommufd = LinuxIommufd.Open(_sys);
        _sys.OnIoctl = (_, _) => -(int)Errno.EINVAL;

        var e = Should.Throw<IommufdException>(() =>
            iommufd.AllocNestedHwpt(new DeviceId(1), new HwptId(7), new ArmSmmuV3Vste(1, 0)));

        e.Message.ShouldContain("dev_id 1, pt_id 7");
        e.Message.ShouldContain("data_type ArmSmmuV3 (2), data_len 16");
        e.Message.ShouldContain("NEST_PARENT paging HWPT");
    }

    [Fact]
    public void Try_forms_return_the_errno_instead_of_throwing()
    {
        using var iommufd = LinuxIommufd.Open(_sys);
        _sys.OnIoctl = (call, _) => call.Request == (uint)IommufdIoctl.Destroy ? -(int)Errno.EBUSY : 0;

        iommufd.TryDestroy(new HwptId(3), out Errno error).ShouldBeFalse();
        error.ShouldBe(Errno.EBUSY);
        iommufd.TryUnmapIoas(new IoasId(2), 0, 0x1000, out _, out error).ShouldBeTrue();
        error.ShouldBe(Errno.None);
    }

    [Theory]
    [InlineData(Errno.ENOENT, "CONFIG_IOMMUFD")]
    [InlineData(Errno.EACCES, "root")]
    [InlineData(Errno.EPERM, "udev")]
    [InlineData(Errno.ENOSYS, "emulated host")]
    public void Opening_fails_with_a_clear_message(Errno errno, string advice)
    {
        _sys.OpenResults[LinuxIommufd.DefaultPath] = -(int)errno;

        var e = Should.Throw<IommufdException>(() => LinuxIommufd.Open(_sys));

        e.Errno.ShouldBe(errno);
        e.Operation.ShouldBe("open /dev/iommu");
        e.Message.ShouldContain(advice);
    }

    [Fact]
    public void Opening_a_nonexistent_device_path_with_the_real_C_library_gives_ENOENT()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "needs a Linux C library");
        string missing = Path.Combine(Path.GetTempPath(), $"nestedsmmu-no-iommu-{Guid.NewGuid():N}");

        var e = Should.Throw<IommufdException>(() => LinuxIommufd.Open(missing));

        e.Errno.ShouldBe(Errno.ENOENT);
        e.Operation.ShouldBe($"open {missing}");
        e.Message.ShouldContain("does not exist");
        e.Message.ShouldContain("iommufd");

        LinuxIommufd.TryOpen(out LinuxIommufd? none, out IommufdException? error, missing).ShouldBeFalse();
        none.ShouldBeNull();
        error!.Errno.ShouldBe(Errno.ENOENT);
    }

    [Fact]
    public void A_real_ioctl_on_a_file_that_is_not_an_iommufd_gives_ENOTTY()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && File.Exists("/dev/null"), "needs Linux and /dev/null");
        // /dev/null accepts open but knows no iommufd ioctl: this exercises the real P/Invoke
        // path and errno capture end to end.
        using var iommufd = LinuxIommufd.Open("/dev/null");

        var e = Should.Throw<IommufdException>(() => iommufd.AllocIoas());

        e.Errno.ShouldBe(Errno.ENOTTY);
        e.Message.ShouldContain("IOMMU_IOAS_ALLOC");
    }

    [Fact]
    public void Real_anonymous_memory_can_be_allocated_written_and_released()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && File.Exists("/dev/null"), "needs Linux and /dev/null");
        using var iommufd = LinuxIommufd.Open("/dev/null");

        using HostMemoryRegion ram = iommufd.AllocateHostMemory(3 * 4096 + 1, "ram0");

        ram.Length.ShouldBeGreaterThanOrEqualTo(4UL * 4096);
        ram.WriteUInt64(ram.Length - 8, 0x1122_3344_5566_7788);
        ram.ReadUInt64(ram.Length - 8).ShouldBe(0x1122_3344_5566_7788UL);
        ram.ReadUInt64(0).ShouldBe(0UL, "anonymous memory starts zeroed");
        Should.Throw<ArgumentOutOfRangeException>(() => ram.ReadUInt64(ram.Length - 4));
    }
}

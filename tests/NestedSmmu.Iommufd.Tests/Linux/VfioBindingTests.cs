using System.Buffers.Binary;
using System.Runtime.InteropServices;
using NestedSmmu.Iommufd.Linux;
using NestedSmmu.Iommufd.Uapi;
using NestedSmmu.Iommufd.Uapi.Vfio;

namespace NestedSmmu.Iommufd.Tests.Linux;

/// <summary>
/// Device binding through VFIO cdevs: finding the cdev from a PCI address, and the exact
/// VFIO_DEVICE_BIND_IOMMUFD / ATTACH / DETACH arguments (include/uapi/linux/vfio.h).
/// </summary>
public sealed class VfioBindingTests : IDisposable
{
    private const int DeviceFd = 20;
    private readonly RecordingSyscalls _sys = new();
    private readonly LinuxIommufd _iommufd;

    public VfioBindingTests()
    {
        _iommufd = LinuxIommufd.Open(_sys);
        RecordingSyscallsExtensions.AddVfioPciDevice(_sys, "0000:01:00.0", "vfio7");
        _sys.OpenResults["/dev/vfio/devices/vfio7"] = DeviceFd;
    }

    public void Dispose()
    {
        _iommufd.Dispose();
        _sys.Dispose();
    }

    [Fact]
    public void Vfio_structs_have_the_vfio_h_layout()
    {
        // vfio.h: bind { argsz 0, flags 4, iommufd 8, out_devid 12, token_uuid_ptr 16 } = 24;
        // attach { argsz 0, flags 4, pt_id 8, pasid 12 } = 16; detach { argsz 0, flags 4, pasid 8 } = 12.
        Marshal.SizeOf<VfioDeviceBindIommufd>().ShouldBe(24);
        Marshal.OffsetOf<VfioDeviceBindIommufd>(nameof(VfioDeviceBindIommufd.OutDevid)).ShouldBe(12);
        Marshal.OffsetOf<VfioDeviceBindIommufd>(nameof(VfioDeviceBindIommufd.TokenUuidPtr)).ShouldBe(16);
        Marshal.SizeOf<VfioDeviceAttachIommufdPt>().ShouldBe(16);
        Marshal.OffsetOf<VfioDeviceAttachIommufdPt>(nameof(VfioDeviceAttachIommufdPt.PtId)).ShouldBe(8);
        Marshal.OffsetOf<VfioDeviceAttachIommufdPt>(nameof(VfioDeviceAttachIommufdPt.Pasid)).ShouldBe(12);
        Marshal.SizeOf<VfioDeviceDetachIommufdPt>().ShouldBe(12);
        Marshal.OffsetOf<VfioDeviceDetachIommufdPt>(nameof(VfioDeviceDetachIommufdPt.Pasid)).ShouldBe(8);
        // _IO(';', VFIO_BASE + 18..20), VFIO_BASE = 100.
        ((uint)VfioIoctl.DeviceBindIommufd).ShouldBe(0x3B76u);
        ((uint)VfioIoctl.DeviceAttachIommufdPt).ShouldBe(0x3B77u);
        ((uint)VfioIoctl.DeviceDetachIommufdPt).ShouldBe(0x3B78u);
    }

    [Fact]
    public void Bind_by_PCI_address_opens_the_cdev_and_binds_it_to_the_iommufd()
    {
        _sys.OnIoctl = (_, arg) => { BinaryPrimitives.WriteUInt32LittleEndian(arg[12..], 1); return 0; };

        _iommufd.BindDevice("0000:01:00.0").ShouldBe(new DeviceId(1));

        _sys.Opens[^1].ShouldBe(("/dev/vfio/devices/vfio7", LinuxAbi.O_RDWR | LinuxAbi.O_CLOEXEC));
        var call = _sys.Ioctls.Single();
        call.Fd.ShouldBe(DeviceFd);
        call.Request.ShouldBe(0x3B76u);
        // argsz 24 | flags 0 | iommufd 3 | out_devid 0 | token_uuid_ptr 0
        call.Argument.ShouldBe(LinuxIommufdMarshallingTests.Hex("18000000 00000000 03000000 00000000 0000000000000000"));
    }

    [Theory]
    [InlineData("01:00.0")]          // domain 0 implied
    [InlineData("0000:01:00.0")]
    [InlineData("vfio7")]
    [InlineData("/dev/vfio/devices/vfio7")]
    public void Device_names_resolve_to_the_cdev(string name)
    {
        VfioDeviceLocator.Resolve(_sys, name).ShouldBe("/dev/vfio/devices/vfio7");
    }

    [Fact]
    public void Attach_and_detach_use_the_device_fd()
    {
        _sys.OnIoctl = (call, arg) =>
        {
            if (call.Request == 0x3B76u) BinaryPrimitives.WriteUInt32LittleEndian(arg[12..], 1);
            if (call.Request == 0x3B77u) BinaryPrimitives.WriteUInt32LittleEndian(arg[8..], 9);
            return 0;
        };
        DeviceId dev = _iommufd.BindDevice("0000:01:00.0");

        _iommufd.AttachDevice(dev, new IoasId(2)).ShouldBe(new ObjectId(9));
        _iommufd.DetachDevice(dev);

        var attach = _sys.Ioctls[1];
        attach.Fd.ShouldBe(DeviceFd);
        attach.Request.ShouldBe(0x3B77u);
        attach.Argument.ShouldBe(LinuxIommufdMarshallingTests.Hex("10000000 00000000 02000000 00000000"));
        var detach = _sys.Ioctls[2];
        detach.Fd.ShouldBe(DeviceFd);
        detach.Request.ShouldBe(0x3B78u);
        detach.Argument.ShouldBe(LinuxIommufdMarshallingTests.Hex("0C000000 00000000 00000000"));

        _iommufd.UnbindDevice(dev);
        _sys.Closed.ShouldContain(DeviceFd);
        Should.Throw<IommufdException>(() => _iommufd.AttachDevice(dev, new IoasId(2))).Errno.ShouldBe(Errno.ENOENT);
    }

    [Fact]
    public void Attach_failure_names_the_VFIO_ioctl_and_says_what_to_check()
    {
        _sys.OnIoctl = (call, arg) =>
        {
            if (call.Request == 0x3B76u) { BinaryPrimitives.WriteUInt32LittleEndian(arg[12..], 1); return 0; }
            return -(int)Errno.ENOENT;
        };
        DeviceId dev = _iommufd.BindDevice("0000:01:00.0");

        var e = Should.Throw<IommufdException>(() => _iommufd.AttachDevice(dev, new HwptId(12)));

        e.Errno.ShouldBe(Errno.ENOENT);
        e.Operation.ShouldBe("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
        e.Message.ShouldContain("pt_id 12");
        e.Message.ShouldContain("vDEVICE");
    }

    [Fact]
    public void Attach_to_an_unbound_device_fails_with_ENOENT_without_a_syscall()
    {
        var e = Should.Throw<IommufdException>(() => _iommufd.AttachDevice(new DeviceId(42), new IoasId(2)));
        e.Errno.ShouldBe(Errno.ENOENT);
        e.Message.ShouldContain("dev_id 42");
        _sys.Ioctls.ShouldBeEmpty();
    }

    [Fact]
    public void A_failed_bind_closes_the_cdev_and_reports_the_errno()
    {
        _sys.OnIoctl = (_, _) => -(int)Errno.EBUSY;

        var e = Should.Throw<IommufdException>(() => _iommufd.BindDevice("0000:01:00.0"));

        e.Errno.ShouldBe(Errno.EBUSY);
        e.Operation.ShouldBe("VFIO_DEVICE_BIND_IOMMUFD");
        e.Message.ShouldContain("already bound");
        _sys.Closed.ShouldBe([DeviceFd]);
    }

    [Fact]
    public void A_device_not_bound_to_vfio_pci_gives_ENODEV_with_the_fix()
    {
        _sys.ExistingPaths.Add("/sys/bus/pci/devices/0000:02:00.0");

        var e = Should.Throw<IommufdException>(() => _iommufd.BindDevice("02:00.0"));

        e.Errno.ShouldBe(Errno.ENODEV);
        e.Message.ShouldContain("vfio-pci");
        e.Message.ShouldContain("CONFIG_VFIO_DEVICE_CDEV");
        _sys.Opens.Count.ShouldBe(1, "only /dev/iommu was opened");
    }

    [Fact]
    public void An_unknown_PCI_address_gives_ENOENT_and_a_bad_name_EINVAL()
    {
        Should.Throw<IommufdException>(() => _iommufd.BindDevice("0000:03:00.0")).Errno.ShouldBe(Errno.ENOENT);
        var bad = Should.Throw<IommufdException>(() => _iommufd.BindDevice("gpu0"));
        bad.Errno.ShouldBe(Errno.EINVAL);
        bad.Message.ShouldContain("dddd:bb:dd.f");
    }

    [Fact]
    public void A_cdev_without_permission_gives_EACCES_with_the_fix()
    {
        _sys.OpenResults["/dev/vfio/devices/vfio7"] = -(int)Errno.EACCES;

        var e = Should.Throw<IommufdException>(() => _iommufd.BindDevice("vfio7"));

        e.Errno.ShouldBe(Errno.EACCES);
        e.Operation.ShouldBe("open /dev/vfio/devices/vfio7");
        e.Message.ShouldContain("root");
    }

    [Theory]
    [InlineData("0000:01:00.0", "0000:01:00.0")]
    [InlineData("01:1f.7", "0000:01:1f.7")]
    [InlineData("000A:FF:00.1", "000a:ff:00.1")]
    [InlineData("01:00.8", null)]
    [InlineData("1:00.0", null)]
    [InlineData("0000:01:20.0", null)]
    public void PCI_addresses_normalise(string text, string? expected)
    {
        VfioDeviceLocator.NormalizePciAddress(text).ShouldBe(expected);
    }
}

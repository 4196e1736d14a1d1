using System.Buffers.Binary;
using NestedSmmu.Iommufd.Linux;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests.Linux;

/// <summary>
/// The exact bytes LinuxIommufd passes to each ioctl, and how it reads the kernel's outputs.
/// Expected buffers are laid out from include/uapi/linux/iommufd.h and vfio.h field offsets
/// (tests/vectors/iommufd-uapi.json); multi-byte fields are little-endian.
/// </summary>
public sealed class LinuxIommufdMarshallingTests : IDisposable
{
    private readonly RecordingSyscalls _sys = new();
    private readonly LinuxIommufd _iommufd;

    public LinuxIommufdMarshallingTests()
    {
        _iommufd = LinuxIommufd.Open(_sys);
    }

    public void Dispose()
    {
        _iommufd.Dispose();
        _sys.Dispose();
    }

    internal static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    private static uint U32(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(b[offset..]);
    private static ulong U64(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(b[offset..]);
    private static void Put32(Span<byte> b, int offset, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b[offset..], v);
    private static void Put64(Span<byte> b, int offset, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b[offset..], v);

    [Fact]
    public void Open_uses_read_write_and_close_on_exec()
    {
        _sys.Opens.ShouldBe([(LinuxIommufd.DefaultPath, LinuxAbi.O_RDWR | LinuxAbi.O_CLOEXEC)]);
        _iommufd.FileDescriptor.ShouldBe(RecordingSyscalls.IommuFd);
        _iommufd.Description.ShouldBe("/dev/iommu");
    }

    [Fact]
    public void IoasAlloc_sends_12_bytes_and_returns_out_ioas_id()
    {
        _sys.OnIoctl = (_, arg) => { Put32(arg, 8, 3); return 0; };

        _iommufd.AllocIoas().ShouldBe(new IoasId(3));

        var call = _sys.Ioctls.ShouldHaveSingleItem();
        call.Fd.ShouldBe(RecordingSyscalls.IommuFd);
        call.Request.ShouldBe(0x3B81u);
        call.Argument.ShouldBe(Hex("0C000000 00000000 00000000"));
    }

    [Fact]
    public void IoasMap_with_fixed_iova_sends_the_known_40_byte_buffer()
    {
        using var ram = new NativeHostMemoryRegion(unchecked((nint)0x7F00_0000_0000L), 0x10_0000, "ram0");

        ulong iova = _iommufd.MapIoas(new IoasId(3), ram, 0x2000, 0x1000, 0x4000_0000);

        iova.ShouldBe(0x4000_0000UL);
        var call = _sys.Ioctls.ShouldHaveSingleItem();
        call.Request.ShouldBe(0x3B85u);
        // size 40 | flags FIXED_IOVA|WRITEABLE|READABLE = 7 | ioas_id 3 | __reserved 0
        // | user_va 0x7F0000002000 | length 0x1000 | iova 0x40000000
        call.Argument.ShouldBe(Hex(
            "28000000 07000000 03000000 00000000" +
            "0020000000 7F0000" +
            "0010000000000000" +
            "0000004000000000"));
    }

    [Fact]
    public void IoasMap_without_iova_lets_the_kernel_choose_and_returns_it()
    {
        using var ram = new NativeHostMemoryRegion(0x10_0000, 0x2000, "ram0");
        _sys.OnIoctl = (_, arg) => { Put64(arg, 32, 0xABC000); return 0; };

        ulong iova = _iommufd.MapIoas(new IoasId(4), ram, 0, 0x2000, null, IoasMapFlags.Readable);

        iova.ShouldBe(0xABC000UL);
        var a = _sys.Ioctls.Single().Argument;
        U32(a, 4).ShouldBe((uint)IoasMapFlags.Readable);
        U64(a, 16).ShouldBe(0x10_0000UL);
        U64(a, 32).ShouldBe(0UL);
    }

    [Fact]
    public void IoasMap_refuses_ranges_outside_the_region_and_foreign_regions_without_a_syscall()
    {
        using var ram = new NativeHostMemoryRegion(0x10_0000, 0x2000, "ram0");
        using var foreign = new ForeignRegion();

        var outside = Should.Throw<IommufdException>(() => _iommufd.MapIoas(new IoasId(1), ram, 0x1000, 0x2000, 0));
        outside.Errno.ShouldBe(Errno.EFAULT);
        outside.Operation.ShouldBe("IOMMU_IOAS_MAP");
        outside.Message.ShouldContain("ram0");

        var wrong = Should.Throw<IommufdException>(() => _iommufd.MapIoas(new IoasId(1), foreign, 0, 0x1000, 0));
        wrong.Errno.ShouldBe(Errno.EFAULT);
        wrong.Message.ShouldContain("AllocateHostMemory");

        _sys.Ioctls.ShouldBeEmpty();
    }

    private sealed class ForeignRegion() : HostMemoryRegion("emulated", 0x1000)
    {
        protected override void ReadCore(ulong offset, Span<byte> destination) => destination.Clear();
        protected override void WriteCore(ulong offset, ReadOnlySpan<byte> source) { }
    }

    [Fact]
    public void IoasUnmap_sends_24_bytes_and_returns_the_bytes_unmapped()
    {
        _sys.OnIoctl = (_, arg) => { Put64(arg, 16, 0x3000); return 0; };

        _iommufd.UnmapIoas(new IoasId(3), 0x4000_0000, ulong.MaxValue).ShouldBe(0x3000UL);

        var call = _sys.Ioctls.Single();
        call.Request.ShouldBe(0x3B86u);
        call.Argument.ShouldBe(Hex("18000000 03000000 0000004000000000 FFFFFFFFFFFFFFFF"));
    }

    [Fact]
    public void IovaRanges_grows_the_array_after_EMSGSIZE()
    {
        _sys.OnIoctl = (call, arg) =>
        {
            uint capacity = U32(arg, 8);
            if (capacity < 10)
            {
                Put32(arg, 8, 10);
                return -(int)Errno.EMSGSIZE;
            }
            ulong array = U64(arg, 16);
            var ranges = new byte[10 * 16];
            for (int i = 0; i < 10; i++)
            {
                Put64(ranges, i * 16, (ulong)i << 32);
                Put64(ranges, i * 16 + 8, ((ulong)i << 32) + 0xFFFF);
            }
            RecordingSyscalls.WriteUser(array, ranges);
            Put32(arg, 8, 10);
            Put64(arg, 24, 4096);
            return 0;
        };

        IovaRanges r = _iommufd.GetIovaRanges(new IoasId(2));

        _sys.Ioctls.Count.ShouldBe(2);
        _sys.Ioctls.ShouldAllBe(c => c.Request == 0x3B84u && c.Argument.Length == 32);
        U32(_sys.Ioctls[0].Argument, 0).ShouldBe(32u);
        U32(_sys.Ioctls[0].Argument, 4).ShouldBe(2u);
        U32(_sys.Ioctls[0].Argument, 8).ShouldBe(8u);
        U32(_sys.Ioctls[1].Argument, 8).ShouldBe(10u);
        r.Alignment.ShouldBe(4096UL);
        r.Ranges.Count.ShouldBe(10);
        r.Ranges[9].ShouldBe(new IovaRange(9UL << 32, (9UL << 32) + 0xFFFF));
    }

    [Fact]
    public void GetHwInfo_default_type_decodes_the_Arm_SMMUv3_registers()
    {
        var data = new ArmSmmuV3HwInfo(HwInfoArmSmmuV3Flags.None, 0x0DA31B7F, 0x00E70290, 0, 0x0000_0400, 0, 0x0000_0475, 0x43B, 0x2).ToBytes();
        _sys.OnIoctl = (call, arg) =>
        {
            RecordingSyscalls.WriteUser(U64(arg, 16), data);
            Put32(arg, 12, 40);
            Put32(arg, 24, (uint)HwInfoType.ArmSmmuV3);
            arg[28] = 20;
            Put64(arg, 32, (ulong)HwCapabilities.PciAtsNotSupported);
            return 0;
        };

        HwInfo info = _iommufd.GetHwInfo(new DeviceId(1));

        var call = _sys.Ioctls.Single();
        call.Request.ShouldBe(0x3B8Au);
        call.Argument.Length.ShouldBe(40);
        U32(call.Argument, 0).ShouldBe(40u);
        U32(call.Argument, 4).ShouldBe(0u, "no INPUT_TYPE without a requested type");
        U32(call.Argument, 8).ShouldBe(1u);
        U32(call.Argument, 12).ShouldBe(64u);
        U64(call.Argument, 16).ShouldNotBe(0UL);
        U32(call.Argument, 24).ShouldBe(0u);

        info.Type.ShouldBe(HwInfoType.ArmSmmuV3);
        info.DataLength.ShouldBe(40u);
        info.Data.Length.ShouldBe(40);
        info.MaxPasidLog2.ShouldBe((byte)20);
        info.Capabilities.ShouldBe(HwCapabilities.PciAtsNotSupported);
        var smmu = info.AsArmSmmuV3();
        smmu.Idr0.ShouldBe(0x0DA31B7Fu);
        smmu.Iidr.ShouldBe(0x43Bu);
        Should.Throw<InvalidOperationException>(() => info.AsTegra241Cmdqv());
    }

    [Fact]
    public void GetHwInfo_with_a_type_sets_INPUT_TYPE_and_in_data_type()
    {
        _sys.OnIoctl = (call, arg) =>
        {
            RecordingSyscalls.WriteUser(U64(arg, 16), new Tegra241CmdqvHwInfo(0, 1, 1, 4).ToBytes());
            Put32(arg, 12, 8);
            Put32(arg, 24, (uint)HwInfoType.Tegra241Cmdqv);
            return 0;
        };

        var cmdqv = _iommufd.GetTegra241CmdqvHwInfo(new DeviceId(5));

        var a = _sys.Ioctls.Single().Argument;
        U32(a, 4).ShouldBe((uint)HwInfoFlags.InputType);
        U32(a, 8).ShouldBe(5u);
        U32(a, 24).ShouldBe((uint)HwInfoType.Tegra241Cmdqv);
        cmdqv.ShouldBe(new Tegra241CmdqvHwInfo(0, 1, 1, 4));
        cmdqv.VcmdqCount.ShouldBe(2);
        cmdqv.VsidCount.ShouldBe(16);
    }

    [Fact]
    public void GetHwInfo_retries_with_the_kernel_length_when_the_data_is_longer()
    {
        _sys.OnIoctl = (call, arg) => { Put32(arg, 12, 100); Put32(arg, 24, 0x77); return 0; };

        HwInfo info = _iommufd.GetHwInfo(new DeviceId(1));

        _sys.Ioctls.Select(c => U32(c.Argument, 12)).ShouldBe([64u, 100u]);
        info.Data.Length.ShouldBe(100);
    }

    [Fact]
    public void GetHwInfo_with_a_small_buffer_keeps_the_kernel_length_but_only_the_copied_bytes()
    {
        _sys.OnIoctl = (call, arg) => { Put32(arg, 12, 40); Put32(arg, 24, 2); return 0; };

        HwInfo info = _iommufd.GetHwInfo(new DeviceId(1), dataLength: 8);

        _sys.Ioctls.Count.ShouldBe(1);
        U32(_sys.Ioctls[0].Argument, 12).ShouldBe(8u);
        info.DataLength.ShouldBe(40u);
        info.Data.Length.ShouldBe(8);
    }

    [Fact]
    public void Nested_HwptAlloc_sends_data_type_2_len_16_and_a_pointer_to_the_vSTE()
    {
        var vste = new ArmSmmuV3Vste(0xF800F0F0F0F0F0EB, 0x00000000180000D6);
        _sys.OnIoctl = (call, arg) =>
        {
            call.Pointed[32] = RecordingSyscalls.ReadUser(U64(arg, 32), (int)U32(arg, 28));
            Put32(arg, 16, 12);
            return 0;
        };

        HwptId id = _iommufd.AllocNestedHwpt(new DeviceId(1), new ViommuId(6), vste);

        id.ShouldBe(new HwptId(12));
        var call = _sys.Ioctls.Single();
        call.Request.ShouldBe(0x3B89u);
        call.Argument.Length.ShouldBe(48);
        U32(call.Argument, 0).ShouldBe(48u);
        U32(call.Argument, 4).ShouldBe(0u);
        U32(call.Argument, 8).ShouldBe(1u);
        U32(call.Argument, 12).ShouldBe(6u);
        U32(call.Argument, 24).ShouldBe(2u, "IOMMU_HWPT_DATA_ARM_SMMUV3");
        U32(call.Argument, 28).ShouldBe(16u);
        U64(call.Argument, 32).ShouldNotBe(0UL);
        U32(call.Argument, 40).ShouldBe(0u);
        call.Pointed[32].ShouldBe(Hex("EBF0F0F0F0F000F8 D600001800000000"));
    }

    [Fact]
    public void Paging_HwptAlloc_sends_no_data_and_a_fault_id_sets_FAULT_ID_VALID()
    {
        _sys.OnIoctl = (_, arg) => { Put32(arg, 16, 7); return 0; };

        _iommufd.AllocPagingHwpt(new DeviceId(1), new IoasId(2), HwptAllocFlags.NestParent).ShouldBe(new HwptId(7));
        _iommufd.AllocHwpt(new DeviceId(1), new HwptId(7), HwptAllocFlags.None, HwptDataType.ArmSmmuV3, new byte[16], faultId: 9);

        // size 48 | flags NEST_PARENT | dev_id 1 | pt_id 2 | out 0 | __reserved 0 | NONE | len 0 | uptr 0 | fault_id 0 | __reserved2 0
        _sys.Ioctls[0].Argument.ShouldBe(Hex(
            "30000000 01000000 01000000 02000000 00000000 00000000 00000000 00000000 0000000000000000 00000000 00000000"));
        U32(_sys.Ioctls[1].Argument, 4).ShouldBe((uint)HwptAllocFlags.FaultIdValid);
        U32(_sys.Ioctls[1].Argument, 40).ShouldBe(9u);
    }

    [Fact]
    public void Invalidate_passes_the_entries_and_reports_entries_handled_on_failure()
    {
        ulong[] words = [0x0000_0001_0000_0012UL, 0x4000_0000_1000UL, 0x0000_0005_0000_0040UL, 0x34UL];
        _sys.OnIoctl = (call, arg) =>
        {
            call.Pointed[8] = RecordingSyscalls.ReadUser(U64(arg, 8), (int)(U32(arg, 20) * U32(arg, 24)));
            Put32(arg, 24, 1);
            return -(int)Errno.EIO;
        };

        InvalidateResult r = _iommufd.InvalidateArmSmmuV3(new ViommuId(6), words);

        r.ShouldBe(new InvalidateResult(1, Errno.EIO));
        r.Succeeded.ShouldBeFalse();
        var call = _sys.Ioctls.Single();
        call.Request.ShouldBe(0x3B8Du);
        call.Argument.Length.ShouldBe(32);
        U32(call.Argument, 0).ShouldBe(32u);
        U32(call.Argument, 4).ShouldBe(6u);
        U32(call.Argument, 16).ShouldBe(1u, "IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3");
        U32(call.Argument, 20).ShouldBe(16u);
        U32(call.Argument, 24).ShouldBe(2u);
        U32(call.Argument, 28).ShouldBe(0u);
        call.Pointed[8].ShouldBe(Hex(
            "1200000001000000 0010000000400000" +
            "4000000005000000 3400000000000000"));
        var e = Should.Throw<IommufdException>(() => r.ThrowIfFailed(new ViommuId(6)));
        e.Operation.ShouldBe("IOMMU_HWPT_INVALIDATE");
        e.Message.ShouldContain("1 entries handled");
    }

    [Fact]
    public void Invalidate_with_too_few_bytes_fails_with_EFAULT_without_a_syscall()
    {
        _iommufd.Invalidate(new ViommuId(6), HwptInvalidateDataType.ArmSmmuV3, 16, 2, new byte[16])
            .ShouldBe(new InvalidateResult(0, Errno.EFAULT));
        _sys.Ioctls.ShouldBeEmpty();
    }

    [Fact]
    public void Invalidate_with_zero_entries_succeeds_with_a_null_pointer()
    {
        _iommufd.Invalidate(new HwptId(4), HwptInvalidateDataType.ArmSmmuV3, 16, 0, []).ShouldBe(new InvalidateResult(0, Errno.None));
        U64(_sys.Ioctls.Single().Argument, 8).ShouldBe(0UL);
    }

    [Fact]
    public void Tegra241_ViommuAlloc_returns_the_VINTF_mmap_offset_and_length()
    {
        _sys.OnIoctl = (call, arg) =>
        {
            ulong data = U64(arg, 32);
            call.Pointed[32] = RecordingSyscalls.ReadUser(data, (int)U32(arg, 24));
            RecordingSyscalls.WriteUser(data, new Tegra241CmdqvViommuData(0x1000, 0x10000).ToBytes());
            Put32(arg, 20, 8);
            return 0;
        };

        var (viommu, vintf) = _iommufd.AllocTegra241CmdqvViommu(new DeviceId(1), new HwptId(7));

        viommu.Id.ShouldBe(new ViommuId(8));
        viommu.Type.ShouldBe(ViommuType.Tegra241Cmdqv);
        vintf.ShouldBe(new Tegra241CmdqvViommuData(0x1000, 0x10000));
        var call = _sys.Ioctls.Single();
        call.Request.ShouldBe(0x3B90u);
        call.Argument.Length.ShouldBe(40);
        // size 40 | flags 0 | type TEGRA241_CMDQV | dev_id 1 | hwpt_id 7 | out 0 | data_len 16 | __reserved 0 | data_uptr
        call.Argument.AsSpan(0, 32).ToArray().ShouldBe(Hex("28000000 00000000 02000000 01000000 07000000 00000000 10000000 00000000"));
        U64(call.Argument, 32).ShouldNotBe(0UL);
        call.Pointed[32].ShouldBe(new byte[16]);
    }

    [Fact]
    public void ArmSmmuV3_ViommuAlloc_without_data_sends_a_null_pointer()
    {
        _sys.OnIoctl = (_, arg) => { Put32(arg, 20, 8); return 0; };

        var v = _iommufd.AllocViommu(new DeviceId(1), new HwptId(7), ViommuType.ArmSmmuV3);

        v.Id.ShouldBe(new ViommuId(8));
        v.Data.Length.ShouldBe(0);
        _sys.Ioctls.Single().Argument.ShouldBe(Hex("28000000 00000000 01000000 01000000 07000000 00000000 00000000 00000000 0000000000000000"));
        Should.Throw<InvalidOperationException>(() => v.AsTegra241Cmdqv());
    }

    [Fact]
    public void VdeviceAlloc_sends_24_bytes_with_the_64_bit_virt_id()
    {
        _sys.OnIoctl = (_, arg) => { Put32(arg, 12, 11); return 0; };

        _iommufd.AllocVdevice(new ViommuId(8), new DeviceId(1), 0x99).ShouldBe(new VdeviceId(11));

        var call = _sys.Ioctls.Single();
        call.Request.ShouldBe(0x3B91u);
        call.Argument.ShouldBe(Hex("18000000 08000000 01000000 00000000 9900000000000000"));
    }

    [Fact]
    public void HwQueueAlloc_sends_40_bytes()
    {
        _sys.OnIoctl = (_, arg) => { Put32(arg, 20, 13); return 0; };

        _iommufd.AllocHwQueue(new ViommuId(8), HwQueueType.Tegra241Cmdqv, 1, 0x8000_1000, 0x1000).ShouldBe(new HwQueueId(13));

        var call = _sys.Ioctls.Single();
        call.Request.ShouldBe(0x3B94u);
        call.Argument.ShouldBe(Hex("28000000 00000000 08000000 01000000 01000000 00000000 0010008000000000 0010000000000000"));
    }

    [Fact]
    public void VeventqAlloc_returns_a_reader_over_the_fd_that_parses_events_and_lost_markers()
    {
        _sys.OnIoctl = (_, arg) => { Put32(arg, 20, 14); Put32(arg, 24, 42); return 0; };

        using IVeventQueue q = _iommufd.AllocVeventq(new ViommuId(8), VeventqType.ArmSmmuV3, 2);

        var call = _sys.Ioctls.Single();
        call.Request.ShouldBe(0x3B93u);
        call.Argument.ShouldBe(Hex("20000000 00000000 08000000 01000000 02000000 00000000 00000000 00000000"));
        q.Id.ShouldBe(new VeventqId(14));
        q.Type.ShouldBe(VeventqType.ArmSmmuV3);
        q.Depth.ShouldBe(2u);

        // One F_TRANSLATION event for vSID 0x99 at sequence 1, then a lost-events header at 2.
        var stream = new byte[8 + 32 + 8];
        int n = VeventCodec.Write(stream, new Vevent(VeventFlags.None, 1, Evt(new ArmSmmuV3Vevent(0x0000_0099_0000_0010, 0, 0x1234_5000, 0))));
        VeventCodec.Write(stream.AsSpan(n), new Vevent(VeventFlags.LostEvents, 2, ReadOnlyMemory<byte>.Empty));
        _sys.Reads.Enqueue(stream);
        _sys.PollResult = LinuxAbi.POLLIN;

        q.HasEvents.ShouldBeTrue();
        IReadOnlyList<Vevent> events = q.ReadAll();

        events.Count.ShouldBe(2);
        events[0].Sequence.ShouldBe(1u);
        events[0].LostEvents.ShouldBeFalse();
        events[0].AsArmSmmuV3().Sid.ShouldBe(0x99u);
        events[0].AsArmSmmuV3().EventId.ShouldBe((byte)0x10);
        events[0].AsArmSmmuV3().Evt2.ShouldBe(0x1234_5000UL);
        events[1].LostEvents.ShouldBeTrue();
        events[1].Sequence.ShouldBe(2u);
        events[1].Data.Length.ShouldBe(0);

        q.Dispose();
        _sys.Closed.ShouldContain(42);
    }

    private static byte[] Evt(ArmSmmuV3Vevent e)
    {
        var b = new byte[ArmSmmuV3Vevent.Size];
        e.WriteTo(b);
        return b;
    }

    [Fact]
    public void Mmap_maps_shared_read_write_at_the_offset_and_gives_register_access()
    {
        using IMmioMapping page = _iommufd.MapVintfPage(new Tegra241CmdqvViommuData(0x1000, 0x10000));

        var m = _sys.Mmaps.Single();
        m.ShouldBe(m with { Length = 0x10000, Protection = LinuxAbi.PROT_READ | LinuxAbi.PROT_WRITE, Flags = LinuxAbi.MAP_SHARED, Fd = RecordingSyscalls.IommuFd, Offset = 0x1000 });
        page.Offset.ShouldBe(0x1000UL);
        page.Size.ShouldBe(0x10000UL);

        page.Write32(0x4, 0x11);             // VCMDQ0 PROD
        page.Write64(0x80, 0xAABB_CCDD_0000_0001);
        page.Read32(0x4).ShouldBe(0x11u);
        page.Read64(0x80).ShouldBe(0xAABB_CCDD_0000_0001UL);
        page.Read32(0x84).ShouldBe(0xAABB_CCDDu);
        page.Read(0x10000, 4).ShouldBe(0UL, "past the page reads 0");
        page.Read(0x2, 4).ShouldBe(0UL, "misaligned reads 0");
        page.Write(0x10000, 4, uint.MaxValue); // past the end: dropped
        page.Write64(0xFFF8, 0x5);             // last register of the page
        page.Read64(0xFFF8).ShouldBe(0x5UL);

        page.Dispose();
        _sys.Munmaps.ShouldBe([(m.Address, 0x10000UL)]);
    }

    [Fact]
    public void Destroy_sends_8_bytes()
    {
        _iommufd.Destroy(new HwptId(5));

        var call = _sys.Ioctls.Single();
        call.Request.ShouldBe(0x3B80u);
        call.Argument.ShouldBe(Hex("08000000 05000000"));
    }

    [Fact]
    public void AllocateHostMemory_maps_private_anonymous_rounded_memory_and_unmaps_it_on_dispose()
    {
        HostMemoryRegion ram = _iommufd.AllocateHostMemory(5000, "ram0");

        var m = _sys.Mmaps.Single();
        ulong page = (ulong)Environment.SystemPageSize;
        m.Length.ShouldBe((5000 + page - 1) / page * page);
        m.Flags.ShouldBe(LinuxAbi.MAP_PRIVATE | LinuxAbi.MAP_ANONYMOUS);
        m.Fd.ShouldBe(-1);
        var native = ram.ShouldBeOfType<NativeHostMemoryRegion>();
        native.Address.ShouldBe(m.Address);

        ram.Write(0x100, [1, 2, 3]);
        var back = new byte[3];
        ram.Read(0x100, back);
        back.ShouldBe(new byte[] { 1, 2, 3 });

        ram.Dispose();
        _sys.Munmaps.ShouldBe([(m.Address, m.Length)]);
    }

    [Fact]
    public void Dispose_closes_bound_devices_then_the_iommufd()
    {
        RecordingSyscallsExtensions.AddVfioPciDevice(_sys, "0000:01:00.0", "vfio7");
        _sys.OpenResults["/dev/vfio/devices/vfio7"] = 20;
        _iommufd.BindDevice("0000:01:00.0");

        _iommufd.Dispose();
        _iommufd.Dispose();

        _sys.Closed.ShouldBe([20, RecordingSyscalls.IommuFd]);
        Should.Throw<ObjectDisposedException>(() => _iommufd.AllocIoas());
    }
}

internal static class RecordingSyscallsExtensions
{
    /// <summary>Makes sysfs show a PCI device bound to vfio-pci with the given cdev.</summary>
    public static void AddVfioPciDevice(RecordingSyscalls sys, string bdf, string cdev)
    {
        sys.ExistingPaths.Add($"/sys/bus/pci/devices/{bdf}");
        sys.Directories[$"/sys/bus/pci/devices/{bdf}/vfio-dev"] = [cdev];
        sys.ExistingPaths.Add($"/dev/vfio/devices/{cdev}");
    }
}

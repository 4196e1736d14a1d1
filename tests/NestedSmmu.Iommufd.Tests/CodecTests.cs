using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd.Tests;

/// <summary>The typed views over driver data shared by both backends.</summary>
public class CodecTests
{
    [Fact]
    public void Arm_SMMUv3_hw_info_decodes_the_fields_a_VMM_may_use()
    {
        // IHI 0070 6.3: IDR0 ST_LEVEL [28:27] = 1, TERM_MODEL [26], STALL_MODEL [25:24] = 2,
        // TTENDIAN [22:21] = 2, CD2L [19], ASID16 [12], TTF [3:2] = 2, S1P [1], S2P [0].
        const uint idr0 = 0x0E48100B;
        const uint idr1 = 16 | (20 << 6);           // SIDSIZE 16, SSIDSIZE 20
        const uint idr3 = (1 << 10) | (2 << 11);    // RIL, BBML 2
        const uint idr5 = 5 | (1 << 4) | (1 << 6) | (1 << 10); // OAS 48-bit, GRAN4K, GRAN64K, VAX 1
        var info = new ArmSmmuV3HwInfo(HwInfoArmSmmuV3Flags.ErrataRepeatTlbiCfgi, idr0, idr1, 0, idr3, 0, idr5, 0x43B, 0x3);

        ArmSmmuV3HwInfo back = ArmSmmuV3HwInfo.Parse(info.ToBytes());

        back.ShouldBe(info);
        (back.StLevel, back.TermModel, back.StallModel, back.TtEndian).ShouldBe((1u, true, 2u, 2u));
        (back.Cd2l, back.Asid16, back.Ttf, back.S1p, back.S2p).ShouldBe((true, true, 2u, true, true));
        (back.SidSize, back.SsidSize).ShouldBe((16u, 20u));
        (back.Ril, back.Bbml).ShouldBe((true, 2u));
        (back.Oas, back.Gran4K, back.Gran16K, back.Gran64K, back.Vax).ShouldBe((5u, true, false, true, 1u));
        back.Flags.ShouldBe(HwInfoArmSmmuV3Flags.ErrataRepeatTlbiCfgi);
        back.Idr(5).ShouldBe(idr5);
    }

    [Fact]
    public void Arm_SMMUv3_hw_info_layout_is_the_uapi_struct()
    {
        byte[] b = new ArmSmmuV3HwInfo(HwInfoArmSmmuV3Flags.None, 1, 2, 3, 4, 5, 6, 7, 8).ToBytes();

        b.Length.ShouldBe(System.Runtime.InteropServices.Marshal.SizeOf<IommuHwInfoArmSmmuV3>());
        // flags 0, __reserved 4, idr[6] 8, iidr 32, aidr 36
        b.ShouldBe(Convert.FromHexString(
            "00000000 00000000 01000000 02000000 03000000 04000000 05000000 06000000 07000000 08000000".Replace(" ", "", StringComparison.Ordinal)));
    }

    [Fact]
    public void A_short_hw_info_buffer_decodes_with_zeros()
    {
        byte[] b = new ArmSmmuV3HwInfo(HwInfoArmSmmuV3Flags.None, 0xFF, 0xFF, 0, 0, 0, 0xFF, 0, 0).ToBytes();

        ArmSmmuV3HwInfo cut = ArmSmmuV3HwInfo.Parse(b.AsSpan(0, 12));

        cut.Idr0.ShouldBe(0xFFu);
        cut.Idr1.ShouldBe(0u);
        cut.Idr5.ShouldBe(0u);
    }

    [Fact]
    public void Tegra241_hw_info_is_eight_bytes()
    {
        var info = new Tegra241CmdqvHwInfo(0, 1, 2, 5);
        info.ToBytes().ShouldBe(new byte[] { 0, 0, 0, 0, 1, 2, 5, 0 });
        Tegra241CmdqvHwInfo.Parse(info.ToBytes()).ShouldBe(info);
        (info.VcmdqCount, info.VsidCount).ShouldBe((4, 32));
    }

    [Fact]
    public void Vevent_stream_round_trips_events_and_lost_markers()
    {
        var cmdqv = new Tegra241CmdqvVevent(1UL << 3, 1UL << 63);
        var data = new byte[Tegra241CmdqvVevent.Size];
        cmdqv.WriteTo(data);
        Vevent[] written =
        [
            new(VeventFlags.None, Vevent.MaxSequence, data),
            new(VeventFlags.LostEvents, 0, ReadOnlyMemory<byte>.Empty),
            new(VeventFlags.None, 1, data),
        ];
        var stream = new byte[written.Sum(e => VeventCodec.EncodedLength(e))];
        int at = 0;
        foreach (Vevent e in written) at += VeventCodec.Write(stream.AsSpan(at), e);

        var read = new List<Vevent>();
        int consumed = VeventCodec.Parse(stream, Tegra241CmdqvVevent.Size, read);

        consumed.ShouldBe(stream.Length);
        stream.Length.ShouldBe(24 + 8 + 24);
        read.Select(e => (e.Flags, e.Sequence)).ShouldBe([(VeventFlags.None, Vevent.MaxSequence), (VeventFlags.LostEvents, 0u), (VeventFlags.None, 1u)]);
        read[2].AsTegra241Cmdqv().ShouldBe(cmdqv);
        read[2].AsTegra241Cmdqv().IsInError(3).ShouldBeTrue();
        read[2].AsTegra241Cmdqv().IsInError(127).ShouldBeTrue();
        read[2].AsTegra241Cmdqv().IsInError(64).ShouldBeFalse();
        Should.Throw<InvalidOperationException>(() => read[1].AsTegra241Cmdqv());
    }

    [Fact]
    public void Vevent_parse_leaves_a_partial_record()
    {
        var stream = new byte[8 + 32 + 8 + 16];
        VeventCodec.Write(stream, new Vevent(VeventFlags.None, 7, new byte[32]));
        var read = new List<Vevent>();

        VeventCodec.Parse(stream, ArmSmmuV3Vevent.Size, read).ShouldBe(40);
        read.Count.ShouldBe(1);
    }

    [Fact]
    public void Vevent_sequence_wraps_at_INT_MAX()
    {
        Vevent.NextSequence(5).ShouldBe(6u);
        Vevent.NextSequence(int.MaxValue).ShouldBe(0u);
        VeventCodec.DataLength(VeventqType.ArmSmmuV3).ShouldBe(32);
        VeventCodec.DataLength(VeventqType.Tegra241Cmdqv).ShouldBe(16);
        VeventCodec.DataLength(VeventqType.Default).ShouldBeNull();
    }

    [Fact]
    public void Vste_and_CMDQV_driver_data_are_little_endian()
    {
        new ArmSmmuV3Vste(0x0102030405060708, 0x1112131415161718).ToBytes()
            .ShouldBe(Convert.FromHexString("0807060504030201" + "1817161514131211"));
        ArmSmmuV3Vste.Parse(new ArmSmmuV3Vste(9, 10).ToBytes()).ShouldBe(new ArmSmmuV3Vste(9, 10));
        Should.Throw<ArgumentException>(() => ArmSmmuV3Vste.Parse(new byte[15]));
        Tegra241CmdqvViommuData.Parse(new Tegra241CmdqvViommuData(0x1000, 0x10000).ToBytes())
            .ShouldBe(new Tegra241CmdqvViommuData(0x1000, 0x10000));
    }

    [Fact]
    public void Typed_ids_convert_to_ObjectId()
    {
        ObjectId a = new HwptId(5);
        ObjectId b = new ViommuId(5);
        a.ShouldBe(b);
        a.ToString().ShouldBe("5");
        ObjectId.Invalid.Value.ShouldBe(0u);
    }

    [Fact]
    public void Exception_message_names_the_operation_errno_and_detail()
    {
        var e = new IommufdException(Errno.EBUSY, "IOMMU_DESTROY", "id 4");
        e.Message.ShouldBe("IOMMU_DESTROY failed: EBUSY (16, Device or resource busy): id 4");
        e.Errno.ShouldBe(Errno.EBUSY);
        e.Detail.ShouldBe("id 4");

        var unknown = new IommufdException((Errno)200, "read vEVENTQ 3");
        unknown.Message.ShouldBe("read vEVENTQ 3 failed: 200 (200, errno 200)");

        var hinted = IommufdException.ForIoctl(IommufdIoctl.HwQueueAlloc, Errno.EIO, "index 1");
        hinted.Message.ShouldContain("IOMMU_HW_QUEUE_ALLOC failed: EIO (5, Input/output error): index 1. Allocate queue indexes in ascending order");
    }

    [Fact]
    public void Host_memory_regions_check_bounds_and_disposal()
    {
        var region = new ArrayRegion(0x100);
        region.Write(0xF0, new byte[0x10]);
        Should.Throw<ArgumentOutOfRangeException>(() => region.Write(0xF1, new byte[0x10]));
        Should.Throw<ArgumentOutOfRangeException>(() => region.Read(ulong.MaxValue, new byte[2]));
        region.Contains(0x100, 0).ShouldBeTrue();
        region.Contains(0x80, 0x81).ShouldBeFalse();
        region.Dispose();
        region.Released.ShouldBe(1);
        region.Dispose();
        region.Released.ShouldBe(1);
        Should.Throw<ObjectDisposedException>(() => region.Read(0, new byte[1]));
    }

    private sealed class ArrayRegion(int length) : HostMemoryRegion("test", (ulong)length)
    {
        private readonly byte[] _bytes = new byte[length];
        public int Released { get; private set; }
        protected override void ReadCore(ulong offset, Span<byte> destination) => _bytes.AsSpan((int)offset, destination.Length).CopyTo(destination);
        protected override void WriteCore(ulong offset, ReadOnlySpan<byte> source) => source.CopyTo(_bytes.AsSpan((int)offset));
        protected override void Release() => Released++;
    }
}

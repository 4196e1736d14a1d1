using System.Buffers.Binary;
using NestedSmmu.Hardware;
using NestedSmmu.Hardware.Smmu;
using NestedSmmu.Iommufd.Uapi;

namespace NestedSmmu.Iommufd;

/// <summary>
/// The result of IOMMU_GET_HW_INFO for one device.
/// </summary>
/// <param name="Type">The format of <paramref name="Data"/> (<c>out_data_type</c>).</param>
/// <param name="Data">The bytes the kernel copied: its data, cut to the buffer the caller offered.</param>
/// <param name="DataLength">The kernel's own data length (<c>data_len</c> out), possibly more than <paramref name="Data"/> holds.</param>
/// <param name="Capabilities"><c>out_capabilities</c>.</param>
/// <param name="MaxPasidLog2"><c>out_max_pasid_log2</c>: PASID width the device supports, 0 without PASID.</param>
public sealed record HwInfo(HwInfoType Type, ReadOnlyMemory<byte> Data, uint DataLength, HwCapabilities Capabilities, byte MaxPasidLog2)
{
    /// <summary>Decodes <see cref="Data"/> as <see cref="IommuHwInfoArmSmmuV3"/>.</summary>
    /// <exception cref="InvalidOperationException"><see cref="Type"/> is not ARM_SMMUV3.</exception>
    public ArmSmmuV3HwInfo AsArmSmmuV3()
    {
        Expect(HwInfoType.ArmSmmuV3);
        return ArmSmmuV3HwInfo.Parse(Data.Span);
    }

    /// <summary>Decodes <see cref="Data"/> as <see cref="IommuHwInfoTegra241Cmdqv"/>.</summary>
    /// <exception cref="InvalidOperationException"><see cref="Type"/> is not TEGRA241_CMDQV.</exception>
    public Tegra241CmdqvHwInfo AsTegra241Cmdqv()
    {
        Expect(HwInfoType.Tegra241Cmdqv);
        return Tegra241CmdqvHwInfo.Parse(Data.Span);
    }

    private void Expect(HwInfoType type)
    {
        if (Type != type)
            throw new InvalidOperationException(
                $"hw_info data is of type {Type} ({(uint)Type}), not {type}: request type {type} explicitly (IOMMU_HW_INFO_FLAG_INPUT_TYPE).");
    }
}

/// <summary>
/// <c>struct iommu_hw_info_arm_smmuv3</c> decoded: the physical SMMU's raw ID registers, with
/// accessors for the fields userspace may rely on when it builds a vSMMU (the kernel documents
/// that only these are meaningful to a VMM). The fields are decoded by the hardware model's one
/// IDR codec (<see cref="SmmuFeatures.FromIdrs"/>, Arm IHI 0070 6.3.1-6.3.6); the few it does not
/// keep as raw values (ST_LEVEL, TTENDIAN, TTF) are read with its field declarations (SmmuFeatures.IDR0_*).
/// </summary>
public readonly record struct ArmSmmuV3HwInfo(
    HwInfoArmSmmuV3Flags Flags, uint Idr0, uint Idr1, uint Idr2, uint Idr3, uint Idr4, uint Idr5, uint Iidr, uint Aidr)
{
    /// <summary>Bytes of the uAPI struct.</summary>
    public const int Size = 40;

    /// <summary>The ID registers as a feature set (decoded by <see cref="SmmuFeatures.FromIdrs"/>).</summary>
    public SmmuFeatures Features => SmmuFeatures.FromIdrs(Idr0, Idr1, Idr3, Idr5, Iidr, Aidr);

    /// <summary>IDR0[28:27] ST_LEVEL: 0 linear stream table, 1 two-level.</summary>
    public uint StLevel => (uint)SmmuFeatures.IDR0_ST_LEVEL.Get(Idr0);
    /// <summary>IDR0[26] TERM_MODEL: a terminated transaction aborts rather than reading as zero.</summary>
    public bool TermModel => Features.TermModel;
    /// <summary>IDR0[25:24] STALL_MODEL: 0 stall and terminate, 1 terminate only, 2 stall forced.</summary>
    public uint StallModel => (uint)Features.StallModel;
    /// <summary>IDR0[22:21] TTENDIAN: 0 mixed, 2 little-endian only, 3 big-endian only.</summary>
    public uint TtEndian => (uint)SmmuFeatures.IDR0_TTENDIAN.Get(Idr0);
    /// <summary>IDR0[19] CD2L: two-level CD tables.</summary>
    public bool Cd2l => Features.TwoLevelCd;
    /// <summary>IDR0[12] ASID16: 16-bit ASIDs.</summary>
    public bool Asid16 => Features.Asid16;
    /// <summary>IDR0[3:2] TTF: 1 AArch32, 2 AArch64, 3 both.</summary>
    public uint Ttf => (uint)SmmuFeatures.IDR0_TTF.Get(Idr0);
    /// <summary>IDR0[1] S1P: stage-1 translation.</summary>
    public bool S1p => Features.Stage1;
    /// <summary>IDR0[0] S2P: stage-2 translation.</summary>
    public bool S2p => Features.Stage2;

    /// <summary>IDR1[5:0] SIDSIZE: StreamID bits.</summary>
    public uint SidSize => (uint)Features.SidBits;
    /// <summary>IDR1[10:6] SSIDSIZE: SubstreamID bits.</summary>
    public uint SsidSize => (uint)Features.SsidBits;

    /// <summary>IDR3[12:11] BBML: break-before-make level.</summary>
    public uint Bbml => (uint)Features.Bbml;
    /// <summary>IDR3[10] RIL: range invalidation.</summary>
    public bool Ril => Features.Ril;

    /// <summary>IDR5[11:10] VAX: 0 48-bit VA, 1 52-bit VA.</summary>
    public uint Vax => (uint)Features.Vax;
    /// <summary>IDR5[6] GRAN64K.</summary>
    public bool Gran64K => Features.Gran64K;
    /// <summary>IDR5[5] GRAN16K.</summary>
    public bool Gran16K => Features.Gran16K;
    /// <summary>IDR5[4] GRAN4K.</summary>
    public bool Gran4K => Features.Gran4K;
    /// <summary>IDR5[2:0] OAS: output address size encoding (0 32-bit ... 5 48-bit, 6 52-bit; reserved values read as 52-bit).</summary>
    public uint Oas => AddressSize.Encode(Features.OasBits);
    /// <summary>The output address size in bits (IDR5.OAS decoded).</summary>
    public int OasBits => Features.OasBits;

    /// <summary>IDRn by index 0..5.</summary>
    public uint Idr(int n) => n switch
    {
        0 => Idr0, 1 => Idr1, 2 => Idr2, 3 => Idr3, 4 => Idr4, 5 => Idr5,
        _ => throw new ArgumentOutOfRangeException(nameof(n), n, "SMMU_IDR index is 0..5."),
    };

    /// <summary>Decodes the struct; bytes beyond a short buffer read as zero (the kernel copies min(user, kernel) bytes).</summary>
    public static ArmSmmuV3HwInfo Parse(ReadOnlySpan<byte> data)
    {
        Span<byte> b = stackalloc byte[Size];
        b.Clear();
        data[..Math.Min(data.Length, Size)].CopyTo(b);
        return new ArmSmmuV3HwInfo(
            (HwInfoArmSmmuV3Flags)U32(b, 0),
            U32(b, 8), U32(b, 12), U32(b, 16), U32(b, 20), U32(b, 24), U32(b, 28),
            U32(b, 32), U32(b, 36));
    }

    /// <summary>Encodes the struct (the emulated kernel's side), <see cref="Size"/> bytes.</summary>
    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException($"Needs {Size} bytes.", nameof(destination));
        destination[..Size].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination, (uint)Flags);
        for (int i = 0; i < 6; i++) BinaryPrimitives.WriteUInt32LittleEndian(destination[(8 + 4 * i)..], Idr(i));
        BinaryPrimitives.WriteUInt32LittleEndian(destination[32..], Iidr);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[36..], Aidr);
    }

    /// <summary>The encoded struct as a new array.</summary>
    public byte[] ToBytes()
    {
        var b = new byte[Size];
        WriteTo(b);
        return b;
    }

    private static uint U32(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(b[offset..]);
}

/// <summary>
/// <c>struct iommu_hw_info_tegra241_cmdqv</c> decoded: what one VINTF (one VM) gets.
/// </summary>
/// <param name="Flags">Must be 0 today.</param>
/// <param name="Version">CMDQV_PARAM.VER.</param>
/// <param name="Log2Vcmdqs">log2 of the logical VCMDQs per VINTF.</param>
/// <param name="Log2Vsids">log2 of the SID match/replace slots per VINTF.</param>
public readonly record struct Tegra241CmdqvHwInfo(uint Flags, byte Version, byte Log2Vcmdqs, byte Log2Vsids)
{
    /// <summary>Bytes of the uAPI struct.</summary>
    public const int Size = 8;

    /// <summary>Logical VCMDQs one VINTF may allocate.</summary>
    public int VcmdqCount => 1 << Log2Vcmdqs;

    /// <summary>vSIDs one VINTF can translate.</summary>
    public int VsidCount => 1 << Log2Vsids;

    /// <summary>Decodes the struct; bytes beyond a short buffer read as zero.</summary>
    public static Tegra241CmdqvHwInfo Parse(ReadOnlySpan<byte> data)
    {
        Span<byte> b = stackalloc byte[Size];
        b.Clear();
        data[..Math.Min(data.Length, Size)].CopyTo(b);
        return new Tegra241CmdqvHwInfo(BinaryPrimitives.ReadUInt32LittleEndian(b), b[4], b[5], b[6]);
    }

    /// <summary>Encodes the struct, <see cref="Size"/> bytes.</summary>
    public void WriteTo(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException($"Needs {Size} bytes.", nameof(destination));
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Flags);
        destination[4] = Version;
        destination[5] = Log2Vcmdqs;
        destination[6] = Log2Vsids;
        destination[7] = 0;
    }

    /// <summary>The encoded struct as a new array.</summary>
    public byte[] ToBytes()
    {
        var b = new byte[Size];
        WriteTo(b);
        return b;
    }
}

namespace NestedSmmu.Hardware.Smmu;

/// <summary>SMMU_IDR5.OAS encodings (Arm IHI 0070, 6.3.6).</summary>
public static class AddressSize
{
    private static readonly int[] Bits = [32, 36, 40, 42, 44, 48, 52];

    /// <summary>Bits for an OAS/IPS/PS encoding; reserved encodings read as 52 (the largest).</summary>
    public static int FromEncoding(ulong encoding) => encoding < (ulong)Bits.Length ? Bits[encoding] : 52;

    public static bool TryEncode(int bits, out uint encoding)
    {
        int i = Array.IndexOf(Bits, bits);
        encoding = (uint)Math.Max(i, 0);
        return i >= 0;
    }

    public static uint Encode(int bits) => TryEncode(bits, out uint e) ? e
        : throw new ArgumentOutOfRangeException(nameof(bits), $"{bits} is not an architected address size (32, 36, 40, 42, 44, 48, 52).");
}

/// <summary>
/// The feature set of one SMMUv3 instance, reflected in its ID registers. Built from a
/// description (host profiles, tests) or decoded from raw IDR values (scenarios, hw_info).
/// </summary>
public sealed record SmmuFeatures
{
    public bool Stage1 { get; init; } = true;
    public bool Stage2 { get; init; } = true;
    /// <summary>Nesting is stage 1 and stage 2 together (there is no separate IDR bit).</summary>
    public bool Nesting => Stage1 && Stage2;
    public bool Ats { get; init; }
    /// <summary>IDR0.HYP: EL2 (hypervisor) stage-1 streams and TLBI_EL2_* commands.</summary>
    public bool Hyp { get; init; }
    public bool Ril { get; init; } = true;
    public bool Pri { get; init; }
    public bool Msi { get; init; } = true;
    public bool Sev { get; init; } = true;
    public bool CoherentWalk { get; init; } = true;
    public bool Btm { get; init; }
    /// <summary>HTTU: 0 none, 1 access flag, 2 access flag and dirty state.</summary>
    public int Httu { get; init; }
    public bool Asid16 { get; init; } = true;
    public bool Vmid16 { get; init; } = true;
    public bool TwoLevelStreamTable { get; init; } = true;
    public bool TwoLevelCd { get; init; } = true;
    /// <summary>STALL_MODEL: 0 stall and terminate, 1 terminate only, 2 stall only.</summary>
    public int StallModel { get; init; } = 1;
    public bool TermModel { get; init; } = true;
    public int SidBits { get; init; } = 16;
    public int SsidBits { get; init; }
    public int OasBits { get; init; } = 44;
    public bool Gran4K { get; init; } = true;
    public bool Gran16K { get; init; } = true;
    public bool Gran64K { get; init; } = true;
    /// <summary>log2 of the maximum command/event queue entries (IDR1.CMDQS/EVENTQS).</summary>
    public int CmdqLog2Max { get; init; } = 19;
    public int EventqLog2Max { get; init; } = 19;
    public int PriqLog2Max { get; init; }
    public bool Xnx { get; init; } = true;
    public bool Had { get; init; } = true;
    /// <summary>IDR3.BBML: 0 none, 1 level 1, 2 level 2.</summary>
    public int Bbml { get; init; } = 2;
    /// <summary>IDR5.VAX: 0 48-bit VAs, 1 52-bit.</summary>
    public int Vax { get; init; }
    public uint Iidr { get; init; }
    /// <summary>AIDR: architecture revision, 0 = SMMUv3.0.</summary>
    public uint Aidr { get; init; }

    /// <summary>
    /// Input address size (IHI 0070 3.4). IAS is raised to 40 only for AArch32 stage-2 tables;
    /// this model offers AArch64 tables only (IDR0.TTF = 0b10), so IAS equals OAS.
    /// </summary>
    public int IasBits => OasBits;

    // IDR0 fields (IHI 0070 6.3.1): single bits by position, multi-bit fields as RegisterFields.
    public const int IDR0_S2P = 0, IDR0_S1P = 1, IDR0_COHACC = 4, IDR0_BTM = 5, IDR0_HYP = 9, IDR0_ATS = 10, IDR0_ASID16 = 12,
        IDR0_MSI = 13, IDR0_SEV = 14, IDR0_PRI = 16, IDR0_VMID16 = 18, IDR0_CD2L = 19, IDR0_TERM_MODEL = 26;
    public static readonly RegisterField IDR0_TTF = new(3, 2), IDR0_HTTU = new(7, 6), IDR0_TTENDIAN = new(22, 21),
        IDR0_STALL_MODEL = new(25, 24), IDR0_ST_LEVEL = new(28, 27);
    /// <summary>IDR0.TTF = 0b10: AArch64 translation tables only.</summary>
    public const uint TTF_AARCH64 = 2;
    /// <summary>IDR0.TTENDIAN = 0b10: little-endian only.</summary>
    public const uint TTENDIAN_LE = 2;
    // IDR1 fields (6.3.2)
    public static readonly RegisterField IDR1_SIDSIZE = new(5, 0), IDR1_SSIDSIZE = new(10, 6), IDR1_PRIQS = new(15, 11),
        IDR1_EVENTQS = new(20, 16), IDR1_CMDQS = new(25, 21);
    // IDR3 fields (6.3.4)
    public const int IDR3_HAD = 2, IDR3_XNX = 4, IDR3_RIL = 10;
    public static readonly RegisterField IDR3_BBML = new(12, 11);
    // IDR5 fields (6.3.6)
    public const int IDR5_GRAN4K = 4, IDR5_GRAN16K = 5, IDR5_GRAN64K = 6;
    public static readonly RegisterField IDR5_OAS = new(2, 0), IDR5_VAX = new(11, 10);

    private static uint Bit(bool set, int position) => set ? 1u << position : 0;

    public uint Idr0 =>
        Bit(Stage2, IDR0_S2P) | Bit(Stage1, IDR0_S1P) | (uint)IDR0_TTF.Encode(TTF_AARCH64)
        | Bit(CoherentWalk, IDR0_COHACC) | Bit(Btm, IDR0_BTM) | (uint)IDR0_HTTU.Encode((ulong)Httu)
        | Bit(Hyp, IDR0_HYP) | Bit(Ats, IDR0_ATS) | Bit(Asid16, IDR0_ASID16) | Bit(Msi, IDR0_MSI)
        | Bit(Sev, IDR0_SEV) | Bit(Pri, IDR0_PRI) | Bit(Vmid16, IDR0_VMID16)
        | Bit(TwoLevelCd, IDR0_CD2L) | (uint)IDR0_TTENDIAN.Encode(TTENDIAN_LE)
        | (uint)IDR0_STALL_MODEL.Encode((ulong)StallModel) | Bit(TermModel, IDR0_TERM_MODEL)
        | (uint)IDR0_ST_LEVEL.Encode(TwoLevelStreamTable ? 1UL : 0);

    public uint Idr1 => (uint)(IDR1_SIDSIZE.Encode((ulong)SidBits) | IDR1_SSIDSIZE.Encode((ulong)SsidBits) | IDR1_PRIQS.Encode((ulong)PriqLog2Max)
        | IDR1_EVENTQS.Encode((ulong)EventqLog2Max) | IDR1_CMDQS.Encode((ulong)CmdqLog2Max));

    public uint Idr2 => 0;

    public uint Idr3 => Bit(Had, IDR3_HAD) | Bit(Xnx, IDR3_XNX) | Bit(Ril, IDR3_RIL) | (uint)IDR3_BBML.Encode((ulong)Bbml);

    public uint Idr4 => 0;

    public uint Idr5 => (uint)IDR5_OAS.Encode(AddressSize.Encode(OasBits)) | Bit(Gran4K, IDR5_GRAN4K) | Bit(Gran16K, IDR5_GRAN16K)
        | Bit(Gran64K, IDR5_GRAN64K) | (uint)IDR5_VAX.Encode((ulong)Vax);

    /// <summary>The six ID registers in order IDR0..IDR5.</summary>
    public uint[] Idrs => [Idr0, Idr1, Idr2, Idr3, Idr4, Idr5];

    /// <summary>Decodes raw ID registers (from a scenario, a dump or hw_info).</summary>
    public static SmmuFeatures FromIdrs(uint idr0, uint idr1, uint idr3, uint idr5, uint iidr = 0, uint aidr = 0) => new()
    {
        Stage2 = Bits.Get(idr0, IDR0_S2P),
        Stage1 = Bits.Get(idr0, IDR0_S1P),
        CoherentWalk = Bits.Get(idr0, IDR0_COHACC),
        Btm = Bits.Get(idr0, IDR0_BTM),
        Httu = (int)IDR0_HTTU.Get(idr0),
        Ats = Bits.Get(idr0, IDR0_ATS),
        Hyp = Bits.Get(idr0, IDR0_HYP),
        Asid16 = Bits.Get(idr0, IDR0_ASID16),
        Msi = Bits.Get(idr0, IDR0_MSI),
        Sev = Bits.Get(idr0, IDR0_SEV),
        Pri = Bits.Get(idr0, IDR0_PRI),
        Vmid16 = Bits.Get(idr0, IDR0_VMID16),
        TwoLevelCd = Bits.Get(idr0, IDR0_CD2L),
        StallModel = (int)IDR0_STALL_MODEL.Get(idr0),
        TermModel = Bits.Get(idr0, IDR0_TERM_MODEL),
        TwoLevelStreamTable = IDR0_ST_LEVEL.Get(idr0) == 1,
        SidBits = (int)IDR1_SIDSIZE.Get(idr1),
        SsidBits = (int)IDR1_SSIDSIZE.Get(idr1),
        PriqLog2Max = (int)IDR1_PRIQS.Get(idr1),
        EventqLog2Max = (int)IDR1_EVENTQS.Get(idr1),
        CmdqLog2Max = (int)IDR1_CMDQS.Get(idr1),
        Had = Bits.Get(idr3, IDR3_HAD),
        Xnx = Bits.Get(idr3, IDR3_XNX),
        Ril = Bits.Get(idr3, IDR3_RIL),
        Bbml = (int)IDR3_BBML.Get(idr3),
        OasBits = AddressSize.FromEncoding((uint)IDR5_OAS.Get(idr5)),
        Gran4K = Bits.Get(idr5, IDR5_GRAN4K),
        Gran16K = Bits.Get(idr5, IDR5_GRAN16K),
        Gran64K = Bits.Get(idr5, IDR5_GRAN64K),
        Vax = (int)IDR5_VAX.Get(idr5),
        Iidr = iidr,
        Aidr = aidr,
    };

    /// <summary>
    /// The ID registers of QEMU's virt SMMUv3 with stage=nested (QEMU hw/arm/smmuv3.c,
    /// smmuv3_init_id_regs); the others read as zero. Scenarios default to them.
    /// </summary>
    public static IReadOnlyDictionary<SmmuRegister, uint> QemuVirtNestedIdrs { get; } = new Dictionary<SmmuRegister, uint>
    {
        [SmmuRegister.IDR0] = 0x0D44101B,
        [SmmuRegister.IDR1] = 0x02730010,
        [SmmuRegister.IDR3] = 0x1414,
        [SmmuRegister.IDR5] = 0x74,
    };

    /// <summary>QEMU's virt SMMUv3 with stage=nested: <see cref="QemuVirtNestedIdrs"/> decoded.</summary>
    public static SmmuFeatures QemuVirtNested => FromIdrs(QemuVirtNestedIdrs[SmmuRegister.IDR0], QemuVirtNestedIdrs[SmmuRegister.IDR1],
        QemuVirtNestedIdrs[SmmuRegister.IDR3], QemuVirtNestedIdrs[SmmuRegister.IDR5]);
}

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

    // IDR0 fields (IHI 0070 6.3.1)
    public const int IDR0_S2P = 0, IDR0_S1P = 1, IDR0_TTF_LO = 2, IDR0_COHACC = 4, IDR0_BTM = 5, IDR0_HTTU_LO = 6,
        IDR0_HYP = 9, IDR0_ATS = 10, IDR0_ASID16 = 12, IDR0_MSI = 13, IDR0_SEV = 14, IDR0_PRI = 16, IDR0_VMID16 = 18,
        IDR0_CD2L = 19, IDR0_TTENDIAN_LO = 21, IDR0_STALL_MODEL_LO = 24, IDR0_TERM_MODEL = 26, IDR0_ST_LEVEL_LO = 27;
    /// <summary>IDR0.TTF = 0b10: AArch64 translation tables only.</summary>
    public const uint TTF_AARCH64 = 2;
    /// <summary>IDR0.TTENDIAN = 0b10: little-endian only.</summary>
    public const uint TTENDIAN_LE = 2;

    public uint Idr0 =>
        (Stage2 ? 1u << IDR0_S2P : 0) | (Stage1 ? 1u << IDR0_S1P : 0) | (TTF_AARCH64 << IDR0_TTF_LO)
        | (CoherentWalk ? 1u << IDR0_COHACC : 0) | (Btm ? 1u << IDR0_BTM : 0) | ((uint)Httu << IDR0_HTTU_LO)
        | (Hyp ? 1u << IDR0_HYP : 0) | (Ats ? 1u << IDR0_ATS : 0) | (Asid16 ? 1u << IDR0_ASID16 : 0) | (Msi ? 1u << IDR0_MSI : 0)
        | (Sev ? 1u << IDR0_SEV : 0) | (Pri ? 1u << IDR0_PRI : 0) | (Vmid16 ? 1u << IDR0_VMID16 : 0)
        | (TwoLevelCd ? 1u << IDR0_CD2L : 0) | (TTENDIAN_LE << IDR0_TTENDIAN_LO)
        | ((uint)StallModel << IDR0_STALL_MODEL_LO) | (TermModel ? 1u << IDR0_TERM_MODEL : 0)
        | ((TwoLevelStreamTable ? 1u : 0u) << IDR0_ST_LEVEL_LO);

    // IDR1 fields (6.3.2)
    public uint Idr1 => (uint)SidBits | ((uint)SsidBits << 6) | ((uint)PriqLog2Max << 11)
        | ((uint)EventqLog2Max << 16) | ((uint)CmdqLog2Max << 21);

    public uint Idr2 => 0;

    // IDR3 fields (6.3.4): HAD 2, XNX 4, RIL 10, BBML 12:11
    public uint Idr3 => (Had ? 1u << 2 : 0) | (Xnx ? 1u << 4 : 0) | (Ril ? 1u << 10 : 0) | ((uint)Bbml << 11);

    public uint Idr4 => 0;

    // IDR5 fields (6.3.6): OAS 2:0, GRAN4K 4, GRAN16K 5, GRAN64K 6, VAX 11:10
    public uint Idr5 => AddressSize.Encode(OasBits) | (Gran4K ? 1u << 4 : 0) | (Gran16K ? 1u << 5 : 0)
        | (Gran64K ? 1u << 6 : 0) | ((uint)Vax << 10);

    /// <summary>The six ID registers in order IDR0..IDR5.</summary>
    public uint[] Idrs => [Idr0, Idr1, Idr2, Idr3, Idr4, Idr5];

    /// <summary>Decodes raw ID registers (from a scenario, a dump or hw_info).</summary>
    public static SmmuFeatures FromIdrs(uint idr0, uint idr1, uint idr3, uint idr5, uint iidr = 0, uint aidr = 0) => new()
    {
        Stage2 = Bits.Get(idr0, IDR0_S2P),
        Stage1 = Bits.Get(idr0, IDR0_S1P),
        CoherentWalk = Bits.Get(idr0, IDR0_COHACC),
        Btm = Bits.Get(idr0, IDR0_BTM),
        Httu = (int)Bits.Get(idr0, 7, 6),
        Ats = Bits.Get(idr0, IDR0_ATS),
        Hyp = Bits.Get(idr0, IDR0_HYP),
        Asid16 = Bits.Get(idr0, IDR0_ASID16),
        Msi = Bits.Get(idr0, IDR0_MSI),
        Sev = Bits.Get(idr0, IDR0_SEV),
        Pri = Bits.Get(idr0, IDR0_PRI),
        Vmid16 = Bits.Get(idr0, IDR0_VMID16),
        TwoLevelCd = Bits.Get(idr0, IDR0_CD2L),
        StallModel = (int)Bits.Get(idr0, 25, 24),
        TermModel = Bits.Get(idr0, IDR0_TERM_MODEL),
        TwoLevelStreamTable = Bits.Get(idr0, 28, 27) == 1,
        SidBits = (int)Bits.Get(idr1, 5, 0),
        SsidBits = (int)Bits.Get(idr1, 10, 6),
        PriqLog2Max = (int)Bits.Get(idr1, 15, 11),
        EventqLog2Max = (int)Bits.Get(idr1, 20, 16),
        CmdqLog2Max = (int)Bits.Get(idr1, 25, 21),
        Had = Bits.Get(idr3, 2),
        Xnx = Bits.Get(idr3, 4),
        Ril = Bits.Get(idr3, 10),
        Bbml = (int)Bits.Get(idr3, 12, 11),
        OasBits = AddressSize.FromEncoding(Bits.Get(idr5, 2, 0)),
        Gran4K = Bits.Get(idr5, 4),
        Gran16K = Bits.Get(idr5, 5),
        Gran64K = Bits.Get(idr5, 6),
        Vax = (int)Bits.Get(idr5, 11, 10),
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

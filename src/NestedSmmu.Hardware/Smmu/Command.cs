namespace NestedSmmu.Hardware.Smmu;

/// <summary>Command opcodes (IHI 0070 4.1, Table 4.1).</summary>
public enum CommandOpcode : byte
{
    PREFETCH_CONFIG = 0x01,
    PREFETCH_ADDR = 0x02,
    CFGI_STE = 0x03,
    /// <summary>CFGI_STE_RANGE; with Range = 31 it is what Linux calls CFGI_ALL.</summary>
    CFGI_STE_RANGE = 0x04,
    CFGI_CD = 0x05,
    CFGI_CD_ALL = 0x06,
    CFGI_VMS_PIDM = 0x07,
    TLBI_NH_ALL = 0x10,
    TLBI_NH_ASID = 0x11,
    TLBI_NH_VA = 0x12,
    TLBI_NH_VAA = 0x13,
    TLBI_EL3_ALL = 0x18,
    TLBI_EL3_VA = 0x1A,
    TLBI_EL2_ALL = 0x20,
    TLBI_EL2_ASID = 0x21,
    TLBI_EL2_VA = 0x22,
    TLBI_EL2_VAA = 0x23,
    TLBI_S12_VMALL = 0x28,
    TLBI_S2_IPA = 0x2A,
    TLBI_NSNH_ALL = 0x30,
    ATC_INV = 0x40,
    PRI_RESP = 0x41,
    RESUME = 0x44,
    STALL_TERM = 0x45,
    CMD_SYNC = 0x46,
}

/// <summary>CMDQ_CONS.ERR / VCMDQ CONS.ERR values (IHI 0070 4.2.1).</summary>
public enum CommandError : uint
{
    None = 0,
    CERROR_ILL = 1,
    CERROR_ABT = 2,
    CERROR_ATC_INV_SYNC = 3,
}

/// <summary>CMD_SYNC.CS: what the SMMU signals on completion.</summary>
public enum SyncSignal : uint { None = 0, Irq = 1, Sev = 2 }

/// <summary>
/// One 16-byte command-queue entry (IHI 0070 4). Field accessors are valid for the opcodes
/// that define them; <see cref="CommandCodec"/> checks which fields an opcode allows.
/// </summary>
public readonly record struct Command(ulong W0, ulong W1)
{
    public const int Size = 16;

    /// <summary>[7:0] Opcode</summary>
    public byte Op => (byte)W0;
    public CommandOpcode Opcode => (CommandOpcode)Op;
    /// <summary>[11] SSV: substream valid</summary>
    public bool SSV => Bits.Get(W0, 11);
    /// <summary>[31:12] SubstreamID (CFGI_CD, ATC_INV, PRI_RESP)</summary>
    public uint SSID => (uint)Bits.Get(W0, 31, 12);
    /// <summary>[63:32] StreamID (CFGI_*, PREFETCH_*, ATC_INV, PRI_RESP, RESUME)</summary>
    public uint SID => (uint)(W0 >> 32);
    /// <summary>[16:12] NUM (range TLBI)</summary>
    public uint NUM => (uint)Bits.Get(W0, 16, 12);
    /// <summary>[25:20] SCALE (range TLBI; IHI 0070 G.b 4.4.1.1 makes it six bits, Linux fills five)</summary>
    public uint SCALE => (uint)Bits.Get(W0, 25, 20);
    /// <summary>[47:32] VMID (TLBI)</summary>
    public ushort VMID => (ushort)Bits.Get(W0, 47, 32);
    /// <summary>[63:48] ASID (TLBI)</summary>
    public ushort ASID => (ushort)Bits.Get(W0, 63, 48);
    /// <summary>[64] Leaf (CFGI_CD, TLBI_*_VA, TLBI_S2_IPA)</summary>
    public bool Leaf => Bits.Get(W1, 0);
    /// <summary>[68:64] Range (CFGI_STE_RANGE): 2^(Range+1) StreamIDs</summary>
    public uint Range => (uint)Bits.Get(W1, 4, 0);
    /// <summary>[73:72] TTL</summary>
    public uint TTL => (uint)Bits.Get(W1, 9, 8);
    /// <summary>[75:74] TG: 0 no range/TTL hint, 1 4K, 2 16K, 3 64K</summary>
    public uint TG => (uint)Bits.Get(W1, 11, 10);
    /// <summary>[127:76] Address (VA, IPA [115:76] with upper bits RES0)</summary>
    public ulong Address => W1 & Bits.Mask(63, 12);
    /// <summary>ATC_INV [9] Global</summary>
    public bool Global => Bits.Get(W0, 9);
    /// <summary>ATC_INV [69:64] Size: the range covers 2^Size pages (52 = everything)</summary>
    public uint AtcSize => (uint)Bits.Get(W1, 5, 0);
    /// <summary>CMD_SYNC [13:12] CS</summary>
    public SyncSignal CS => (SyncSignal)Bits.Get(W0, 13, 12);
    /// <summary>CMD_SYNC [63:32] MSIData</summary>
    public uint MsiData => (uint)(W0 >> 32);
    /// <summary>CMD_SYNC [115:66] MSIAddress [51:2]</summary>
    public ulong MsiAddress => W1 & Bits.Mask(51, 2);
    /// <summary>PRI_RESP [72:64] PRGIndex</summary>
    public uint PrgIndex => (uint)Bits.Get(W1, 8, 0);
    /// <summary>RESUME [13:12] Resp</summary>
    public uint Resp => (uint)Bits.Get(W0, 13, 12);
    /// <summary>PRI_RESP [77:76] Resp</summary>
    public uint PriRespCode => (uint)Bits.Get(W1, 13, 12);
    /// <summary>RESUME [79:64] STAG</summary>
    public ushort Stag => (ushort)Bits.Get(W1, 15, 0);

    public override string ToString() => $"{Enum.GetName(Opcode) ?? $"op 0x{Op:X2}"} [0x{W0:X16}, 0x{W1:X16}]";

    // Encoders used by drivers (the guest, the VMM, the host kernel emulation) and tests.
    public static Command CfgiSte(uint sid, bool leaf = true) => new((ulong)CommandOpcode.CFGI_STE | ((ulong)sid << 32), leaf ? 1UL : 0);
    public static Command CfgiSteRange(uint sid, uint range) => new((ulong)CommandOpcode.CFGI_STE_RANGE | ((ulong)sid << 32), range & 0x1F);
    /// <summary>Every STE: CFGI_STE_RANGE with Range = 31 (Linux's CFGI_ALL).</summary>
    public static Command CfgiAll() => CfgiSteRange(0, 31);
    /// <summary>CFGI_CD has no SSV bit: substream 0 is named by SSID 0.</summary>
    public static Command CfgiCd(uint sid, uint ssid, bool leaf = true) =>
        new((ulong)CommandOpcode.CFGI_CD | ((ulong)(ssid & 0xFFFFF) << 12) | ((ulong)sid << 32), leaf ? 1UL : 0);
    public static Command CfgiCdAll(uint sid) => new((ulong)CommandOpcode.CFGI_CD_ALL | ((ulong)sid << 32), 0);
    public static Command TlbiNhAll(ushort vmid) => new((ulong)CommandOpcode.TLBI_NH_ALL | ((ulong)vmid << 32), 0);
    public static Command TlbiNhAsid(ushort vmid, ushort asid) => new((ulong)CommandOpcode.TLBI_NH_ASID | ((ulong)vmid << 32) | ((ulong)asid << 48), 0);
    public static Command TlbiNhVa(ushort vmid, ushort asid, ulong va, bool leaf = false, uint tg = 0, uint ttl = 0, uint num = 0, uint scale = 0) =>
        Tlbi(CommandOpcode.TLBI_NH_VA, vmid, asid, va, leaf, tg, ttl, num, scale);
    public static Command TlbiNhVaa(ushort vmid, ulong va, bool leaf = false, uint tg = 0, uint ttl = 0, uint num = 0, uint scale = 0) =>
        Tlbi(CommandOpcode.TLBI_NH_VAA, vmid, 0, va, leaf, tg, ttl, num, scale);
    public static Command TlbiEl2All() => new((ulong)CommandOpcode.TLBI_EL2_ALL, 0);
    public static Command TlbiEl2Asid(ushort asid) => new((ulong)CommandOpcode.TLBI_EL2_ASID | ((ulong)asid << 48), 0);
    public static Command TlbiEl2Va(ushort asid, ulong va, bool leaf = false, uint tg = 0, uint ttl = 0, uint num = 0, uint scale = 0) =>
        Tlbi(CommandOpcode.TLBI_EL2_VA, 0, asid, va, leaf, tg, ttl, num, scale);
    public static Command TlbiS12Vmall(ushort vmid) => new((ulong)CommandOpcode.TLBI_S12_VMALL | ((ulong)vmid << 32), 0);
    public static Command TlbiS2Ipa(ushort vmid, ulong ipa, bool leaf = false, uint tg = 0, uint ttl = 0, uint num = 0, uint scale = 0) =>
        Tlbi(CommandOpcode.TLBI_S2_IPA, vmid, 0, ipa & Bits.Mask(51, 12), leaf, tg, ttl, num, scale);
    public static Command TlbiNsnhAll() => new((ulong)CommandOpcode.TLBI_NSNH_ALL, 0);
    public static Command AtcInv(uint sid, uint? ssid, ulong address, uint size, bool global = false) =>
        new((ulong)CommandOpcode.ATC_INV | (global ? 1UL << 9 : 0) | (ssid is null ? 0 : (1UL << 11) | ((ulong)ssid.Value << 12)) | ((ulong)sid << 32),
            (address & Bits.Mask(63, 12)) | (size & 0x3F));
    public static Command Sync(SyncSignal cs = SyncSignal.None, ulong msiAddress = 0, uint msiData = 0) =>
        new((ulong)CommandOpcode.CMD_SYNC | ((ulong)cs << 12) | ((ulong)msiData << 32), msiAddress & Bits.Mask(51, 2));
    public static Command PrefetchConfig(uint sid) => new((ulong)CommandOpcode.PREFETCH_CONFIG | ((ulong)sid << 32), 0);
    public static Command PriResp(uint sid, uint? ssid, uint prgIndex, uint resp) =>
        new((ulong)CommandOpcode.PRI_RESP | (ssid is null ? 0 : (1UL << 11) | ((ulong)ssid.Value << 12)) | ((ulong)sid << 32),
            (prgIndex & 0x1FF) | ((ulong)(resp & 3) << 12));
    public static Command Resume(uint sid, ushort stag, uint resp) => new((ulong)CommandOpcode.RESUME | ((ulong)(resp & 3) << 12) | ((ulong)sid << 32), stag);

    /// <summary>
    /// This command with [47:32] VMID replaced (TLBI_NH_*, TLBI_S12_VMALL, TLBI_S2_IPA): how a hypervisor, or the
    /// Tegra241 CMDQV for a guest VINTF, pins a guest's invalidation to the guest's own VMID.
    /// </summary>
    public Command WithVMID(ushort vmid) => this with { W0 = Bits.Set(W0, 47, 32, vmid) };

    /// <summary>This command with [63:32] StreamID replaced (vSID to pSID for CFGI_*, ATC_INV, PRI_RESP, RESUME).</summary>
    public Command WithSID(uint sid) => this with { W0 = Bits.Set(W0, 63, 32, sid) };

    private static Command Tlbi(CommandOpcode op, ushort vmid, ushort asid, ulong address, bool leaf, uint tg, uint ttl, uint num, uint scale)
    {
        ulong w0 = (ulong)op | ((ulong)(num & 0x1F) << 12) | ((ulong)(scale & 0x3F) << 20) | ((ulong)vmid << 32) | ((ulong)asid << 48);
        ulong w1 = (leaf ? 1UL : 0) | ((ulong)(ttl & 3) << 8) | ((ulong)(tg & 3) << 10) | (address & Bits.Mask(63, 12));
        return new Command(w0, w1);
    }
}

/// <summary>
/// Which fields each command may carry (IHI 0070 4.1-4.7). A command with an unknown opcode,
/// a field set that the opcode does not define, or one that needs a feature the SMMU lacks is
/// illegal (CERROR_ILL).
/// </summary>
public static class CommandCodec
{
    private const ulong Op = 0xFF;
    private const ulong Sid = 0xFFFF_FFFF_0000_0000;
    private const ulong SsidSsv = 0xFFFF_F800; // SSID [31:12] and SSV [11]
    private const ulong SsidOnly = 0xFFFF_F000;
    private const ulong Vmid = 0x0000_FFFF_0000_0000;
    private const ulong Asid = 0xFFFF_0000_0000_0000;
    private const ulong NumScale = 0x03F1_F000; // NUM [16:12], SCALE [25:20]
    private const ulong TlbiW1 = 0xFFFF_FFFF_FFFF_F000 | 0xF01; // Address [63:12], TG [11:10], TTL [9:8], Leaf [0]
    private const ulong S2IpaW1 = 0x000F_FFFF_FFFF_F000 | 0xF01;

    /// <summary>Allowed bits of word 0 and word 1 for an opcode; null when the opcode is not defined.</summary>
    public static (ulong W0, ulong W1)? AllowedBits(CommandOpcode op) => op switch
    {
        CommandOpcode.PREFETCH_CONFIG => (Op | SsidSsv | Sid, 0),
        CommandOpcode.PREFETCH_ADDR => (Op | SsidSsv | Sid, 0xFFFF_FFFF_FFFF_F000 | 0x1F9F), // Addr, Stride [12:8], NS [7], Size [4:0]
        CommandOpcode.CFGI_STE => (Op | Sid, 1),
        CommandOpcode.CFGI_STE_RANGE => (Op | Sid, 0x1F),
        CommandOpcode.CFGI_CD => (Op | SsidOnly | Sid, 1),
        CommandOpcode.CFGI_CD_ALL => (Op | Sid, 0),
        CommandOpcode.TLBI_NH_ALL => (Op | Vmid, 0),
        CommandOpcode.TLBI_NH_ASID => (Op | Vmid | Asid, 0),
        CommandOpcode.TLBI_NH_VA => (Op | NumScale | Vmid | Asid, TlbiW1),
        CommandOpcode.TLBI_NH_VAA => (Op | NumScale | Vmid, TlbiW1),
        CommandOpcode.TLBI_EL2_ALL => (Op, 0),
        CommandOpcode.TLBI_EL2_ASID => (Op | Asid, 0),
        CommandOpcode.TLBI_EL2_VA => (Op | NumScale | Asid, TlbiW1),
        CommandOpcode.TLBI_EL2_VAA => (Op | NumScale, TlbiW1),
        CommandOpcode.TLBI_S12_VMALL => (Op | Vmid, 0),
        CommandOpcode.TLBI_S2_IPA => (Op | NumScale | Vmid, S2IpaW1),
        CommandOpcode.TLBI_NSNH_ALL => (Op, 0),
        CommandOpcode.ATC_INV => (Op | (1UL << 9) | SsidSsv | Sid, 0xFFFF_FFFF_FFFF_F000 | 0x3F),
        CommandOpcode.PRI_RESP => (Op | SsidSsv | Sid, 0x1FF | 0x3000),
        CommandOpcode.RESUME => (Op | 0x3000 | Sid, 0xFFFF),
        CommandOpcode.STALL_TERM => (Op | Sid, 0),
        CommandOpcode.CMD_SYNC => (Op | 0x3000 | 0x00C0_0000 | 0x0F00_0000 | Sid /* MSIData */, 0x000F_FFFF_FFFF_FFFC),
        _ => null,
    };

    /// <summary>
    /// The TTL hint of a TLBI: 16 KiB level 1 (TTL 0b01 with TG 0b10) is Reserved without IDR5.DS and
    /// treated as 0b00 (IHI 0070 4.4.1.1).
    /// </summary>
    public static uint EffectiveTtl(in Command cmd) => cmd.TG == 2 && cmd.TTL == 1 ? 0 : cmd.TTL;

    public static bool IsLegal(in Command cmd, SmmuFeatures f)
    {
        if (AllowedBits(cmd.Opcode) is not { } allowed) return false;
        if ((cmd.W0 & ~allowed.W0) != 0 || (cmd.W1 & ~allowed.W1) != 0) return false;
        // A range TLBI (TG != 0) with NUM == 0, SCALE == 0 and TTL == 0b00 is Reserved: CERROR_ILL (IHI 0070 4.4.1.1).
        if (f.Ril && cmd.Opcode is CommandOpcode.TLBI_NH_VA or CommandOpcode.TLBI_NH_VAA or CommandOpcode.TLBI_EL2_VA
                or CommandOpcode.TLBI_EL2_VAA or CommandOpcode.TLBI_S2_IPA
            && cmd.TG != 0 && cmd.NUM == 0 && cmd.SCALE == 0 && EffectiveTtl(cmd) == 0)
            return false;
        return cmd.Opcode switch
        {
            CommandOpcode.TLBI_NH_ALL or CommandOpcode.TLBI_NH_ASID or CommandOpcode.TLBI_NH_VA or CommandOpcode.TLBI_NH_VAA
                or CommandOpcode.CFGI_CD or CommandOpcode.CFGI_CD_ALL => f.Stage1,
            CommandOpcode.TLBI_EL2_ALL or CommandOpcode.TLBI_EL2_ASID or CommandOpcode.TLBI_EL2_VA
                or CommandOpcode.TLBI_EL2_VAA => f.Stage1 && f.Hyp,
            CommandOpcode.TLBI_S12_VMALL or CommandOpcode.TLBI_S2_IPA => f.Stage2,
            CommandOpcode.ATC_INV => f.Ats && (!cmd.SSV || f.SsidBits > 0),
            CommandOpcode.PRI_RESP => f.Pri,
            CommandOpcode.CMD_SYNC => cmd.CS != (SyncSignal)3,
            _ => true,
        };
    }
}

namespace NestedSmmu.Hardware.Smmu;

/// <summary>STE.Config (IHI 0070 5.2, word 0 [3:1]).</summary>
public enum SteConfig : uint
{
    Abort = 0b000,
    Bypass = 0b100,
    Stage1 = 0b101,
    Stage2 = 0b110,
    Nested = 0b111,
}

/// <summary>
/// A Stream Table Entry: 64 bytes, eight little-endian words (IHI 0070 5.2).
/// Accessors name the spec's fields; the bit ranges are the spec's, counted over the whole entry.
/// </summary>
public readonly record struct StreamTableEntry(ulong W0, ulong W1, ulong W2, ulong W3, ulong W4 = 0, ulong W5 = 0, ulong W6 = 0, ulong W7 = 0)
{
    public const int Size = 64;
    public const int Words = 8;

    public static StreamTableEntry FromWords(ReadOnlySpan<ulong> w) => new(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]);

    public void CopyTo(Span<ulong> w) { w[0] = W0; w[1] = W1; w[2] = W2; w[3] = W3; w[4] = W4; w[5] = W5; w[6] = W6; w[7] = W7; }

    // Word 0
    /// <summary>[0] V</summary>
    public bool V => Bits.Get(W0, 0);
    /// <summary>[3:1] Config, raw (reserved encodings 0b001..0b011 included)</summary>
    public uint ConfigRaw => (uint)Bits.Get(W0, 3, 1);
    public SteConfig Config => (SteConfig)ConfigRaw;
    /// <summary>[5:4] S1Fmt: 0 linear, 1 2-level with 4K L2 tables, 2 2-level with 64K L2 tables</summary>
    public uint S1Fmt => (uint)Bits.Get(W0, 5, 4);
    /// <summary>[51:6] S1ContextPtr</summary>
    public ulong S1ContextPtr => W0 & Bits.Mask(51, 6);
    /// <summary>[63:59] S1CDMax: log2 of the number of CDs</summary>
    public uint S1CDMax => (uint)Bits.Get(W0, 63, 59);

    // Word 1 (bits 127:64)
    /// <summary>[65:64] S1DSS: 0 terminate, 1 bypass, 2 use substream 0</summary>
    public uint S1DSS => (uint)Bits.Get(W1, 1, 0);
    /// <summary>[67:66] S1CIR</summary>
    public uint S1CIR => (uint)Bits.Get(W1, 3, 2);
    /// <summary>[69:68] S1COR</summary>
    public uint S1COR => (uint)Bits.Get(W1, 5, 4);
    /// <summary>[71:70] S1CSH</summary>
    public uint S1CSH => (uint)Bits.Get(W1, 7, 6);
    /// <summary>[83] MEV: merge events</summary>
    public bool MEV => Bits.Get(W1, 19);
    /// <summary>[89] S2FWB</summary>
    public bool S2FWB => Bits.Get(W1, 25);
    /// <summary>[91] S1STALLD</summary>
    public bool S1STALLD => Bits.Get(W1, 27);
    /// <summary>[93:92] EATS: 0 ATS off, 1 full ATS, 2 split-stage ATS</summary>
    public uint EATS => (uint)Bits.Get(W1, 29, 28);
    /// <summary>[95:94] STRW: 0 NS-EL1, 2 EL2 (1 and 3 reserved/secure)</summary>
    public uint STRW => (uint)Bits.Get(W1, 31, 30);
    /// <summary>[109:108] SHCFG</summary>
    public uint SHCFG => (uint)Bits.Get(W1, 45, 44);

    // Word 2 (bits 191:128)
    /// <summary>[143:128] S2VMID</summary>
    public ushort S2VMID => (ushort)Bits.Get(W2, 15, 0);
    /// <summary>[178:160] S2 VTCR as a whole (T0SZ..PS)</summary>
    public uint VTCR => (uint)Bits.Get(W2, 50, 32);
    /// <summary>[165:160] S2T0SZ</summary>
    public uint S2T0SZ => (uint)Bits.Get(W2, 37, 32);
    /// <summary>[167:166] S2SL0</summary>
    public uint S2SL0 => (uint)Bits.Get(W2, 39, 38);
    /// <summary>[169:168] S2IR0</summary>
    public uint S2IR0 => (uint)Bits.Get(W2, 41, 40);
    /// <summary>[171:170] S2OR0</summary>
    public uint S2OR0 => (uint)Bits.Get(W2, 43, 42);
    /// <summary>[173:172] S2SH0</summary>
    public uint S2SH0 => (uint)Bits.Get(W2, 45, 44);
    /// <summary>[175:174] S2TG: 0 4K, 1 64K, 2 16K</summary>
    public uint S2TG => (uint)Bits.Get(W2, 47, 46);
    /// <summary>[178:176] S2PS</summary>
    public uint S2PS => (uint)Bits.Get(W2, 50, 48);
    /// <summary>[179] S2AA64</summary>
    public bool S2AA64 => Bits.Get(W2, 51);
    /// <summary>[180] S2ENDI</summary>
    public bool S2ENDI => Bits.Get(W2, 52);
    /// <summary>[181] S2AFFD: access flag faults disabled</summary>
    public bool S2AFFD => Bits.Get(W2, 53);
    /// <summary>[182] S2PTW: protected table walk</summary>
    public bool S2PTW => Bits.Get(W2, 54);
    /// <summary>[183] S2HD</summary>
    public bool S2HD => Bits.Get(W2, 55);
    /// <summary>[184] S2HA</summary>
    public bool S2HA => Bits.Get(W2, 56);
    /// <summary>[185] S2S: stall stage-2 faults</summary>
    public bool S2S => Bits.Get(W2, 57);
    /// <summary>[186] S2R: record stage-2 faults</summary>
    public bool S2R => Bits.Get(W2, 58);

    // Word 3 (bits 255:192)
    /// <summary>[243:196] S2TTB</summary>
    public ulong S2TTB => W3 & Bits.Mask(51, 4);

    public bool TranslatesStage1 => Config is SteConfig.Stage1 or SteConfig.Nested;
    public bool TranslatesStage2 => Config is SteConfig.Stage2 or SteConfig.Nested;

    /// <summary>Builds word 0..3 from named fields (guest drivers and tests encode with this).</summary>
    public static StreamTableEntry Create(SteConfig config, ulong s1ContextPtr = 0, uint s1Fmt = 0, uint s1CdMax = 0,
        uint s1Dss = 0, uint s1Cir = 1, uint s1Cor = 1, uint s1Csh = 3, uint eats = 0, uint shcfg = 1, bool mev = false,
        ushort s2Vmid = 0, uint s2T0sz = 0, uint s2Sl0 = 0, uint s2Tg = 0, uint s2Ps = 0, uint s2Ir0 = 1, uint s2Or0 = 1,
        uint s2Sh0 = 3, bool s2Aa64 = true, bool s2Ha = false, bool s2Affd = false, bool s2R = true, bool s2Ptw = false,
        ulong s2Ttb = 0, bool valid = true, bool s1Stalld = false, uint strw = 0)
    {
        ulong w0 = Bits.Set(0, 0, valid);
        w0 = Bits.Set(w0, 3, 1, (ulong)config);
        w0 = Bits.Set(w0, 5, 4, s1Fmt);
        w0 |= s1ContextPtr & Bits.Mask(51, 6);
        w0 = Bits.Set(w0, 63, 59, s1CdMax);
        ulong w1 = Bits.Set(0, 1, 0, s1Dss);
        w1 = Bits.Set(w1, 3, 2, s1Cir);
        w1 = Bits.Set(w1, 5, 4, s1Cor);
        w1 = Bits.Set(w1, 7, 6, s1Csh);
        w1 = Bits.Set(w1, 19, mev);
        w1 = Bits.Set(w1, 27, s1Stalld);
        w1 = Bits.Set(w1, 29, 28, eats);
        w1 = Bits.Set(w1, 31, 30, strw);
        w1 = Bits.Set(w1, 45, 44, shcfg);
        // S2VMID also tags the TLB entries of a stage-1-only stream when stage 2 is implemented (IHI 0070 5.2, S2VMID).
        ulong w2 = s2Vmid, w3 = 0;
        if (config is SteConfig.Stage2 or SteConfig.Nested)
        {
            w2 = Bits.Set(w2, 37, 32, s2T0sz);
            w2 = Bits.Set(w2, 39, 38, s2Sl0);
            w2 = Bits.Set(w2, 41, 40, s2Ir0);
            w2 = Bits.Set(w2, 43, 42, s2Or0);
            w2 = Bits.Set(w2, 45, 44, s2Sh0);
            w2 = Bits.Set(w2, 47, 46, s2Tg);
            w2 = Bits.Set(w2, 50, 48, s2Ps);
            w2 = Bits.Set(w2, 51, s2Aa64);
            w2 = Bits.Set(w2, 53, s2Affd);
            w2 = Bits.Set(w2, 54, s2Ptw);
            w2 = Bits.Set(w2, 56, s2Ha);
            w2 = Bits.Set(w2, 58, s2R);
            w3 = s2Ttb & Bits.Mask(51, 4);
        }
        return new StreamTableEntry(w0, w1, w2, w3);
    }
}

/// <summary>Level-1 Stream Table Descriptor of a 2-level stream table (IHI 0070 5.1): 8 bytes.</summary>
public readonly record struct L1StreamTableDescriptor(ulong Word)
{
    public const int Size = 8;
    /// <summary>[4:0] Span: the L2 table holds 2^(Span-1) STEs; 0 means invalid</summary>
    public uint Span => (uint)Bits.Get(Word, 4, 0);
    /// <summary>[51:6] L2Ptr</summary>
    public ulong L2Ptr => Word & Bits.Mask(51, 6);

    public static L1StreamTableDescriptor Create(ulong l2Ptr, uint span) => new((l2Ptr & Bits.Mask(51, 6)) | (span & 0x1F));
}

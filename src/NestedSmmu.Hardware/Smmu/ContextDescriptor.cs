namespace NestedSmmu.Hardware.Smmu;

/// <summary>
/// A Context Descriptor: 64 bytes (IHI 0070 5.4). Only the fields this model acts on
/// have accessors; the rest are carried in the words.
/// </summary>
public readonly record struct ContextDescriptor(ulong W0, ulong W1, ulong W2, ulong W3, ulong W4 = 0, ulong W5 = 0, ulong W6 = 0, ulong W7 = 0)
{
    public const int Size = 64;
    public const int Words = 8;

    public static ContextDescriptor FromWords(ReadOnlySpan<ulong> w) => new(w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]);

    /// <summary>[5:0] T0SZ</summary>
    public uint T0SZ => (uint)Bits.Get(W0, 5, 0);
    /// <summary>[7:6] TG0: 0 4K, 1 64K, 2 16K</summary>
    public uint TG0 => (uint)Bits.Get(W0, 7, 6);
    /// <summary>[9:8] IR0</summary>
    public uint IR0 => (uint)Bits.Get(W0, 9, 8);
    /// <summary>[11:10] OR0</summary>
    public uint OR0 => (uint)Bits.Get(W0, 11, 10);
    /// <summary>[13:12] SH0</summary>
    public uint SH0 => (uint)Bits.Get(W0, 13, 12);
    /// <summary>[14] EPD0: walks of TTB0 disabled</summary>
    public bool EPD0 => Bits.Get(W0, 14);
    /// <summary>[15] ENDI: big-endian tables</summary>
    public bool ENDI => Bits.Get(W0, 15);
    /// <summary>[21:16] T1SZ</summary>
    public uint T1SZ => (uint)Bits.Get(W0, 21, 16);
    /// <summary>[23:22] TG1: 1 16K, 2 4K, 3 64K</summary>
    public uint TG1 => (uint)Bits.Get(W0, 23, 22);
    /// <summary>[30] EPD1</summary>
    public bool EPD1 => Bits.Get(W0, 30);
    /// <summary>[31] V</summary>
    public bool V => Bits.Get(W0, 31);
    /// <summary>[34:32] IPS</summary>
    public uint IPS => (uint)Bits.Get(W0, 34, 32);
    /// <summary>[35] AFFD: access flag faults disabled</summary>
    public bool AFFD => Bits.Get(W0, 35);
    /// <summary>[38] TBI0</summary>
    public bool TBI0 => Bits.Get(W0, 38);
    /// <summary>[39] TBI1</summary>
    public bool TBI1 => Bits.Get(W0, 39);
    /// <summary>[41] AA64</summary>
    public bool AA64 => Bits.Get(W0, 41);
    /// <summary>[42] HD</summary>
    public bool HD => Bits.Get(W0, 42);
    /// <summary>[43] HA</summary>
    public bool HA => Bits.Get(W0, 43);
    /// <summary>[44] S: stall faults</summary>
    public bool S => Bits.Get(W0, 44);
    /// <summary>[45] R: record faults</summary>
    public bool R => Bits.Get(W0, 45);
    /// <summary>[46] A: abort (rather than RAZ/WI) on a terminated fault</summary>
    public bool A => Bits.Get(W0, 46);
    /// <summary>[47] ASET</summary>
    public bool ASET => Bits.Get(W0, 47);
    /// <summary>[63:48] ASID</summary>
    public ushort ASID => (ushort)Bits.Get(W0, 63, 48);
    /// <summary>[115:68] TTB0 (word 1 [51:4])</summary>
    public ulong TTB0 => W1 & Bits.Mask(51, 4);
    /// <summary>[179:132] TTB1 (word 2 [51:4])</summary>
    public ulong TTB1 => W2 & Bits.Mask(51, 4);
    /// <summary>[255:192] MAIR</summary>
    public ulong MAIR => W3;

    public static ContextDescriptor Create(ulong ttb0, ushort asid, uint t0sz, uint tg0 = 0, uint ips = 4, bool ha = false,
        bool affd = false, bool r = true, bool a = true, uint ir0 = 1, uint or0 = 1, uint sh0 = 3, bool epd0 = false,
        bool epd1 = true, ulong mair = 0xFF, bool valid = true, bool aa64 = true, bool aset = false)
    {
        ulong w0 = Bits.Set(0, 5, 0, t0sz);
        w0 = Bits.Set(w0, 7, 6, tg0);
        w0 = Bits.Set(w0, 9, 8, ir0);
        w0 = Bits.Set(w0, 11, 10, or0);
        w0 = Bits.Set(w0, 13, 12, sh0);
        w0 = Bits.Set(w0, 14, epd0);
        w0 = Bits.Set(w0, 30, epd1);
        w0 = Bits.Set(w0, 31, valid);
        w0 = Bits.Set(w0, 34, 32, ips);
        w0 = Bits.Set(w0, 35, affd);
        w0 = Bits.Set(w0, 41, aa64);
        w0 = Bits.Set(w0, 43, ha);
        w0 = Bits.Set(w0, 45, r);
        w0 = Bits.Set(w0, 46, a);
        w0 = Bits.Set(w0, 47, aset);
        w0 = Bits.Set(w0, 63, 48, asid);
        return new ContextDescriptor(w0, ttb0 & Bits.Mask(51, 4), 0, mair);
    }
}

/// <summary>Level-1 Context Descriptor of a 2-level CD table (IHI 0070 5.4.2): 8 bytes.</summary>
public readonly record struct L1ContextDescriptor(ulong Word)
{
    public const int Size = 8;
    /// <summary>[0] V</summary>
    public bool V => Bits.Get(Word, 0);
    /// <summary>[51:12] L2Ptr</summary>
    public ulong L2Ptr => Word & Bits.Mask(51, 12);

    public static L1ContextDescriptor Create(ulong l2Ptr) => new((l2Ptr & Bits.Mask(51, 12)) | 1);
}

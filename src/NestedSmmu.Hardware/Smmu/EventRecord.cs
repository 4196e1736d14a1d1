namespace NestedSmmu.Hardware.Smmu;

/// <summary>Event record types (IHI 0070 7.3, Table 7.1).</summary>
public enum EventType : byte
{
    F_UUT = 0x01,
    C_BAD_STREAMID = 0x02,
    F_STE_FETCH = 0x03,
    C_BAD_STE = 0x04,
    F_BAD_ATS_TREQ = 0x05,
    F_STREAM_DISABLED = 0x06,
    F_TRANS_FORBIDDEN = 0x07,
    C_BAD_SUBSTREAMID = 0x08,
    F_CD_FETCH = 0x09,
    C_BAD_CD = 0x0A,
    F_WALK_EABT = 0x0B,
    F_TRANSLATION = 0x10,
    F_ADDR_SIZE = 0x11,
    F_ACCESS = 0x12,
    F_PERMISSION = 0x13,
    F_TLB_CONFLICT = 0x20,
    F_CFG_CONFLICT = 0x21,
    E_PAGE_REQUEST = 0x24,
    F_VMS_FETCH = 0x25,
}

/// <summary>Event CLASS field: which part of the translation faulted.</summary>
public enum FaultClass : uint
{
    /// <summary>Fetching the CD (through stage 2).</summary>
    CD = 0b00,
    /// <summary>A stage-1 translation table walk (through stage 2).</summary>
    TTD = 0b01,
    /// <summary>The input address itself.</summary>
    IN = 0b10,
}

/// <summary>
/// A 32-byte event queue record (IHI 0070 7.3), four little-endian words.
/// Word 0: [7:0] type, [11] SSV, [31:12] SubstreamID, [63:32] StreamID.
/// Word 1: [15:0] STAG, [31] Stall, [33] PnU, [34] InD, [35] RnW, [39] S2, [41:40] CLASS, [44] TTRnW.
/// Word 2: input address. Word 3: IPA [51:12] for stage-2 faults, or fetch address [51:3].
/// </summary>
public readonly record struct EventRecord(ulong W0, ulong W1, ulong W2, ulong W3)
{
    public const int Size = 32;

    public EventType Type => (EventType)(byte)W0;
    public bool SSV => Bits.Get(W0, 11);
    public uint SSID => (uint)Bits.Get(W0, 31, 12);
    public uint SID => (uint)(W0 >> 32);
    public bool Stall => Bits.Get(W1, 31);
    public bool PnU => Bits.Get(W1, 33);
    public bool InD => Bits.Get(W1, 34);
    public bool RnW => Bits.Get(W1, 35);
    public bool S2 => Bits.Get(W1, 39);
    public FaultClass Class => (FaultClass)Bits.Get(W1, 41, 40);
    public bool TTRnW => Bits.Get(W1, 44);
    public ulong InputAddress => W2;
    public ulong Ipa => W3 & Bits.Mask(51, 12);
    public ulong FetchAddress => W3 & Bits.Mask(51, 3);

    public EventRecord WithSid(uint sid) => this with { W0 = (W0 & 0xFFFF_FFFFUL) | ((ulong)sid << 32) };

    public ulong[] ToArray() => [W0, W1, W2, W3];

    /// <summary>Word 0 of any event.</summary>
    public static ulong Header(EventType type, uint sid, uint? ssid) =>
        (byte)type | (ssid is null ? 0 : (1UL << 11) | ((ulong)(ssid.Value & 0xFFFFF) << 12)) | ((ulong)sid << 32);

    /// <summary>Configuration errors (C_BAD_*, F_STREAM_DISABLED, F_UUT...): just the stream and, for some, the substream.</summary>
    public static EventRecord Config(EventType type, uint sid, uint? ssid = null) => new(Header(type, sid, ssid), 0, 0, 0);

    /// <summary>
    /// C_BAD_SUBSTREAMID (IHI 0070 7.3.9): the SubstreamID is always valid in this record, so there
    /// is no SSV qualifier; bit [11] is RES0.
    /// </summary>
    public static EventRecord BadSubstream(uint sid, uint ssid) =>
        new((byte)EventType.C_BAD_SUBSTREAMID | ((ulong)(ssid & 0xFFFFF) << 12) | ((ulong)sid << 32), 0, 0, 0);

    /// <summary>F_STE_FETCH / F_CD_FETCH / F_VMS_FETCH: fetch address in word 3 [51:3].</summary>
    public static EventRecord Fetch(EventType type, uint sid, uint? ssid, ulong fetchAddress) =>
        new(Header(type, sid, ssid), 0, 0, fetchAddress & Bits.Mask(51, 3));

    /// <summary>Translation faults (F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION).</summary>
    /// <param name="descriptorRead">TTRnW for CLASS = TT: whether the faulting descriptor access was a read (false for an HTTU write).</param>
    public static EventRecord Translation(EventType type, uint sid, uint? ssid, ulong inputAddress, bool read,
        bool stage2, FaultClass cls, ulong ipa, bool privileged = false, bool instruction = false, bool descriptorRead = true)
    {
        ulong w1 = (privileged ? 1UL << 33 : 0) | (instruction ? 1UL << 34 : 0) | (read ? 1UL << 35 : 0)
            | (stage2 ? 1UL << 39 : 0) | ((ulong)cls << 40)
            // TTRnW (valid for CLASS = TT, UNKNOWN otherwise): 1 when the faulting descriptor access was a read,
            // 0 when it was the hardware's update of a stage-1 descriptor (IHI 0070 7.3.16).
            | (stage2 && cls != FaultClass.IN && descriptorRead ? 1UL << 44 : 0);
        return new EventRecord(Header(type, sid, ssid), w1, inputAddress, stage2 ? ipa & Bits.Mask(51, 12) : 0);
    }

    /// <summary>
    /// F_WALK_EABT (IHI 0070 7.3.12): an external abort fetching a translation table descriptor. S2 and
    /// CLASS say which walk (a stage-1 descriptor's own fetch is S2 = 0, CLASS = TT); word 3 holds the
    /// descriptor's PA [51:3]; InputAddr and RnW are the transaction's.
    /// </summary>
    public static EventRecord WalkAbort(uint sid, uint? ssid, ulong inputAddress, bool read, bool stage2, FaultClass cls, ulong fetchAddress) =>
        new(Header(EventType.F_WALK_EABT, sid, ssid), (read ? 1UL << 35 : 0) | (stage2 ? 1UL << 39 : 0) | ((ulong)cls << 40),
            inputAddress, fetchAddress & Bits.Mask(51, 3));

    public override string ToString() =>
        $"{Enum.GetName(Type) ?? $"0x{(byte)W0:X2}"} sid=0x{SID:X} [0x{W0:X16}, 0x{W1:X16}, 0x{W2:X16}, 0x{W3:X16}]";
}

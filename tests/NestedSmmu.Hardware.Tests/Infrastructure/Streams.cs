namespace NestedSmmu.Hardware.Tests.Infrastructure;

/// <summary>Ready-made streams on a <see cref="SmmuHarness"/>, built with <see cref="TestPageTable"/>.</summary>
public static class Streams
{
    public const ulong CdPa = 0x1300_0000;
    public const ulong IpaDelta = 0x40_0000_0000;
    public const ulong IpaTables = 0x0100_0000;

    public static StreamTableEntry Stage2Ste(TestPageTable s2, ushort vmid, int ps = 48, bool s2R = true) =>
        StreamTableEntry.Create(SteConfig.Stage2, s2Vmid: vmid, s2T0sz: (uint)(64 - s2.InputBits), s2Sl0: Vmsa.S2Sl0(s2.PageShift, s2.StartLevel),
            s2Tg: Vmsa.Tg0(s2.PageShift), s2Ps: Vmsa.Ps(ps), s2Ttb: s2.Root, s2R: s2R);

    /// <summary>A stage-1 stream (4 KiB granule, 39-bit VA, start level 1) with one CD at <see cref="CdPa"/> + 64 * sid.</summary>
    public static TestPageTable Stage1(SmmuHarness h, uint sid, TestAllocator pa, ushort asid = 1, ushort vmid = 0,
        Func<ContextDescriptor, ContextDescriptor>? cd = null, Func<StreamTableEntry, StreamTableEntry>? ste = null, uint strw = 0)
    {
        var t = new TestPageTable(h.Memory, pa, 12, 39, 1, stage2: false);
        ulong cdAddress = CdPa + sid * 64UL;
        var c = ContextDescriptor.Create(t.Root, asid, t0sz: 25, tg0: 0, ips: Vmsa.Ps(48));
        h.WriteCd(cdAddress, cd?.Invoke(c) ?? c);
        var s = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: cdAddress, s2Vmid: vmid, strw: strw);
        h.WriteSte(sid, ste?.Invoke(s) ?? s);
        return t;
    }

    /// <summary>A stage-2-only stream (4 KiB granule, 40-bit IPA, start level 1 with two concatenated tables).</summary>
    public static TestPageTable Stage2(SmmuHarness h, uint sid, TestAllocator pa, ushort vmid = 1, int ps = 48, bool s2R = true)
    {
        var t = new TestPageTable(h.Memory, pa, 12, 40, 1, stage2: true);
        h.WriteSte(sid, Stage2Ste(t, vmid, ps, s2R));
        return t;
    }

    /// <summary>
    /// A nested stream: stage 1 (4 KiB, 39-bit) whose tables and CD live at IPAs starting at
    /// <see cref="IpaTables"/>, mapped by stage 2 at PA = IPA + <see cref="IpaDelta"/>.
    /// </summary>
    public sealed class Nested
    {
        public required TestPageTable S1 { get; init; }
        public required TestPageTable S2 { get; init; }
        public required ulong CdIpa { get; init; }
        public required TestAllocator Ipa { get; init; }
        /// <summary>PA = IPA + Delta for the stage-1 tables and the CD.</summary>
        public required ulong Delta { get; init; }

        /// <summary>Maps the stage-1 tables (and the CD) through stage 2; call after building stage 1.</summary>
        public void MapTables(ulong? except = null)
        {
            for (ulong a = IpaTables; a < Ipa.Next; a += 0x1000)
                if (a != except) S2.Map(a, a + Delta, 3);
        }

        /// <summary>Maps <paramref name="iova"/> to <paramref name="ipa"/> at stage 1 and <paramref name="ipa"/> to <paramref name="pa"/> at stage 2.</summary>
        public void MapPage(ulong iova, ulong ipa, ulong pa, ulong? s1Attributes = null, ulong? s2Attributes = null)
        {
            S1.Map(iova, ipa, 3, s1Attributes);
            S2.Map(ipa, pa, 3, s2Attributes);
        }
    }

    public static Nested NestedStream(SmmuHarness h, uint sid, TestAllocator pa, ushort asid = 1, ushort vmid = 1,
        Func<ContextDescriptor, ContextDescriptor>? cd = null, bool s2R = true, ulong delta = IpaDelta)
    {
        var s2 = new TestPageTable(h.Memory, pa, 12, 40, 1, stage2: true);
        var ipa = new TestAllocator(IpaTables);
        ulong cdIpa = ipa.Allocate(0x1000, 0x1000);
        var s1 = new TestPageTable(h.Memory, ipa, 12, 39, 1, stage2: false, toPa: a => a + delta);
        var c = ContextDescriptor.Create(s1.Root, asid, t0sz: 25, tg0: 0, ips: Vmsa.Ps(48));
        h.WriteCd(cdIpa + delta, cd?.Invoke(c) ?? c);
        var ste = Stage2Ste(s2, vmid, s2R: s2R) with { W0 = StreamTableEntry.Create(SteConfig.Nested, s1ContextPtr: cdIpa).W0 };
        h.WriteSte(sid, ste);
        return new Nested { S1 = s1, S2 = s2, CdIpa = cdIpa, Ipa = ipa, Delta = delta };
    }
}

/// <summary>Event record words built from IHI 0070 7.3's field positions (independent of the model's encoder).</summary>
public static class Evt
{
    public const byte F_UUT = 0x01, C_BAD_STREAMID = 0x02, F_STE_FETCH = 0x03, C_BAD_STE = 0x04, F_STREAM_DISABLED = 0x06,
        C_BAD_SUBSTREAMID = 0x08, F_CD_FETCH = 0x09, C_BAD_CD = 0x0A, F_WALK_EABT = 0x0B, F_TRANSLATION = 0x10, F_ADDR_SIZE = 0x11,
        F_ACCESS = 0x12, F_PERMISSION = 0x13;
    public const uint ClassCd = 0, ClassTt = 1, ClassIn = 2;

    /// <summary>Word 0: [7:0] type, [11] SSV, [31:12] SubstreamID, [63:32] StreamID.</summary>
    public static ulong W0(byte type, uint sid, uint? ssid = null, bool? ssv = null) =>
        type | ((ssv ?? ssid is not null) ? 1UL << 11 : 0) | ((ulong)(ssid ?? 0) << 12) | ((ulong)sid << 32);

    /// <summary>A translation-related fault record: [35] RnW, [39] S2, [41:40] CLASS, [44] TTRnW; word 2 InputAddr; word 3 IPA[51:12].</summary>
    public static EventRecord Translation(byte type, uint sid, ulong input, AccessKind access, bool s2 = false, uint cls = ClassIn,
        ulong ipa = 0, bool ttRead = false, uint? ssid = null) =>
        new(W0(type, sid, ssid),
            (access == AccessKind.Read ? 1UL << 35 : 0) | (s2 ? 1UL << 39 : 0) | ((ulong)cls << 40) | (ttRead ? 1UL << 44 : 0),
            input, s2 ? ipa & 0x000F_FFFF_FFFF_F000 : 0);

    public static EventRecord Config(byte type, uint sid, uint? ssid = null, bool? ssv = null) => new(W0(type, sid, ssid, ssv), 0, 0, 0);

    public static EventRecord Fetch(byte type, uint sid, ulong fetchAddress, uint? ssid = null) =>
        new(W0(type, sid, ssid), 0, 0, fetchAddress & 0x000F_FFFF_FFFF_FFF8);
}

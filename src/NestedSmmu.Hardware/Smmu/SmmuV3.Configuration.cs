using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Hardware.Smmu;

/// <summary>
/// Configuration: fetching STEs (linear and 2-level stream tables) and CDs (through stage 2 when
/// nested), validating them as IHI 0070 5.2 and 5.4 say, and the configuration cache that
/// CFGI_* commands invalidate.
/// </summary>
public sealed partial class SmmuV3
{
    /// <summary>A validated, decoded STE held in the configuration cache.</summary>
    private sealed class StreamConfig
    {
        public required StreamTableEntry Ste;
        public required ulong SteAddress;
        public WalkRegime Stage2;
        public bool HasStage2;
        public ushort Vmid;
        public TlbRegime Regime;
        /// <summary>Effective S1CDMax, S1Fmt and S1DSS: IGNORED fields read as 0, reserved encodings behave as 0b00 (IHI 0070 5.2).</summary>
        public uint CdMax, S1Fmt, S1Dss;
        public readonly Dictionary<uint, CdConfig> Cds = new();
    }

    /// <summary>A validated, decoded CD.</summary>
    private sealed class CdConfig
    {
        public required ContextDescriptor Cd;
        public required ulong CdAddress;
        public ushort Asid;
        // The TTB0/TTB1 regimes, read by reference on the walk path; HasTtbN is false when that
        // half is disabled (EPDn).
        public WalkRegime Ttb0Regime, Ttb1Regime;
        public bool HasTtb0, HasTtb1;
        public int Ttb0InputBits, Ttb1InputBits;
        public bool Tbi0, Tbi1;
        /// <summary>The StreamWorld has no ASIDs (NS-EL2): every translation is global.</summary>
        public bool NoAsid;
    }

    private readonly Dictionary<uint, StreamConfig> _streams = new();
    // The last stream and CD used: consecutive DMA from one device skips the cache probes.
    // Every configuration invalidation forgets them (ForgetLastConfig).
    private StreamConfig? _lastStream;
    private uint _lastSid;
    private CdConfig? _lastCd;
    private StreamConfig? _lastCdStream;
    private uint _lastCdIndex;

    private void ForgetLastConfig()
    {
        _configGeneration++;
        _lastStream = null;
        _lastCd = null;
        _lastCdStream = null;
    }

    /// <summary>Number of STEs held in the configuration cache (diagnostics).</summary>
    public int CachedStreamCount => _streams.Count;
    public int CachedCdCount => _streams.Values.Sum(s => s.Cds.Count);

    private void InvalidateAllConfig()
    {
        ForgetLastConfig();
        _streams.Clear();
    }

    /// <summary>CFGI_STE: forget the STE of one StreamID (and, with it, its cached CDs).</summary>
    public void InvalidateStreamTableEntry(uint sid)
    {
        ForgetLastConfig();
        _streams.Remove(sid);
    }

    /// <summary>CFGI_STE_RANGE: 2^(Range+1) StreamIDs aligned down from <paramref name="sid"/>; Range 31 is every StreamID.</summary>
    public void InvalidateStreamTableRange(uint sid, uint range)
    {
        ForgetLastConfig();
        if (range >= 31) { _streams.Clear(); return; }
        ulong count = 1UL << (int)(range + 1);
        ulong start = sid & ~(count - 1);
        // Removing while enumerating is allowed for Dictionary (.NET Core 3.0 on): no list per command.
        foreach (uint s in _streams.Keys) if (s - start < count) _streams.Remove(s);
    }

    public void InvalidateContextDescriptor(uint sid, uint ssid)
    {
        ForgetLastConfig();
        if (_streams.TryGetValue(sid, out var cfg)) cfg.Cds.Remove(ssid);
    }

    public void InvalidateContextDescriptors(uint sid)
    {
        ForgetLastConfig();
        if (_streams.TryGetValue(sid, out var cfg)) cfg.Cds.Clear();
    }

    private ushort MaskVmid(ushort v) => Features.Vmid16 ? v : (ushort)(v & 0xFF);
    private ushort MaskAsid(ushort a) => Features.Asid16 ? a : (ushort)(a & 0xFF);

    /// <summary>True when the SMMU can fetch [address, address + length): inside OAS and backed by memory.</summary>
    private bool CanFetch(ulong address, ulong length) => StreamTableLocator.CanFetch(_memory, Features, address, length);

    /// <remarks>C_BAD_STREAMID, F_STE_FETCH and C_BAD_STE record the transaction's SubstreamID and SSV (IHI 0070 7.3.3-7.3.5).</remarks>
    private bool TryGetStream(uint sid, uint? ssid, TranslationTrace? trace, out StreamConfig cfg, out EventRecord fault)
    {
        // The last-stream shortcut is TranslateSlow's, checked before this is called.
        if (_streams.TryGetValue(sid, out cfg!))
        {
            _lastStream = cfg;
            _lastSid = sid;
            trace?.Add("ste", 0, -1, cfg.SteAddress, cfg.Ste.W0, $"STE for SID 0x{sid:X} from the configuration cache: {DescribeSte(cfg.Ste)}");
            fault = default;
            return true;
        }
        Counters.ConfigFetches++;
        cfg = null!;
        fault = default;
        var lookup = StreamTableLocator.Locate(_memory, _regs.StrtabBase, _regs.StrtabBaseCfg, Features, sid);
        if (lookup.TwoLevel && lookup.Status is not (StreamLookupStatus.BeyondTable or StreamLookupStatus.L1FetchFault))
            trace?.Add("l1std", 0, 1, lookup.L1Address, lookup.L1.Word, $"L1STD[{sid >> lookup.Split}]: L2Ptr 0x{lookup.L1.L2Ptr:X}, Span {lookup.L1.Span}");
        switch (lookup.Status)
        {
            case StreamLookupStatus.BeyondTable:
                trace?.Note($"SID 0x{sid:X} is beyond the stream table (LOG2SIZE {lookup.Log2Size}, SIDSIZE {Features.SidBits})");
                fault = EventRecord.Config(EventType.C_BAD_STREAMID, sid, ssid);
                return false;
            case StreamLookupStatus.L1FetchFault:
                fault = EventRecord.Fetch(EventType.F_STE_FETCH, sid, ssid, lookup.L1Address);
                return false;
            case StreamLookupStatus.OutsideSpan:
                trace?.Note(lookup.L1.Span == 0 ? "L1STD.Span = 0: invalid" : $"L2 index {lookup.L2Index} is beyond Span {lookup.L1.Span} ({1UL << (int)Math.Max(0, (int)lookup.L1.Span - 1)} STEs)");
                fault = EventRecord.Config(EventType.C_BAD_STREAMID, sid, ssid);
                return false;
            case StreamLookupStatus.SteFetchFault:
                fault = EventRecord.Fetch(EventType.F_STE_FETCH, sid, ssid, lookup.SteAddress);
                return false;
        }
        ulong steAddress = lookup.SteAddress;
        var ste = StreamTableLocator.ReadSte(_memory, steAddress);
        trace?.Add("ste", 0, -1, steAddress, ste.W0, $"STE for SID 0x{sid:X} at 0x{steAddress:X}: [0x{ste.W0:X16}, 0x{ste.W1:X16}, 0x{ste.W2:X16}, 0x{ste.W3:X16}] {DescribeSte(ste)}");
        string? why = ValidateSte(ste, out var s2, out bool hasS2);
        if (why is not null)
        {
            trace?.Note($"C_BAD_STE: {why}");
            fault = EventRecord.Config(EventType.C_BAD_STE, sid, ssid);
            return false;
        }
        bool el2 = StrwUsed(ste) && ste.STRW == 2;
        // S1CDMax, S1Fmt and S1DSS are IGNORED without substreams (IDR1.SSIDSIZE = 0 or S1CDMax = 0);
        // S1Fmt 0b11 and S1DSS 0b11 are Reserved and behave as 0b00 (IHI 0070 5.2).
        uint cdMax = Features.SsidBits == 0 ? 0 : ste.S1CDMax;
        cfg = new StreamConfig
        {
            Ste = ste,
            SteAddress = steAddress,
            Stage2 = s2,
            HasStage2 = hasS2,
            // Stage-1-only EL1 streams are tagged with S2VMID when stage 2 exists; EL2 streams ignore it (IHI 0070 5.2.2, IgnoreSTES2VMID).
            Vmid = Features.Stage2 && !el2 ? MaskVmid(ste.S2VMID) : (ushort)0,
            Regime = el2 ? TlbRegime.El2 : ste.Config == SteConfig.Stage2 ? TlbRegime.Stage2 : TlbRegime.NonHyp,
            CdMax = cdMax,
            S1Fmt = cdMax == 0 || ste.S1Fmt == 3 ? 0 : ste.S1Fmt,
            S1Dss = cdMax == 0 || ste.S1DSS == 3 ? 0 : ste.S1DSS,
        };
        _streams[sid] = cfg;
        _lastStream = cfg;
        _lastSid = sid;
        return true;
    }

    private static string DescribeSte(in StreamTableEntry ste) =>
        $"V={(ste.V ? 1 : 0)} Config={(Enum.IsDefined(ste.Config) ? ste.Config.ToString() : $"0b{Convert.ToString(ste.ConfigRaw, 2).PadLeft(3, '0')} (reserved)")}" +
        (ste.TranslatesStage1 ? $" S1ContextPtr=0x{ste.S1ContextPtr:X} S1Fmt={ste.S1Fmt} S1CDMax={ste.S1CDMax} S1DSS={ste.S1DSS}" : "") +
        (ste.TranslatesStage2 ? $" S2VMID={ste.S2VMID} S2T0SZ={ste.S2T0SZ} S2SL0={ste.S2SL0} S2TG={ste.S2TG} S2PS={ste.S2PS} S2TTB=0x{ste.S2TTB:X} S2R={(ste.S2R ? 1 : 0)}" : "");

    /// <summary>
    /// STE.STRW is used only by a stage-1-only stream on an SMMU with IDR0.Hyp; otherwise it is
    /// IGNORED and the StreamWorld is NS-EL1 (IHI 0070 5.2.2, IgnoreSTESTRW).
    /// </summary>
    private bool StrwUsed(in StreamTableEntry ste) => Features.Stage1 && Features.Hyp && ste.Config == SteConfig.Stage1;

    /// <summary>Checks an STE against IHI 0070 5.2.2's SteIllegal(); null when valid.</summary>
    private string? ValidateSte(in StreamTableEntry ste, out WalkRegime s2, out bool hasS2)
    {
        s2 = default;
        hasS2 = false;
        if (!ste.V) return "STE.V = 0";
        // Config 0b0xx (abort, and the reserved values that behave as abort) and bypass translate nothing.
        if (ste.ConfigRaw < 0b100 || ste.Config == SteConfig.Bypass) return null;
        if (ste.TranslatesStage1 && !Features.Stage1) return "stage 1 is not implemented (IDR0.S1P = 0)";
        if (ste.TranslatesStage2 && !Features.Stage2) return "stage 2 is not implemented (IDR0.S2P = 0)";
        if (Features.Ats)
        {
            // EATS 0b11 (full ATS with DPT checks) is Reserved without IDR3.DPT and behaves as 0b00.
            if (ste.EATS == 2 && (ste.Config != SteConfig.Nested || ste.S2S)) return "EATS = 0b10 (split-stage ATS) needs Config = nested and S2S = 0";
            if (ste.EATS == 1 && ste.S2S && ste.TranslatesStage2) return "EATS = 0b01 (full ATS) with S2S = 1";
        }
        if (StrwUsed(ste) && (ste.STRW & 1) != 0) return $"STRW 0b{Convert.ToString(ste.STRW, 2).PadLeft(2, '0')} is reserved";
        if (ste.TranslatesStage1)
        {
            if (ste.S1STALLD && Features.StallModel != 0) return "S1STALLD = 1, but IDR0.STALL_MODEL does not make stalls configurable";
            if (Features.SsidBits != 0)
            {
                if (ste.S1CDMax > Features.SsidBits) return $"S1CDMax {ste.S1CDMax} exceeds SSIDSIZE {Features.SsidBits}";
                if (ste.S1CDMax != 0 && ste.S1Fmt is 1 or 2 && !Features.TwoLevelCd) return "2-level CD tables are not implemented (IDR0.CD2L = 0)";
            }
            if (!ste.TranslatesStage2 && !Bits.FitsIn(ste.S1ContextPtr, Features.OasBits))
                return $"S1ContextPtr 0x{ste.S1ContextPtr:X} exceeds the {Features.OasBits}-bit OAS";
        }
        bool s2VmidUsed = Features.Stage2 && !(StrwUsed(ste) && ste.STRW != 0);
        if (s2VmidUsed && !Features.Vmid16 && (ste.S2VMID >> 8) != 0) return $"S2VMID 0x{ste.S2VMID:X} has bits [15:8] set with 8-bit VMIDs";
        if (!ste.TranslatesStage2) return null;

        if (ste.S2S && Features.StallModel == 1) return "S2S = 1, but IDR0.STALL_MODEL is terminate-only";
        if (!ste.S2S && Features.StallModel == 2) return "S2S = 0, but IDR0.STALL_MODEL is stall-only";
        if (!ste.S2AA64) return "S2AA64 = 0: AArch32 stage-2 tables are not implemented (IDR0.TTF = AArch64)";
        if ((ste.S2HA || ste.S2HD) && Features.Httu == 0) return "S2HA/S2HD set without HTTU (IDR0.HTTU = 0)";
        if (ste.S2HD && Features.Httu == 1) return "S2HD set, but IDR0.HTTU offers the access flag only";
        if (GranuleGeometry.FromTg0(ste.S2TG) is not { } g || !GranuleSupported(g)) return $"S2TG {ste.S2TG} names an unimplemented granule";
        int outBits = Math.Min(AddressSize.FromEncoding(ste.S2PS), Features.OasBits);
        // The start-level table address must fit the effective S2PS, and 48 bits below 64 KiB pages (IHI 0070 5.2, S2TTB).
        if (!Bits.FitsIn(ste.S2TTB, outBits) || (g != Granule.G64K && !Bits.FitsIn(ste.S2TTB, 48)))
            return $"S2TTB 0x{ste.S2TTB:X} is outside the {outBits}-bit effective S2PS";
        int ia = 64 - (int)ste.S2T0SZ;
        // S2T0SZ: MAX(16, 64 - IAS) for 4 and 16 KiB, MAX(12, 64 - IAS) for 64 KiB, up to 39 (IHI 0070 5.2.2, STES2T0SZInvalid).
        if (ste.S2T0SZ < (g == Granule.G64K ? 12u : 16u) || ste.S2T0SZ > 39) return $"S2T0SZ {ste.S2T0SZ} is out of range";
        if (ia > Features.IasBits) return $"S2T0SZ {ste.S2T0SZ} gives a {ia}-bit IPA, beyond the {Features.IasBits}-bit IAS";
        if (GranuleGeometry.Stage2StartLevel(g, ste.S2SL0) is not { } start) return $"S2SL0 {ste.S2SL0} is reserved for the {1 << (int)g >> 10}K granule";
        int stride = GranuleGeometry.Stride(g);
        int bitsAtStart = ia - GranuleGeometry.LevelShift(g, start);
        // The start level must resolve at least one bit and at most 16 concatenated tables' worth.
        if (bitsAtStart < 1 || bitsAtStart > stride + 4) return $"S2SL0 {ste.S2SL0} (start level {start}) is inconsistent with S2T0SZ {ste.S2T0SZ}";
        if (ste.S2ENDI) return "S2ENDI = 1: big-endian tables are not implemented (IDR0.TTENDIAN = LE)";
        int concat = Math.Max(0, bitsAtStart - stride);
        // The start table(s) are aligned to their size; lower S2TTB bits are ignored.
        ulong tableBytes = Math.Max(64UL, 8UL << bitsAtStart);
        s2 = new WalkRegime(2, g, ste.S2TTB & ~(tableBytes - 1), ia, start, concat, outBits,
            ste.S2HA && Features.Httu >= 1, ste.S2AFFD, Features.OasBits == 52);
        hasS2 = true;
        return null;
    }

    private bool GranuleSupported(Granule g) => g switch { Granule.G4K => Features.Gran4K, Granule.G16K => Features.Gran16K, _ => Features.Gran64K };

    /// <summary>Smallest TxSZ: 48-bit inputs, or 52-bit with 64K pages when IDR5.VAX says so.</summary>
    private uint MinTxSz(Granule g) => g == Granule.G64K && Features.Vax == 1 ? 12u : 16u;

    /// <summary>What a CD fetch is for: the stream, the transaction (its IDs, address and access) and the CD index.</summary>
    private readonly record struct CdLookup(StreamConfig Stream, uint Sid, uint? Ssid, uint Index, ulong Iova, AccessKind Access)
    {
        public bool Read => Access == AccessKind.Read;
    }

    /// <summary>Why a CD fetch failed, and whether its event is recorded (a stage-2 fault on the CD obeys STE.S2R).</summary>
    private struct CdFault
    {
        public EventRecord Event;
        public bool Recorded;
    }

    private bool TryGetCd(in CdLookup q, TranslationTrace? trace, out CdConfig cd, out CdFault fault)
    {
        fault = default;
        StreamConfig cfg = q.Stream;
        uint sid = q.Sid, index = q.Index;
        uint? ssid = q.Ssid;
        // The last-CD shortcut is TranslateSlow's, checked before this is called.
        if (cfg.Cds.TryGetValue(index, out cd!))
        {
            (_lastCd, _lastCdStream, _lastCdIndex) = (cd, cfg, index);
            trace?.Add("cd", 1, -1, cd.CdAddress, cd.Cd.W0, $"CD {index} from the configuration cache: {DescribeCd(cd.Cd)}");
            return true;
        }
        ref readonly StreamTableEntry ste = ref cfg.Ste;
        ulong cdAddress;
        ulong ptr = ste.S1ContextPtr;
        if (cfg.CdMax != 0 && cfg.S1Fmt != 0)
        {
            int split = cfg.S1Fmt == 1 ? 6 : 10; // 4 KiB or 64 KiB leaf tables of 64-byte CDs
            ulong l1Address = ptr + (index >> split) * (ulong)L1ContextDescriptor.Size;
            if (!FetchCdPart(q, l1Address, L1ContextDescriptor.Size, trace, out ulong l1Pa, ref fault)) return false;
            var l1 = new L1ContextDescriptor(_memory.ReadUInt64(l1Pa));
            trace?.Add("l1cd", 1, 1, l1Pa, l1.Word, $"L1CD[{index >> split}]: V={(l1.V ? 1 : 0)} L2Ptr 0x{l1.L2Ptr:X}");
            if (!l1.V)
            {
                // Without a SubstreamID (S1DSS = 0b10 fetching CD 0) the record names SubstreamID 0 (IHI 0070 7.3.9).
                fault.Event = EventRecord.BadSubstream(sid, ssid ?? 0);
                return false;
            }
            // An L2Ptr beyond the OAS of a stage-1-only stream is a C_BAD_SUBSTREAMID in SMMUv3.1 and later
            // (IHI 0070 3.4.3 note 3); through stage 2 the IPA faults at stage 2 (note 4).
            if (!cfg.HasStage2 && !Bits.FitsIn(l1.L2Ptr, Features.OasBits))
            {
                fault.Event = EventRecord.BadSubstream(sid, ssid ?? 0);
                return false;
            }
            cdAddress = l1.L2Ptr + (index & ((1u << split) - 1)) * (ulong)ContextDescriptor.Size;
        }
        else
        {
            cdAddress = ptr + (ulong)index * ContextDescriptor.Size;
        }
        if (!FetchCdPart(q, cdAddress, ContextDescriptor.Size, trace, out ulong cdPa, ref fault)) return false;
        Span<ulong> words = stackalloc ulong[ContextDescriptor.Words];
        _memory.ReadUInt64s(cdPa, words);
        var desc = ContextDescriptor.FromWords(words);
        trace?.Add("cd", 1, -1, cdPa, desc.W0, $"CD {index} at 0x{cdPa:X}: [0x{desc.W0:X16}, 0x{desc.W1:X16}, 0x{desc.W2:X16}, 0x{desc.W3:X16}] {DescribeCd(desc)}");
        string? why = ValidateCd(desc, cfg, out var built);
        if (why is not null)
        {
            trace?.Note($"C_BAD_CD: {why}");
            fault.Event = EventRecord.Config(EventType.C_BAD_CD, sid, ssid);
            return false;
        }
        built.CdAddress = cdPa;
        cd = built;
        cfg.Cds[index] = cd;
        (_lastCd, _lastCdStream, _lastCdIndex) = (cd, cfg, index);
        return true;
    }

    /// <summary>Fetches part of the CD table: through stage 2 when nested (CLASS = CD faults), then checks the bus.</summary>
    private bool FetchCdPart(in CdLookup q, ulong address, ulong length, TranslationTrace? trace, out ulong pa, ref CdFault fault)
    {
        pa = address;
        StreamConfig cfg = q.Stream;
        if (cfg.HasStage2)
        {
            if (trace is not null) { trace.Add("cd-ipa", 1, -1, address, 0, $"CD table address IPA 0x{address:X}: walking stage 2"); trace.Depth++; }
            var w = _walker.WalkStage2Checked(cfg.Stage2, address, AccessKind.Read, trace);
            if (trace is not null) trace.Depth--;
            if (w.Fault == WalkFault.ExternalAbort)
            {
                fault.Event = EventRecord.WalkAbort(q.Sid, q.Ssid, q.Iova, q.Read, true, FaultClass.CD, w.FetchAddress);
                fault.Recorded = true;
                return false;
            }
            if (!w.Ok)
            {
                // InputAddr is the transaction's input address, as for every translation-related fault (IHI 0070 7.3, 7.3.12).
                fault.Event = EventRecord.Translation(w.EventType, q.Sid, q.Ssid, q.Iova, q.Read, true, FaultClass.CD, address);
                fault.Recorded = cfg.Ste.S2R;
                return false;
            }
            pa = w.Output;
        }
        if (!CanFetch(pa, length))
        {
            fault.Event = EventRecord.Fetch(EventType.F_CD_FETCH, q.Sid, q.Ssid, pa);
            return false;
        }
        return true;
    }

    private static string DescribeCd(in ContextDescriptor cd) =>
        $"V={(cd.V ? 1 : 0)} AA64={(cd.AA64 ? 1 : 0)} T0SZ={cd.T0SZ} TG0={cd.TG0} EPD0={(cd.EPD0 ? 1 : 0)} IPS={cd.IPS} ASID={cd.ASID} TTB0=0x{cd.TTB0:X} R={(cd.R ? 1 : 0)} A={(cd.A ? 1 : 0)} HA={(cd.HA ? 1 : 0)}";

    /// <summary>Checks a CD against IHI 0070 5.4's ILLEGAL conditions (5.4.2, 5.5); null when valid.</summary>
    private string? ValidateCd(in ContextDescriptor cd, StreamConfig cfg, out CdConfig built)
    {
        // StreamWorld NS-EL2 (STRW = EL2 with CR2.E2H = 0) has one VA range and no ASID: CD.ASID is
        // IGNORED, EPD0/EPD1 are IGNORED with an effective value of 0 and there is no TTB1 region.
        bool el2NoE2h = cfg.Regime == TlbRegime.El2 && (_regs.Cr2 & CR2_E2H) == 0;
        built = new CdConfig { Cd = cd, CdAddress = 0, Asid = el2NoE2h ? (ushort)0 : MaskAsid(cd.ASID), NoAsid = el2NoE2h };
        if (!cd.V) return "CD.V = 0";
        if (!cd.AA64) return "AA64 = 0: AArch32 stage-1 tables are not implemented (IDR0.TTF = AArch64)";
        bool epd0 = cd.EPD0 && !el2NoE2h, epd1 = cd.EPD1 || el2NoE2h;
        if (cd.ENDI && !(epd0 && epd1)) return "ENDI = 1: big-endian tables are not implemented (IDR0.TTENDIAN = LE)";
        if (cd.HA && Features.Httu == 0) return "HA = 1 without HTTU (IDR0.HTTU = 0)";
        if (cd.HD && Features.Httu < 2) return "HD = 1, but IDR0.HTTU does not offer dirty state";
        if (!cd.A && Features.TermModel) return "A = 0 (RAZ/WI termination), but IDR0.TERM_MODEL = 1 (abort only)";
        if (cd.S && (Features.StallModel == 1 || (Features.StallModel == 0 && cfg.Ste.S1STALLD))) return "S = 1, but stalls are not allowed (STALL_MODEL or STE.S1STALLD)";
        if (!cd.S && Features.StallModel == 2) return "S = 0, but IDR0.STALL_MODEL is stall-only";
        if (!el2NoE2h && !Features.Asid16 && (cd.ASID >> 8) != 0) return $"ASID 0x{cd.ASID:X} has bits [15:8] set with 8-bit ASIDs";
        int outBits = Math.Min(AddressSize.FromEncoding(cd.IPS), Features.OasBits);
        bool ha = cd.HA && Features.Httu >= 1;
        if (!epd0)
        {
            if (GranuleGeometry.FromTg0(cd.TG0) is not { } g || !GranuleSupported(g)) return $"TG0 {cd.TG0} names an unimplemented granule";
            if (cd.T0SZ < MinTxSz(g) || cd.T0SZ > 39) return $"T0SZ {cd.T0SZ} is out of range";
            if (TtbOutOfRange(cd.TTB0, g, outBits)) return $"TTB0 0x{cd.TTB0:X} is outside the {outBits}-bit effective IPS";
            built.Ttb0Regime = Stage1Regime(g, cd.TTB0, 64 - (int)cd.T0SZ, outBits, ha, cd.AFFD);
            built.HasTtb0 = true;
            built.Ttb0InputBits = 64 - (int)cd.T0SZ;
        }
        if (!epd1)
        {
            if (GranuleGeometry.FromTg1(cd.TG1) is not { } g || !GranuleSupported(g)) return $"TG1 {cd.TG1} names an unimplemented granule";
            if (cd.T1SZ < MinTxSz(g) || cd.T1SZ > 39) return $"T1SZ {cd.T1SZ} is out of range";
            if (TtbOutOfRange(cd.TTB1, g, outBits)) return $"TTB1 0x{cd.TTB1:X} is outside the {outBits}-bit effective IPS";
            built.Ttb1Regime = Stage1Regime(g, cd.TTB1, 64 - (int)cd.T1SZ, outBits, ha, cd.AFFD);
            built.HasTtb1 = true;
            built.Ttb1InputBits = 64 - (int)cd.T1SZ;
        }
        built.Tbi0 = cd.TBI0;
        built.Tbi1 = cd.TBI1 && !el2NoE2h;
        return null;
    }

    /// <summary>
    /// CD.TTBx must lie within the effective IPS, and within 48 bits below 64 KiB pages (no DS):
    /// otherwise the CD is ILLEGAL, not an Address Size fault (IHI 0070 5.4 CD.TTB0, 3.4).
    /// </summary>
    private static bool TtbOutOfRange(ulong ttb, Granule g, int outBits) =>
        !Bits.FitsIn(ttb, outBits) || (g != Granule.G64K && !Bits.FitsIn(ttb, 48));

    private WalkRegime Stage1Regime(Granule g, ulong ttb, int inputBits, int outBits, bool ha, bool affd)
    {
        int start = GranuleGeometry.Stage1StartLevel(g, inputBits);
        int bitsAtStart = inputBits - GranuleGeometry.LevelShift(g, start);
        ulong tableBytes = Math.Max(64UL, 8UL << bitsAtStart);
        return new WalkRegime(1, g, ttb & ~(tableBytes - 1), inputBits, start, 0, outBits, ha, affd, Features.OasBits == 52);
    }
}

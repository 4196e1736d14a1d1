using NestedSmmu.Hardware.Memory;

namespace NestedSmmu.Hardware.Smmu;

/// <summary>
/// Translation proper: the micro-TLB and IOTLB, stage selection, the walks and their faults.
/// The configuration it starts from is SmmuV3.Configuration.cs's.
/// </summary>
public sealed partial class SmmuV3
{
    // Stream micro-TLB: the last successful translation per the last (SID, SSID, page), valid while
    // neither the TLB nor the configuration changed (generation counters).
    private const ulong NoSsid = ulong.MaxValue;
    private bool _fastValid;
    private uint _fastSid;
    private ulong _fastSsid, _fastPage;
    private long _fastTlbGeneration, _fastConfigGeneration;
    private ulong _fastOutputPage;
    private Permissions _fastPermissions;
    private long _configGeneration;

    /// <summary>
    /// Runs one TLB invalidation command on the IOTLB and the walk cache (IHI 0070 4.4); returns
    /// the number of IOTLB page slots removed. CFGI_* commands never reach here: configuration
    /// invalidation leaves translations cached (IHI 0070 4.5), and the walk cache's entries are also
    /// tagged with the table base that made them, so a stream whose new STE or CD names other
    /// tables never finds them.
    /// </summary>
    public int InvalidateTlb(in Command cmd)
    {
        if (TlbInvalidation.FromCommand(cmd, Features) is not { } scope) return 0;
        WalkCache.Invalidate(scope);
        return Tlb.Invalidate(scope);
    }

    /// <summary>
    /// Translates one access from a device: StreamID <paramref name="sid"/>, optional SubstreamID,
    /// input address <paramref name="iova"/>. Faults are recorded in the event queue as the
    /// architecture says and returned; nothing a guest programs makes this throw.
    /// </summary>
    public TranslationResult Translate(uint sid, uint? ssid, ulong iova, AccessKind access, TranslationTrace? trace = null)
    {
        Counters.Translations++;
        if (_fastValid && trace is null && _fastSid == sid && _fastPage == iova >> SparseMemory.PageShift
            && _fastSsid == (ssid ?? NoSsid) && _fastTlbGeneration == Tlb.Generation && _fastConfigGeneration == _configGeneration
            && _fastPermissions.Allows(access))
        {
            Tlb.CountHit();
            return TranslationResult.Ok((_fastOutputPage << SparseMemory.PageShift) | (iova & SparseMemory.PageMask), _fastPermissions);
        }
        var result = TranslateSlow(sid, ssid, iova, access, trace);
        if (result.IsSuccess && Enabled)
        {
            _fastValid = true;
            _fastSid = sid;
            _fastSsid = ssid ?? NoSsid;
            _fastPage = iova >> SparseMemory.PageShift;
            _fastOutputPage = result.PhysicalAddress >> SparseMemory.PageShift;
            _fastPermissions = result.Permissions;
            _fastTlbGeneration = Tlb.Generation;
            _fastConfigGeneration = _configGeneration;
        }
        return result;
    }

    [System.Runtime.CompilerServices.SkipLocalsInit]
    private TranslationResult TranslateSlow(uint sid, uint? ssid, ulong iova, AccessKind access, TranslationTrace? trace)
    {
        if (!Enabled)
        {
            bool abort = _regs.GlobalBypassAborts;
            if (trace is not null) TraceDisabled(trace, abort);
            // Bypass passes the input to the output PA; an input beyond the OAS aborts without an event (IHI 0070 3.4).
            if (!abort && !Bits.FitsIn(iova, Features.OasBits))
            {
                if (trace is not null) TraceBeyondOas(trace, iova, Features.OasBits);
                return TranslationResult.Aborted();
            }
            return abort ? TranslationResult.Aborted() : TranslationResult.Ok(iova, Permissions.ReadWrite);
        }
        // The last stream is checked here, not in TryGetStream, so the common case skips that
        // method's frame (it formats explanations and would cost its prologue on every call).
        StreamConfig cfg;
        EventRecord cfgFault = default;
        bool found = trace is null && _lastStream is not null && _lastSid == sid;
        if (found) cfg = _lastStream!;
        else found = TryGetStream(sid, ssid, trace, out cfg, out cfgFault);
        if (!found)
        {
            // An invalid StreamID aborts the transaction; C_BAD_STREAMID is recorded only when
            // SMMU_CR2.RECINVSID = 1 (IHI 0070 7.3.3, 5.1.1).
            if (cfgFault.Type == EventType.C_BAD_STREAMID && (_regs.Cr2 & CR2_RECINVSID) == 0)
            {
                trace?.Note("C_BAD_STREAMID not recorded: SMMU_CR2.RECINVSID = 0");
                return TranslationResult.Aborted();
            }
            return ConfigFault(cfgFault, trace);
        }

        ref readonly StreamTableEntry ste = ref cfg.Ste;
        if (ste.ConfigRaw < 0b100)
        {
            // 0b000 aborts; 0b001..0b011 are Reserved and behave as 0b000 (IHI 0070 5.2, STE.Config).
            if (trace is not null) TraceConfigAbort(trace, ste.ConfigRaw);
            return TranslationResult.Aborted();
        }
        // A SubstreamID without stage 1 is a C_BAD_SUBSTREAMID (IHI 0070 7.3.9).
        if (!ste.TranslatesStage1 && ssid is { } unexpected) return ConfigFault(EventRecord.BadSubstream(sid, unexpected), trace);
        switch (ste.Config)
        {
            case SteConfig.Bypass:
                trace?.Note("STE.Config = bypass");
                return BypassBothStages(sid, iova, access, Features.OasBits, trace);
            case SteConfig.Stage2:
                return TranslateStage2Only(cfg, sid, iova, access, trace);
        }

        // Stage 1 (alone or nested): pick the CD.
        uint cdIndex;
        if (ssid is { } s)
        {
            if (cfg.CdMax == 0 || s >= (1u << (int)cfg.CdMax))
                return ConfigFault(EventRecord.BadSubstream(sid, s), trace);
            // CD 0 belongs to transactions without a SubstreamID: SubstreamID 0 is F_STREAM_DISABLED (IHI 0070 7.3.7).
            if (cfg.S1Dss == 2 && s == 0)
                return ConfigFault(EventRecord.Config(EventType.F_STREAM_DISABLED, sid), trace);
            cdIndex = s;
        }
        else if (cfg.CdMax == 0 || cfg.S1Dss == 2)
        {
            cdIndex = 0;
        }
        else if (cfg.S1Dss == 1)
        {
            trace?.Note("no SubstreamID and STE.S1DSS = bypass: stage 1 bypassed");
            return cfg.HasStage2 ? TranslateStage2Only(cfg, sid, iova, access, trace) : BypassBothStages(sid, iova, access, Features.IasBits, trace);
        }
        else
        {
            return ConfigFault(EventRecord.Config(EventType.F_STREAM_DISABLED, sid), trace);
        }

        CdConfig? cd = trace is null && _lastCd is not null && ReferenceEquals(_lastCdStream, cfg) && _lastCdIndex == cdIndex ? _lastCd : null;
        if (cd is null && !TryGetCdOrFault(cfg, sid, ssid, cdIndex, iova, access, trace, out cd, out var cdFailed)) return cdFailed;

        // TLB first.
        ushort asid = cd.Asid;
        if (Tlb.TryLookup(cfg.Regime, cfg.Vmid, asid, iova, out var hit) && hit.Permissions.Allows(access))
        {
            ulong pa = hit.Translate(iova);
            if (trace is not null) TraceTlbHit(trace, hit, iova, pa, cfg.Vmid, asid);
            return TranslationResult.Ok(pa, hit.Permissions);
        }

        // Select TTB0/TTB1 by VA[55] and check the unused top bits (they must all equal VA[55] unless TBI).
        bool upper = Bits.Get(iova, 55);
        bool hasRegime = upper ? cd.HasTtb1 : cd.HasTtb0;
        int inputBits = upper ? cd.Ttb1InputBits : cd.Ttb0InputBits;
        bool tbi = upper ? cd.Tbi1 : cd.Tbi0;
        int topBit = tbi ? 55 : 63;
        ulong top = Bits.Get(iova, topBit, inputBits);
        ulong expected = upper ? Bits.Mask(topBit - inputBits, 0) : 0;
        if (!hasRegime || top != expected)
        {
            if (trace is not null) TraceTtbRange(trace, hasRegime, upper, iova, inputBits);
            var evt = EventRecord.Translation(EventType.F_TRANSLATION, sid, ssid, iova, access == AccessKind.Read, false, FaultClass.IN, 0);
            return TranslationFault(evt, 1, cd.Cd.R, trace);
        }
        ref readonly WalkRegime r1 = ref (upper ? ref cd.Ttb1Regime : ref cd.Ttb0Regime);
        if (trace is not null) TraceStage1(trace, r1, upper, asid);

        // A TLB miss next to an earlier translation (its tables in the walk cache, the leaves usable):
        // two lookups and two reads, no translation to begin.
        if (trace is null && cfg.HasStage2 && WalkCache.Count != 0
            && _walker.TryLeafWalks(r1, cfg.Stage2, new WalkTags(cfg.Regime, cfg.Vmid, asid, cd.NoAsid), iova, access, out var leaf1, out var leaf2))
            return Translated(cfg, cd, r1, iova, leaf1, leaf2.Output, Math.Min(leaf1.BlockShift, leaf2.BlockShift), leaf1.Permissions & leaf2.Permissions, null);

        // Both walks are one translation for the walker: the output IPA's stage-2 walk starts from
        // the stage-2 path the stage-1 tables' walks read, and the walk-cache records both learn
        // are inserted when it ends. No try/finally: the walks do not throw on anything a guest
        // programs, BeginTranslation starts afresh whatever came before, and locals live across a
        // protected region are kept in memory (each write stored) for the whole method.
        _walker.BeginTranslation();
        var result = WalkBothStages(cfg, cd, r1, sid, ssid, iova, access, trace);
        _walker.EndTranslation();
        return result;
    }

    /// <summary>
    /// The CD of a translation when the last-CD shortcut missed, or the translation's fault.
    /// Out of line: its lookup record and fault, built in TranslateSlow's frame, had it zeroed on
    /// every call.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private bool TryGetCdOrFault(StreamConfig cfg, uint sid, uint? ssid, uint cdIndex, ulong iova, AccessKind access, TranslationTrace? trace,
        out CdConfig cd, out TranslationResult failed)
    {
        if (TryGetCd(new CdLookup(cfg, sid, ssid, cdIndex, iova, access), trace, out cd, out var cdFault))
        {
            failed = default;
            return true;
        }
        failed = cdFault.Event.Type is EventType.F_TRANSLATION or EventType.F_ADDR_SIZE or EventType.F_ACCESS or EventType.F_PERMISSION or EventType.F_WALK_EABT
            ? TranslationFault(cdFault.Event, 2, cdFault.Recorded, trace)
            : ConfigFault(cdFault.Event, trace);
        return false;
    }

    private TranslationResult WalkBothStages(StreamConfig cfg, CdConfig cd, in WalkRegime r1, uint sid, uint? ssid, ulong iova, AccessKind access,
        TranslationTrace? trace)
    {
        ushort asid = cd.Asid;
        _walker.Walk(r1, iova, access, cfg.Stage2, cfg.HasStage2, new WalkTags(cfg.Regime, cfg.Vmid, asid, cd.NoAsid), trace, out var w1);
        if (!w1.Ok) return Stage1WalkFault(w1, cfg, cd, sid, ssid, iova, access, trace);
        ulong output = w1.Output;
        int sizeShift = w1.BlockShift;
        Permissions perms = w1.Permissions;
        if (cfg.HasStage2)
        {
            ref readonly WalkRegime r2 = ref cfg.Stage2;
            if (trace is not null) TraceStage2(trace, r2, output, cfg.Vmid);
            _walker.WalkStage2Checked(r2, output, access, cfg.Vmid, trace, out var w2);
            if (!w2.Ok) return OutputWalkFault(w2, cfg, sid, ssid, iova, access, output, trace);
            output = w2.Output;
            sizeShift = Math.Min(sizeShift, w2.BlockShift);
            perms &= w2.Permissions;
        }
        return Translated(cfg, cd, r1, iova, w1, output, sizeShift, perms, trace);
    }

    /// <summary>
    /// A translation both stages allowed: its IOTLB entry (the stage-1 walk's level and nG, the
    /// smaller of the two mappings) and its result.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private TranslationResult Translated(StreamConfig cfg, CdConfig cd, in WalkRegime r1, ulong iova, in WalkResult w1, ulong output, int sizeShift,
        Permissions perms, TranslationTrace? trace)
    {
        ulong sizeMask = (1UL << sizeShift) - 1;
        Tlb.Insert(new TlbEntry(cfg.Regime, cfg.Vmid, cd.Asid, w1.Global || cd.NoAsid, iova & ~sizeMask, sizeShift, w1.Level, r1.Granule, output & ~sizeMask, perms), iova);
        if (trace is not null) TraceResult(trace, iova, output, perms);
        return TranslationResult.Ok(output, perms);
    }

    // The fault paths of WalkBothStages live out of line: their event records, built inline, made
    // the translation's frame (zeroed on every call) several times larger than its walks need.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private TranslationResult Stage1WalkFault(in WalkResult w1, StreamConfig cfg, CdConfig cd, uint sid, uint? ssid, ulong iova, AccessKind access,
        TranslationTrace? trace)
    {
        // F_WALK_EABT is not a translation-related fault: CD.R / STE.S2R do not apply (IHI 0070 5.5).
        if (w1.Fault == WalkFault.ExternalAbort)
            return TranslationFault(EventRecord.WalkAbort(sid, ssid, iova, access == AccessKind.Read, w1.FaultStage == 2, FaultClass.TTD, w1.FetchAddress),
                w1.FaultStage, record: true, trace);
        if (w1.FaultStage == 2)
        {
            // TTRnW: 0 when the faulting descriptor access was the hardware's access-flag write (IHI 0070 7.3.16).
            var e2 = EventRecord.Translation(w1.EventType, sid, ssid, iova, access == AccessKind.Read, true, w1.FaultClass, w1.FaultIpa,
                descriptorRead: !w1.FaultOnDescriptorWrite);
            return TranslationFault(e2, 2, cfg.Ste.S2R, trace);
        }
        var e1 = EventRecord.Translation(w1.EventType, sid, ssid, iova, access == AccessKind.Read, false, FaultClass.IN, 0);
        return TranslationFault(e1, 1, cd.Cd.R, trace);
    }

    /// <summary>A fault of the stage-2 walk of the transaction's output IPA <paramref name="ipa"/> (CLASS = IN).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private TranslationResult OutputWalkFault(in WalkResult w2, StreamConfig cfg, uint sid, uint? ssid, ulong iova, AccessKind access, ulong ipa,
        TranslationTrace? trace)
    {
        if (w2.Fault == WalkFault.ExternalAbort)
            return TranslationFault(EventRecord.WalkAbort(sid, ssid, iova, access == AccessKind.Read, true, FaultClass.IN, w2.FetchAddress), 2, record: true, trace);
        var e2 = EventRecord.Translation(w2.EventType, sid, ssid, iova, access == AccessKind.Read, true, FaultClass.IN, ipa);
        return TranslationFault(e2, 2, cfg.Ste.S2R, trace);
    }

    /// <summary>
    /// No stage translates: the input is the output. An input beyond the OAS (STE.Config = bypass) or
    /// the IAS (stage 1 bypassed by S1DSS, stage 2 off) is a stage-1 F_ADDR_SIZE, CLASS = IN (IHI 0070
    /// 3.4, 7.3.14). No CD gives an R bit, so the fault is recorded.
    /// </summary>
    private TranslationResult BypassBothStages(uint sid, ulong iova, AccessKind access, int bits, TranslationTrace? trace)
    {
        if (Bits.FitsIn(iova, bits)) return TranslationResult.Ok(iova, Permissions.ReadWrite);
        trace?.Note($"input 0x{iova:X} exceeds the {bits}-bit address size of a bypassed stage 1");
        var e = EventRecord.Translation(EventType.F_ADDR_SIZE, sid, null, iova, access == AccessKind.Read, false, FaultClass.IN, 0);
        return TranslationFault(e, 1, record: true, trace);
    }

    private static string DescribeStage2(in WalkRegime r, ushort vmid) =>
        $"S2TTB 0x{r.TableBase:X}, {1 << r.PageShift >> 10}K granule, {r.InputBits}-bit IPA, start level {r.StartLevel}" +
        (r.ConcatLog2 > 0 ? $" ({1 << r.ConcatLog2} concatenated tables)" : "") + $", {r.OutputBits}-bit output, VMID {vmid}";

    private TranslationResult TranslateStage2Only(StreamConfig cfg, uint sid, ulong iova, AccessKind access, TranslationTrace? trace)
    {
        var r2 = cfg.Stage2;
        // With stage 1 bypassed the input is an IPA that must fit the SMMU's IAS; beyond it is an
        // address size fault reported as stage 1 (IHI 0070 3.4.3), before stage 2 is consulted.
        if (!Bits.FitsIn(iova, Features.IasBits))
        {
            trace?.Note($"input 0x{iova:X} exceeds the {Features.IasBits}-bit IAS");
            var e = EventRecord.Translation(EventType.F_ADDR_SIZE, sid, null, iova, access == AccessKind.Read, false, FaultClass.IN, 0);
            return TranslationFault(e, 1, cfg.Ste.S2R, trace);
        }
        if (Tlb.TryLookup(TlbRegime.Stage2, cfg.Vmid, 0, iova, out var hit) && hit.Permissions.Allows(access))
        {
            ulong pa = hit.Translate(iova);
            trace?.Add("tlb", 2, hit.Level, iova, pa, $"IOTLB hit: VMID {cfg.Vmid} IPA 0x{hit.InputBase:X} +{hit.Size:#,0} -> 0x{hit.OutputBase:X}");
            return TranslationResult.Ok(pa, hit.Permissions);
        }
        trace?.Add("s2", 2, r2.StartLevel, r2.TableBase, 0, "stage 2: " + DescribeStage2(r2, cfg.Vmid));
        _walker.WalkStage2Checked(r2, iova, access, cfg.Vmid, trace, out var w);
        if (!w.Ok) return OutputWalkFault(w, cfg, sid, null, iova, access, iova, trace);
        ulong mask = (1UL << w.BlockShift) - 1;
        Tlb.Insert(new TlbEntry(TlbRegime.Stage2, cfg.Vmid, 0, true, iova & ~mask, w.BlockShift, w.Level, r2.Granule, w.Output & ~mask, w.Permissions), iova);
        trace?.Add("result", 0, -1, iova, w.Output, $"PA 0x{w.Output:X} ({w.Permissions})");
        return TranslationResult.Ok(w.Output, w.Permissions);
    }

    /// <summary>Configuration errors are always recorded (there is no R bit for them).</summary>
    private TranslationResult ConfigFault(in EventRecord evt, TranslationTrace? trace)
    {
        bool recorded = RecordEvent(evt);
        trace?.Add("fault", 0, -1, 0, 0, $"{evt.Type}: event {(recorded ? "recorded" : "not recorded (event queue off or full)")}");
        return TranslationResult.Faulted(evt, 1, recorded);
    }

    /// <summary>Translation faults are recorded only when the stage's record bit (CD.R or STE.S2R) is set.</summary>
    private TranslationResult TranslationFault(in EventRecord evt, int stage, bool record, TranslationTrace? trace)
    {
        if (!record)
        {
            trace?.Add("fault", stage, -1, 0, 0, $"{evt.Type} at stage {stage}: not recorded ({(stage == 1 ? "CD.R" : "STE.S2R")} = 0), access aborted");
            return TranslationResult.Aborted();
        }
        bool recorded = RecordEvent(evt);
        trace?.Add("fault", stage, -1, 0, 0, $"{evt.Type} at stage {stage}: event {(recorded ? "recorded" : "not recorded (event queue off or full)")}");
        return TranslationResult.Faulted(evt, stage, recorded);
    }
}

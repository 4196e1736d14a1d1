namespace NestedSmmu.Hardware.Smmu;

/// <summary>
/// What a TLB invalidation command selects (IHI 0070 4.4), without allocating per command. Built
/// only by the named factories, and decoded from a command by <see cref="FromCommand"/>.
/// </summary>
public readonly record struct TlbInvalidation
{
    private TlbInvalidation(TlbRegime regime, ushort? vmid) => (Regime, Vmid) = (regime, vmid);

    public TlbRegime Regime { get; }
    /// <summary>Also matches stage-2-only entries (TLBI_S12_VMALL, TLBI_NSNH_ALL).</summary>
    public bool AndStage2 { get; private init; }
    /// <summary>The VMID entries must carry; null for any (EL2 and NSNH_ALL carry none).</summary>
    public ushort? Vmid { get; }
    /// <summary>The ASID non-global entries must carry; null for any.</summary>
    public ushort? Asid { get; private init; }
    /// <summary>By ASID and address, global entries match too; by ASID alone they do not.</summary>
    public bool GlobalAlsoMatches { get; private init; }
    /// <summary>The input range [Start, Start + Length), when the command names an address.</summary>
    public bool MatchAddress { get; private init; }
    public ulong Start { get; private init; }
    public ulong Length { get; private init; }
    /// <summary>The level of the leaves to remove (TTL), 0 when any; with the granule it names.</summary>
    public int Ttl { get; private init; }
    public Granule? Granule { get; private init; }
    /// <summary>
    /// Leaf = 1 on an address form (TLBI_*_VA, TLBI_*_VAA, TLBI_S2_IPA): only leaf entries need go,
    /// cached table entries stay (IHI 0070 4.4). The IOTLB holds leaves only; the walk cache reads this.
    /// </summary>
    public bool LeafOnly { get; private init; }

    /// <summary>Every entry of <paramref name="regime"/> with <paramref name="vmid"/> (TLBI_NH_ALL), or of any VMID when null (TLBI_EL2_ALL).</summary>
    public static TlbInvalidation All(TlbRegime regime, ushort? vmid) => new(regime, vmid);

    /// <summary>Every stage-1 and stage-2 entry of <paramref name="vmid"/> (TLBI_S12_VMALL), or of every VMID when null (TLBI_NSNH_ALL).</summary>
    public static TlbInvalidation AllStages(ushort? vmid) => new(TlbRegime.NonHyp, vmid) { AndStage2 = true };

    /// <summary>Non-global entries of one ASID (TLBI_NH_ASID, TLBI_EL2_ASID).</summary>
    public static TlbInvalidation ByAsid(TlbRegime regime, ushort? vmid, ushort asid) => new(regime, vmid) { Asid = asid };

    /// <summary>
    /// Entries overlapping [start, start + length): of one ASID and the global ones when
    /// <paramref name="asid"/> is given (TLBI_NH_VA, TLBI_EL2_VA), of every ASID otherwise
    /// (TLBI_NH_VAA, TLBI_EL2_VAA, TLBI_S2_IPA); with a TTL only leaves at that level.
    /// </summary>
    public static TlbInvalidation ByAddress(TlbRegime regime, ushort? vmid, ushort? asid, ulong start, ulong length, int ttl = 0, Granule? granule = null) =>
        new(regime, vmid)
        {
            Asid = asid, GlobalAlsoMatches = asid is not null,
            MatchAddress = length != 0, Start = start, Length = length, Ttl = ttl, Granule = granule,
        };

    /// <summary>
    /// The scope of a TLBI command on an SMMU with <paramref name="features"/>; null for other
    /// commands. VMID and ASID are cut to 8 bits without IDR0.VMID16/ASID16.
    /// </summary>
    public static TlbInvalidation? FromCommand(in Command cmd, SmmuFeatures features)
    {
        ushort vmid = features.Vmid16 ? cmd.VMID : (ushort)(cmd.VMID & 0xFF);
        ushort asid = features.Asid16 ? cmd.ASID : (ushort)(cmd.ASID & 0xFF);
        return cmd.Opcode switch
        {
            CommandOpcode.TLBI_NH_ALL => All(TlbRegime.NonHyp, vmid),
            CommandOpcode.TLBI_NH_ASID => ByAsid(TlbRegime.NonHyp, vmid, asid),
            CommandOpcode.TLBI_NH_VA => ByCommandAddress(cmd, features, TlbRegime.NonHyp, vmid, asid),
            CommandOpcode.TLBI_NH_VAA => ByCommandAddress(cmd, features, TlbRegime.NonHyp, vmid, null),
            CommandOpcode.TLBI_EL2_ALL => All(TlbRegime.El2, null),
            CommandOpcode.TLBI_EL2_ASID => ByAsid(TlbRegime.El2, null, asid),
            CommandOpcode.TLBI_EL2_VA => ByCommandAddress(cmd, features, TlbRegime.El2, null, asid),
            CommandOpcode.TLBI_EL2_VAA => ByCommandAddress(cmd, features, TlbRegime.El2, null, null),
            CommandOpcode.TLBI_S12_VMALL => AllStages(vmid),
            // Stage-2 entries only: combined stage-1+2 entries need TLBI_NH_* or S12_VMALL (IHI 0070 4.4.4).
            CommandOpcode.TLBI_S2_IPA => ByCommandAddress(cmd, features, TlbRegime.Stage2, vmid, null),
            CommandOpcode.TLBI_NSNH_ALL => AllStages(null),
            _ => null,
        };
    }

    private static TlbInvalidation ByCommandAddress(in Command cmd, SmmuFeatures features, TlbRegime regime, ushort? vmid, ushort? asid)
    {
        ulong start = cmd.Address;
        if (cmd.Opcode == CommandOpcode.TLBI_S2_IPA) start &= Bits.Mask(51, 12);
        // Without IDR3.RIL, TG, TTL, NUM and SCALE are RES0 and ignored: one address (IHI 0070 4.4.1.1).
        if (!features.Ril || GranuleGeometry.FromCommandTg(cmd.TG) is not { } g) return ByAddress(regime, vmid, asid, start, 1) with { LeafOnly = cmd.Leaf };
        // TTL names the level of the leaf being invalidated (entries at other levels need not go).
        int ttl = (int)CommandCodec.EffectiveTtl(cmd);
        // Range = ((NUM + 1) * 2^SCALE) * Translation_Granule_Size from Address (IHI 0070 4.4.1.1;
        // unlike a PE's TLBI R*, the SMMU's SCALE is not multiplied by 5).
        // SCALE is six bits: a shift that would leave 64 bits covers everything from Address.
        int shift = (int)cmd.SCALE + GranuleGeometry.PageShift(g);
        ulong length = shift + 5 >= 64 ? ulong.MaxValue - start : ((ulong)cmd.NUM + 1) << shift;
        return ByAddress(regime, vmid, asid, start, length, ttl, g) with { LeafOnly = cmd.Leaf };
    }

    /// <summary>Whether an entry tagged so is in scope, its address aside (IHI 0070 3.17, 4.4).</summary>
    public bool MatchesTags(TlbRegime regime, ushort entryVmid, ushort entryAsid, bool global)
    {
        if (regime != Regime && !(AndStage2 && regime == TlbRegime.Stage2)) return false;
        if (Vmid is { } vmid && entryVmid != vmid) return false;
        if (Asid is { } asid && (global ? !GlobalAlsoMatches : entryAsid != asid)) return false;
        return true;
    }

    public bool Matches(in TlbEntry e)
    {
        if (!MatchesTags(e.Regime, e.Vmid, e.Asid, e.Global)) return false;
        if (MatchAddress)
        {
            if (!e.Overlaps(Start, Length)) return false;
            if (Ttl != 0 && (e.Level != Ttl || e.Granule != Granule)) return false;
        }
        return true;
    }
}

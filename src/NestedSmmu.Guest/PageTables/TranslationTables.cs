namespace NestedSmmu.Guest.PageTables;

/// <summary>
/// Builds one translation regime's VMSAv8-64 tables (Arm ARM D8) in an <see cref="ITableSpace"/>,
/// as a guest or host driver writes them: one granule (4, 16 or 64 KiB), an input size, a start
/// level (a stage-2 root may be several concatenated tables, D8.2.7), and page or block leaves.
/// Stage 1 uses the stage-1 access permissions (AP[2:1]); stage 2 the stage-2 ones (S2AP).
/// </summary>
/// <remarks>
/// Written from the architecture's table format alone: it shares no code with the SMMU model's
/// walker, so the scenarios and self-checks built with it test that walker independently (and
/// the QEMU comparison corpus in tests/vectors/qemu was made with it and agrees with QEMU).
/// Memory attributes are fixed: inner shareable, with the AttrIndx / MemAttr fields zero. Table
/// descriptors carry no hierarchical attributes. Nothing here checks that a block is allowed at
/// its level: tests build such tables on purpose to see the walker reject them.
/// </remarks>
public sealed class TranslationTables
{
    // Descriptor fields (Arm ARM D8.3): valid, and at levels 0-2 table vs block (bit 1 set at level 3 = page).
    private const ulong Valid = 1UL << 0;
    private const ulong TableOrPage = 1UL << 1;
    // Lower attributes of a block or page (D8.3.2): SH[1:0] = 0b11 inner shareable, AF.
    private const ulong InnerShareable = 3UL << 8;
    private const ulong AccessFlag = 1UL << 10;
    // Stage 1: AP[1] (bit 6) lets EL0 access, AP[2] (bit 7) makes it read-only.
    private const ulong ApEl0 = 1UL << 6, ApReadOnly = 1UL << 7;
    // Stage 1: nG (bit 11), the entry belongs to the current ASID only.
    private const ulong NotGlobal = 1UL << 11;
    // Stage 2: S2AP[0] (bit 6) allows reads, S2AP[1] (bit 7) writes.
    private const ulong S2apRead = 1UL << 6, S2apWrite = 1UL << 7;
    /// <summary>Output address bits [47:12] of a descriptor (48-bit output, no FEAT_LPA).</summary>
    private const ulong OutputAddressMask = 0x0000_FFFF_FFFF_F000;
    private const int DescriptorBytesLog2 = 3;
    private const int LastLevel = 3;

    private readonly ITableSpace _space;

    /// <summary>Allocates the (zeroed) root table(s) for a regime.</summary>
    /// <param name="space">Where the tables live.</param>
    /// <param name="pageShift">The granule: 12 (4 KiB), 14 (16 KiB) or 16 (64 KiB).</param>
    /// <param name="inputBits">The input address size (64 - T0SZ).</param>
    /// <param name="startLevel">The level of the root table (0..3). When the input is wider than that
    /// level resolves, the root is 2^n concatenated tables (stage 2 only, as the walker expects).</param>
    /// <param name="stage2">Stage-2 permissions (S2AP) rather than stage-1 (AP).</param>
    public TranslationTables(ITableSpace space, int pageShift, int inputBits, int startLevel, bool stage2)
    {
        ArgumentNullException.ThrowIfNull(space);
        if (pageShift is not (12 or 14 or 16)) throw new ArgumentOutOfRangeException(nameof(pageShift), pageShift, "the granule must be 4, 16 or 64 KiB (page shift 12, 14 or 16)");
        ArgumentOutOfRangeException.ThrowIfGreaterThan((uint)startLevel, (uint)LastLevel, nameof(startLevel));
        _space = space;
        PageShift = pageShift;
        InputBits = inputBits;
        StartLevel = startLevel;
        Stage2 = stage2;
        int rootBits = inputBits - Shift(startLevel);
        if (rootBits <= 0) throw new ArgumentOutOfRangeException(nameof(inputBits), inputBits, $"a {inputBits}-bit input needs no level-{startLevel} table");
        Root = space.AllocTable(1UL << (rootBits + DescriptorBytesLog2));
    }

    /// <summary>
    /// Stage-1 tables for an <paramref name="inputBits"/>-bit VA (64 - T0SZ), starting at the level
    /// whose table resolves the top bits, as a stage-1 walk does (D8.2.5).
    /// </summary>
    public static TranslationTables ForStage1(ITableSpace space, int pageShift, int inputBits)
    {
        int stride = pageShift - DescriptorBytesLog2;
        int levels = (inputBits - pageShift + stride - 1) / stride;
        return new TranslationTables(space, pageShift, inputBits, LastLevel + 1 - levels, stage2: false);
    }

    /// <summary>Stage-2 tables for an <paramref name="inputBits"/>-bit IPA from <paramref name="startLevel"/> (what STE.S2SL0 says).</summary>
    public static TranslationTables ForStage2(ITableSpace space, int pageShift, int inputBits, int startLevel) =>
        new(space, pageShift, inputBits, startLevel, stage2: true);

    /// <summary>log2 of the granule (12, 14 or 16).</summary>
    public int PageShift { get; }
    /// <summary>Input address bits each level below the root resolves.</summary>
    public int Stride => PageShift - DescriptorBytesLog2;
    public int InputBits { get; }
    public int StartLevel { get; }
    public bool Stage2 { get; }
    /// <summary>Address of the root table (TTB0 of a CD, S2TTB of an STE).</summary>
    public ulong Root { get; }

    /// <summary>Input-address shift of a descriptor at <paramref name="level"/>: log2 of what one entry maps.</summary>
    public int Shift(int level) => PageShift + (LastLevel - level) * Stride;

    /// <summary>
    /// Maps <paramref name="ia"/> to <paramref name="oa"/> with a leaf at <paramref name="leafLevel"/>
    /// (3 = a page, below 3 = a block of 2^<see cref="Shift"/> bytes; both addresses are cut down
    /// to its alignment), creating the tables on the way. Replaces any leaf already there.
    /// </summary>
    /// <param name="readable">Stage 2 only (S2AP[0]); a stage-1 leaf is always readable.</param>
    /// <param name="af">The access flag; clear to see access-flag faults.</param>
    /// <param name="notGlobal">Stage 1 only: nG, so the TLB tags the entry with the ASID and an ASID
    /// invalidation removes it (Linux's io-pgtable sets it on every stage-1 leaf).</param>
    public void Map(ulong ia, ulong oa, int leafLevel = LastLevel, bool writable = true, bool readable = true, bool af = true, bool notGlobal = false)
    {
        ulong table = Root;
        for (int level = StartLevel; level < leafLevel; level++)
        {
            ulong slot = table + (Index(ia, level) << DescriptorBytesLog2);
            ulong desc = _space.Read(slot);
            if ((desc & Valid) == 0)
            {
                desc = _space.AllocTable(1UL << PageShift) | TableOrPage | Valid;
                _space.Word(slot, desc);
            }
            table = NextTable(desc);
        }
        ulong attrs = (af ? AccessFlag : 0) | InnerShareable;
        attrs |= Stage2
            ? (readable ? S2apRead : 0) | (writable ? S2apWrite : 0)
            : ApEl0 | (writable ? 0 : ApReadOnly) | (notGlobal ? NotGlobal : 0);
        ulong type = leafLevel == LastLevel ? TableOrPage | Valid : Valid;
        _space.Word(table + (Index(ia, leafLevel) << DescriptorBytesLog2), (oa & ~((1UL << Shift(leafLevel)) - 1)) | attrs | type);
    }

    /// <summary>Removes the leaf for <paramref name="ia"/> at <paramref name="leafLevel"/>, if the path to it exists.</summary>
    public void Unmap(ulong ia, int leafLevel = LastLevel)
    {
        ulong table = Root;
        for (int level = StartLevel; level < leafLevel; level++)
        {
            ulong desc = _space.Read(table + (Index(ia, level) << DescriptorBytesLog2));
            if ((desc & Valid) == 0) return;
            table = NextTable(desc);
        }
        _space.Word(table + (Index(ia, leafLevel) << DescriptorBytesLog2), 0);
    }

    /// <summary>The descriptor index of <paramref name="ia"/> at <paramref name="level"/> (the root level indexes every concatenated table).</summary>
    public ulong Index(ulong ia, int level)
    {
        int bits = level == StartLevel ? InputBits - Shift(level) : Stride;
        return (ia >> Shift(level)) & ((1UL << bits) - 1);
    }

    private ulong NextTable(ulong desc) => desc & OutputAddressMask & ~((1UL << PageShift) - 1);
}

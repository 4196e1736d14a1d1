using NestedSmmu.Guest.PageTables;
using NestedSmmu.Hardware.Memory;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Guest.Tests.PageTables;

/// <summary>
/// The guest's page-table writer, checked two ways: descriptor bits against the Arm ARM's
/// encodings written out here, and whole tables walked by the SMMUv3 model (every granule,
/// stage, page and block).
/// </summary>
public sealed class TranslationTablesTests
{
    private const ulong StrtabBase = 0x4000_0000, CdBase = 0x4080_0000, TableBase = 0x4100_0000;
    private const uint Sid = 3;

    public static TheoryData<int, int, int> Regimes()
    {
        var data = new TheoryData<int, int, int>();
        foreach (int pageShift in new[] { 12, 14, 16 })
            foreach (int stage in new[] { 1, 2 })
                foreach (int leafLevel in new[] { 3, 2 })
                    data.Add(pageShift, stage, leafLevel);
        return data;
    }

    [Theory]
    [MemberData(nameof(Regimes))]
    public void The_smmu_walks_what_the_writer_wrote(int pageShift, int stage, int leafLevel)
    {
        var mem = new SparseMemory();
        var space = new MemoryTableSpace(mem, TableBase);
        // 48-bit VA at stage 1; 40-bit IPA at stage 2 from level 1 (4K, 16K) or 2 (64K).
        var tables = stage == 1 ? TranslationTables.ForStage1(space, pageShift, 48)
            : TranslationTables.ForStage2(space, pageShift, 40, pageShift == 16 ? 2 : 1);
        ulong leafSize = 1UL << tables.Shift(leafLevel);
        ulong ia = 0x8000_0000 + 3 * leafSize, oa = 0x2_0000_0000, offset = leafSize - 8;
        tables.Map(ia, oa, leafLevel, writable: false);
        var smmu = Enable(mem, stage, pageShift, tables.Root);

        var read = smmu.Translate(Sid, null, ia + offset, AccessKind.Read);
        read.Status.ShouldBe(TranslationStatus.Success);
        read.PhysicalAddress.ShouldBe(oa + offset);
        var write = smmu.Translate(Sid, null, ia + offset, AccessKind.Write);
        write.Status.ShouldNotBe(TranslationStatus.Success);
        write.Event.Type.ShouldBe(EventType.F_PERMISSION);

        smmu.Translate(Sid, null, ia + leafSize, AccessKind.Read).Event.Type.ShouldBe(EventType.F_TRANSLATION);
        tables.Unmap(ia, leafLevel);
        // A fresh SMMU: the first one's TLB still holds the old leaf until invalidated.
        Enable(mem, stage, pageShift, tables.Root).Translate(Sid, null, ia + offset, AccessKind.Read).Event.Type.ShouldBe(EventType.F_TRANSLATION);
    }

    [Fact]
    public void A_stage_1_page_is_valid_page_af_inner_shareable_el0_with_ap2_for_read_only()
    {
        var space = new MemoryTableSpace(new SparseMemory(), TableBase);
        var t = TranslationTables.ForStage1(space, 12, 48);
        t.Map(0x1000, 0x5000, writable: false);
        ulong leaf = LeafOf(space, t, 0x1000);
        // D8.3: [1:0] = 0b11 page, AP[1] bit 6, AP[2] bit 7, SH bits [9:8] = 0b11, AF bit 10.
        leaf.ShouldBe(0x5000UL | 0b11 | 1 << 6 | 1 << 7 | 0b11 << 8 | 1 << 10);
        t.Map(0x1000, 0x5000, af: false);
        LeafOf(space, t, 0x1000).ShouldBe(0x5000UL | 0b11 | 1 << 6 | 0b11 << 8);
    }

    [Fact]
    public void A_stage_2_block_carries_s2ap_and_is_cut_to_its_alignment()
    {
        var space = new MemoryTableSpace(new SparseMemory(), TableBase);
        var t = TranslationTables.ForStage2(space, 12, 40, 1);
        t.Map(0x4020_1234, 0x8060_5678, leafLevel: 2, writable: true, readable: false);
        ulong table = space.Read(t.Root + 1 * 8) & 0x0000_FFFF_FFFF_F000;
        // 2 MiB block: [1:0] = 0b01, S2AP[1] (write) bit 7 only, SH 0b11, AF.
        space.Read(table + 1 * 8).ShouldBe(0x8060_0000UL | 0b01 | 1 << 7 | 0b11 << 8 | 1 << 10);
    }

    [Theory]
    [InlineData(12, 48, 0)]
    [InlineData(12, 39, 1)]
    [InlineData(14, 48, 0)]
    [InlineData(14, 47, 1)]
    [InlineData(16, 48, 1)]
    [InlineData(16, 42, 2)]
    public void Stage_1_starts_at_the_level_that_resolves_the_top_bits(int pageShift, int inputBits, int startLevel)
    {
        TranslationTables.ForStage1(new MemoryTableSpace(new SparseMemory(), TableBase), pageShift, inputBits).StartLevel.ShouldBe(startLevel);
    }

    [Fact]
    public void A_stage_2_root_wider_than_one_table_is_concatenated_and_aligned_to_its_size()
    {
        var space = new MemoryTableSpace(new SparseMemory(), 0x4100_1000);
        // 4K, 40-bit IPA from level 1: bits [39:30] index two concatenated 4 KiB tables (8 KiB).
        var t = TranslationTables.ForStage2(space, 12, 40, 1);
        (t.Root % 0x2000).ShouldBe(0UL);
        t.Index(0xFF_C000_0000, 1).ShouldBe(0x3FFUL);
        space.AllocTable(0x1000).ShouldBe(t.Root + 0x2000);
    }

    [Fact]
    public void A_table_space_may_start_at_a_guest_physical_address()
    {
        var ram = new SparseMemory();
        var space = new MemoryTableSpace(ram, allocateFrom: 0x4010_0000, addressBase: 0x4000_0000);
        var t = TranslationTables.ForStage1(space, 12, 39);
        t.Root.ShouldBe(0x4010_0000UL);
        t.Map(0, 0x4020_0000);
        ram.ReadUInt64(0x10_0000).ShouldBe(0x4010_1003UL); // the level-1 entry points at the next table
    }

    [Theory]
    [InlineData(13)]
    [InlineData(21)]
    public void Granules_other_than_4_16_and_64_KiB_are_refused(int pageShift)
    {
        Should.Throw<ArgumentOutOfRangeException>(() => new TranslationTables(new MemoryTableSpace(new SparseMemory(), TableBase), pageShift, 48, 0, stage2: false));
    }

    private static ulong LeafOf(ITableSpace space, TranslationTables t, ulong ia)
    {
        ulong table = t.Root;
        for (int level = t.StartLevel; level < 3; level++)
            table = space.Read(table + t.Index(ia, level) * 8) & 0x0000_FFFF_FFFF_F000;
        return space.Read(table + t.Index(ia, 3) * 8);
    }

    private static SmmuV3 Enable(SparseMemory mem, int stage, int pageShift, ulong root)
    {
        uint tg = pageShift switch { 12 => 0u, 16 => 1u, _ => 2u }; // CD.TG0 / STE.S2TG
        StreamTableEntry ste;
        if (stage == 1)
        {
            var cd = ContextDescriptor.Create(root, asid: 1, t0sz: 16, tg0: tg);
            mem.WriteUInt64s(CdBase, [cd.W0, cd.W1, cd.W2, cd.W3, 0, 0, 0, 0]);
            ste = StreamTableEntry.Create(SteConfig.Stage1, s1ContextPtr: CdBase);
        }
        else
        {
            // VTCR.SL0: 4K 1 = level 1; 16K 2 = level 1; 64K 1 = level 2.
            uint sl0 = pageShift == 14 ? 2u : 1u;
            ste = StreamTableEntry.Create(SteConfig.Stage2, s2Vmid: 1, s2T0sz: 24, s2Sl0: sl0, s2Tg: tg, s2Ps: 4, s2Ttb: root);
        }
        Span<ulong> words = stackalloc ulong[StreamTableEntry.Words];
        ste.CopyTo(words);
        mem.WriteUInt64s(StrtabBase + Sid * (ulong)StreamTableEntry.Size, words);
        var smmu = new SmmuV3(mem, SmmuFeatures.QemuVirtNested);
        smmu.WriteRegister(SmmuRegister.STRTAB_BASE, StrtabBase);
        smmu.WriteRegister(SmmuRegister.STRTAB_BASE_CFG, 8);
        smmu.WriteRegister(SmmuRegister.CR0, SmmuV3.CR0_SMMUEN);
        return smmu;
    }
}

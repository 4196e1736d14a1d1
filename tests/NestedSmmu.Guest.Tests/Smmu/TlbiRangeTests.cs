using NestedSmmu.Guest.Smmu;
using NestedSmmu.Hardware.Smmu;

namespace NestedSmmu.Guest.Tests.Smmu;

/// <summary>TLBI range encoding (IHI 0070 4.4.1.1) as __arm_smmu_tlb_inv_range builds it, checked against what the Hardware codec decodes.</summary>
public sealed class TlbiRangeTests
{
    [Theory]
    // pages, expected commands as (NUM, SCALE): 1 page = NUM 0 SCALE 0; 32 pages = NUM 0 SCALE 5;
    // 33 pages = 1 page then 32; 0x1F pages = NUM 30 SCALE 0.
    [InlineData(1, new uint[] { 0, 0 })]
    [InlineData(32, new uint[] { 0, 5 })]
    [InlineData(33, new uint[] { 0, 0, 0, 5 })]
    [InlineData(31, new uint[] { 30, 0 })]
    [InlineData(96, new uint[] { 2, 5 })]
    public void Range_commands_cover_exactly_the_pages(int pages, uint[] numScale)
    {
        ulong iova = 0x4000_0000;
        var cmds = ArmSmmuV3Driver.BuildTlbiRange(7, iova, (ulong)pages << 12, 0x1000, leaf: true, rangeInvalidation: true);
        cmds.Count.ShouldBe(numScale.Length / 2);
        ulong next = iova;
        for (int i = 0; i < cmds.Count; i++)
        {
            var c = cmds[i];
            c.Opcode.ShouldBe(CommandOpcode.TLBI_NH_VA);
            c.ASID.ShouldBe((ushort)7);
            c.TG.ShouldBe(1u);   // 4 KiB
            c.TTL.ShouldBe(3u);  // level-3 leaves
            c.Leaf.ShouldBeTrue();
            c.NUM.ShouldBe(numScale[2 * i]);
            c.SCALE.ShouldBe(numScale[2 * i + 1]);
            c.Address.ShouldBe(next);
            next += ((ulong)c.NUM + 1) << (int)(c.SCALE + 12);
            CommandCodec.IsLegal(c, new SmmuFeatures()).ShouldBeTrue();
        }
        next.ShouldBe(iova + ((ulong)pages << 12));
    }

    [Theory]
    [InlineData(0x20_0000UL, 2u)]
    [InlineData(0x4000_0000UL, 1u)]
    public void Block_leaves_give_their_level_as_ttl(ulong granule, uint ttl)
    {
        var c = ArmSmmuV3Driver.BuildTlbiRange(1, 0, granule, granule, leaf: true, rangeInvalidation: true).ShouldHaveSingleItem();
        c.TTL.ShouldBe(ttl);
    }

    [Fact]
    public void Without_ril_there_is_one_command_per_granule_with_no_range_fields()
    {
        var cmds = ArmSmmuV3Driver.BuildTlbiRange(3, 0x10_0000, 0x60_0000, 0x20_0000, leaf: true, rangeInvalidation: false);
        cmds.Select(c => c.Address).ShouldBe([0x10_0000UL, 0x30_0000UL, 0x50_0000UL]);
        cmds.ShouldAllBe(c => c.TG == 0 && c.TTL == 0 && c.NUM == 0 && c.SCALE == 0);
    }

    [Fact]
    public void A_non_leaf_single_page_range_is_widened_so_it_is_not_reserved()
    {
        var c = ArmSmmuV3Driver.BuildTlbiRange(1, 0, 0x1000, 0x1000, leaf: false, rangeInvalidation: true).ShouldHaveSingleItem();
        c.TTL.ShouldBe(0u);
        (c.NUM | c.SCALE).ShouldNotBe(0u);
        CommandCodec.IsLegal(c, new SmmuFeatures()).ShouldBeTrue();
    }

    [Theory]
    [InlineData(0x1000UL, 0x1000UL, 0x1000UL, 0u)]
    [InlineData(0x1000UL, 0x2000UL, 0x0UL, 2u)]
    [InlineData(0x3000UL, 0x2000UL, 0x0UL, 3u)]
    public void Atc_inv_covers_the_range_with_an_aligned_power_of_two_span(ulong iova, ulong size, ulong address, uint log2)
    {
        var c = ArmSmmuV3Driver.BuildAtcInv(5, iova, size);
        c.Address.ShouldBe(address);
        c.AtcSize.ShouldBe(log2);
        c.SID.ShouldBe(5u);
    }
}

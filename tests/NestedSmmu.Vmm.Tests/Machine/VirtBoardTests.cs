using NestedSmmu.Vmm.Machine;

// Not "...Tests.Machine": that namespace would hide NestedSmmu.Vmm.Machine from the other test folders.
namespace NestedSmmu.Vmm.Tests.Board;

/// <summary>The virt board's memory map and platform bus (QEMU hw/arm/virt.c, hw/core/platform-bus.c).</summary>
public sealed class VirtBoardTests
{
    [Fact]
    public void High_regions_start_at_256_GiB_for_small_ram()
    {
        // QEMU 11.1's device tree for -m 128M: ECAM at 0x40_1000_0000, 64-bit window 0x80_0000_0000 + 512 GiB.
        var map = VirtMemoryMap.Create(128UL << 20);
        map[VirtRegion.HighGicRedist2].ShouldBe(new MemMapEntry(0x40_0000_0000, 64UL << 20));
        map.Ecam.ShouldBe(new MemMapEntry(0x40_1000_0000, 256UL << 20));
        map[VirtRegion.HighPcieMmio].ShouldBe(new MemMapEntry(0x80_0000_0000, 512UL << 30));
        map.EcamBusCount.ShouldBe(256);
    }

    [Fact]
    public void High_regions_follow_ram_past_255_GiB_each_aligned_on_its_size()
    {
        // RAM ends at 1 GiB + 300 GiB = 301 GiB (already GiB aligned): the second redistributor
        // region goes there, ECAM at the next 256 MiB boundary, the 512 GiB window at 512 GiB.
        var map = VirtMemoryMap.Create(300UL << 30);
        map[VirtRegion.HighGicRedist2].Base.ShouldBe(301UL << 30);
        map.Ecam.Base.ShouldBe((301UL << 30) + (256UL << 20));
        map[VirtRegion.HighPcieMmio].Base.ShouldBe(512UL << 30);
    }

    [Fact]
    public void Highmem_mmio_size_moves_the_window_to_its_own_alignment()
    {
        var map = VirtMemoryMap.Create(16UL << 30, 4UL << 40);
        map[VirtRegion.HighPcieMmio].ShouldBe(new MemMapEntry(4UL << 40, 4UL << 40));
    }

    [Fact]
    public void Platform_bus_takes_irqs_first_then_naturally_aligned_holes_in_order()
    {
        var bus = new PlatformBus(0x200_0000, 64);
        var a = bus.Link(5, [0x20000, 0x50000]); // an SMMU with a CMDQV
        var b = bus.Link(4, [0x20000]);
        var c = bus.Link(5, [0x20000, 0x50000]);
        a.Irqs.ShouldBe([0, 1, 2, 3, 4]);
        a.RegionOffsets.ShouldBe([0x0ul, 0x80000]); // 0x50000 rounds up to 512 KiB alignment
        b.Irqs.ShouldBe([5, 6, 7, 8]);
        b.RegionOffsets.ShouldBe([0x20000ul]);
        c.Irqs.ShouldBe([9, 10, 11, 12, 13]);
        c.RegionOffsets.ShouldBe([0x40000ul, 0x100000]);
    }

    [Fact]
    public void Platform_bus_refuses_with_qemus_messages_when_full()
    {
        var bus = new PlatformBus(0x40000, 5);
        bus.Link(4, [0x20000, 0x20000]);
        Should.Throw<InvalidOperationException>(() => bus.Link(2, [])).Message.ShouldBe("Platform Bus: Can not fit IRQ line");
        Should.Throw<InvalidOperationException>(() => new PlatformBus(0x40000, 8).Link(0, [0x20000, 0x20000, 0x20000]))
            .Message.ShouldBe("Platform Bus: Can not fit MMIO region of size 20000");
    }

    [Fact]
    public void Device_smmus_are_numbered_after_the_its_group_and_placed_in_creation_order()
    {
        var spec = new VirtBoardSpec
        {
            Gic = GicVersion.V3,
            RootComplexes = [new("pcie.0", 0, false, new PciBusRange(0, 0), 0x0F), new("pcie.1", 0x10, false, new PciBusRange(0x10, 0x10), 0x10)],
            Smmus = [new("b", "pcie.1"), new("a", "pcie.0")],
        };
        var board = VirtBoard.Layout(spec);
        board.Smmus.Select(s => (s.Id, s.Identifier, s.Base, s.Spi)).ShouldBe([("b", 1u, 0x0C00_0000ul, 112), ("a", 2u, 0x0C02_0000ul, 116)]);
        VirtBoard.Layout(spec with { Gic = GicVersion.V2 }).Smmus.Select(s => s.Identifier).ShouldBe([0u, 1u]);
    }

    [Fact]
    public void The_legacy_smmu_sits_at_its_fixed_place_and_serves_every_root_complex_that_does_not_bypass_it()
    {
        var board = VirtBoard.Layout(new VirtBoardSpec
        {
            LegacySmmu = true,
            RootComplexes = [new("pcie.0", 0, false, new PciBusRange(0, 0), 0x0F), new("pcie.2", 0x20, true, new PciBusRange(0x20, 0x20), 0x20),
                new("pcie.1", 0x10, false, new PciBusRange(0x10, 0x11), 0x11)],
        });
        var smmu = board.Smmus.ShouldHaveSingleItem();
        (smmu.Base, smmu.Spi, smmu.Identifier).ShouldBe((0x0905_0000ul, 74, 0u));
        smmu.Ranges.ShouldBe([new PciBusRange(0, 0), new PciBusRange(0x10, 0x11)]);
    }
}
